package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"path"
	"strings"
	"time"

	"golang.org/x/text/language"

	"mamoru/console/access"
)

// pages are the console's templates, parsed once.
type pages struct {
	t map[string]*template.Template // by page name
}

func loadPages() (*pages, error) {
	p := &pages{t: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"pct": func(part, whole float64) string {
			if whole <= 0 {
				return "0"
			}
			return fmt.Sprintf("%.2f", min(100, max(0, 100*part/whole)))
		},
		"secs": func(s float64) string { return fmt.Sprintf("%.1f", s) },
	}
	for _, name := range []string{"inbox", "incident", "devices", "problem"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		p.t[name] = t
	}
	return p, nil
}

// Lang is a page's language.
type Lang string

// The languages the console speaks; Japanese is the default.
const (
	Japanese Lang = "ja"
	English  Lang = "en"
)

var langMatcher = language.NewMatcher([]language.Tag{language.Japanese, language.English})

// langOf picks a request's language: ?lang=, then the lang cookie the
// switch sets, then the browser's Accept-Language, else Japanese.
func langOf(w http.ResponseWriter, r *http.Request) Lang {
	if l := Lang(r.URL.Query().Get("lang")); l == Japanese || l == English {
		http.SetCookie(w, &http.Cookie{Name: "lang", Value: string(l), Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return l
	}
	if c, err := r.Cookie("lang"); err == nil && (Lang(c.Value) == Japanese || Lang(c.Value) == English) {
		return Lang(c.Value)
	}
	if al := r.Header.Get("Accept-Language"); al != "" {
		tags, _, _ := language.ParseAcceptLanguage(al)
		if _, i, conf := langMatcher.Match(tags...); conf != language.No && i == 1 {
			return English
		}
	}
	return Japanese
}

// frame is what every page's layout needs.
type frame struct {
	Lang     Lang
	T        map[string]string
	User     string
	Role     string
	CSRF     string
	Switch   string // the page in the other language (Other)
	Other    Lang   // the language the switch offers
	Title    string
	Message  string // a notice at the top: what was just done
	Problem  string // an error at the top
	LoggedIn bool   // may log out
}

func (s *Server) frame(w http.ResponseWriter, r *http.Request) frame {
	l := langOf(w, r)
	u, ok := access.UserOf(r)
	f := frame{Lang: l, T: texts[l], User: u.Name, Role: string(u.Role), CSRF: access.CSRFToken(r), LoggedIn: ok && access.LoggedIn(r)}
	f.Other = English
	if l == English {
		f.Other = Japanese
	}
	if m := r.URL.Query().Get("done"); m != "" {
		f.Message = f.T["done_"+m]
	}
	f.Switch = switchTo(r, f.Other)
	return f
}

// switchTo is the page r shows, in lang: the same path and query, but for
// the answer to a form (a share's link, a refusal), whose path takes only
// POST: then the incident's page, or the inbox.
func switchTo(r *http.Request, lang Lang) string {
	p, q := r.URL.Path, r.URL.Query()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if strings.HasPrefix(p, "/incidents/") && strings.Count(p, "/") == 5 {
			p = path.Dir(p) // /incidents/<store>/<device>/<id>/<action>
		} else {
			p = "/"
		}
	}
	q.Del("done")
	q.Set("lang", string(lang))
	return p + "?" + q.Encode()
}

// render writes page name with data, or a plain error if the template
// fails (before anything is sent).
func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := s.pages.t[name].Execute(&b, data); err != nil {
		s.o.Log.Error("console: render", "page", name, "err", err)
		http.Error(w, "console: cannot render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// problem shows an error page: what went wrong, in the page's language,
// with the error's own words beneath for whoever fixes it.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, err error) {
	f := s.frame(w, r)
	f.Title = f.T["problem_title"]
	f.Problem = err.Error()
	s.render(w, status, "problem", struct{ frame }{f})
}

// when formats t in the devices' zone.
func (s *Server) when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(s.o.Zone).Format("2006-01-02 15:04:05")
}

// stateText is a verification state as a manager reads it.
func stateText(t map[string]string, st State) string {
	if s, ok := t["state_"+string(st)]; ok {
		return s
	}
	return strings.ToUpper(string(st))
}
