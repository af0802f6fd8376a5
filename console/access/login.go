package access

import (
	"html/template"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Routes adds the login page and its actions to mux, which must be served
// through g.Handler:
//   - GET /login: the login page (to next, or /, when already logged in
//     or without users);
//   - POST /login: form fields name, password and next; on success a
//     session cookie and a redirect to next (a path on this site, else /);
//     on failure the page again, 401, or 429 with Retry-After while the
//     remote IP or the name is locked out (LoginFailures);
//   - POST /logout: ends the session and goes to /login.
func (g *Guard) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", g.loginPage)
	mux.HandleFunc("POST /login", g.login)
	mux.HandleFunc("POST /logout", g.logout)
}

func (g *Guard) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if _, ok := g.identify(r); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	render(w, http.StatusOK, loginView{Next: next})
}

func (g *Guard) login(w http.ResponseWriter, r *http.Request) {
	if len(g.users) == 0 {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	name, pw, next := r.PostFormValue("name"), r.PostFormValue("password"), localPath(r.PostFormValue("next"))
	keys := []string{"ip " + remoteIP(r)}
	if _, ok := g.users[name]; ok {
		// Only a user's name is counted: any other is wrong whatever the
		// password, and counting it would let anyone fill the memory.
		keys = append(keys, "name "+name)
	}
	if wait := g.attempt(keys); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		mins := int(math.Ceil(wait.Minutes()))
		render(w, http.StatusTooManyRequests, loginView{Name: name, Next: next,
			Error:   "ログインの失敗が続いたため、あと" + strconv.Itoa(mins) + "分はログインできません。",
			ErrorEn: "Too many failed logins: try again in " + strconv.Itoa(mins) + " minutes."})
		return
	}
	a, ok := g.users[name]
	h := g.dummy
	if ok {
		h = a.hash
	}
	select {
	case g.checks <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	right := h.Verify(pw)
	<-g.checks
	if !right || !ok {
		render(w, http.StatusUnauthorized, loginView{Name: name, Next: next,
			Error: "名前かパスワードが違います。", ErrorEn: "Wrong name or password."})
		return
	}
	g.mu.Lock()
	for _, k := range keys {
		delete(g.failures, k)
	}
	now := g.clock.Now()
	for t, s := range g.sessions {
		if !now.Before(s.expires) {
			delete(g.sessions, t)
		}
	}
	token := random()
	g.sessions[token] = &session{user: a.user, csrf: random(), expires: now.Add(g.ttl)}
	g.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", Expires: now.Add(g.ttl), MaxAge: int(g.ttl.Seconds()),
		HttpOnly: true, Secure: g.tls, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (g *Guard) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		g.mu.Lock()
		delete(g.sessions, c.Value)
		g.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: g.tls, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// attempt counts a login attempt against each of keys as a failure,
// which a success then clears, and returns how long the longest lockout
// of keys still lasts, counting nothing if it is locked out. Counting
// before the password is checked keeps attempts sent all at once from
// passing the check together. A key is locked out at its LoginFailures-th
// failure within LoginWindow.
func (g *Guard) attempt(keys []string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now, wait := g.clock.Now(), time.Duration(0)
	for _, k := range keys {
		if f, ok := g.failures[k]; ok {
			wait = max(wait, f.locked.Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	if len(g.failures) > 4096 {
		for k, f := range g.failures {
			if now.Sub(f.first) >= LoginWindow && !now.Before(f.locked) {
				delete(g.failures, k)
			}
		}
	}
	for _, k := range keys {
		f, ok := g.failures[k]
		if !ok || now.Sub(f.first) >= LoginWindow {
			f = &failures{first: now}
			g.failures[k] = f
		}
		f.n++
		if f.n >= LoginFailures {
			f.n, f.first, f.locked = 0, now, now.Add(LoginLockout)
		}
	}
	return 0
}

// remoteIP is the address r came from. The console is reached directly,
// so X-Forwarded-For, which anyone may send, is not believed.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// localPath returns p if it is a path on this site other than the login
// page, else "/": a login must not send its user on to another site, nor
// back to itself.
func localPath(p string) string {
	u, err := url.Parse(p)
	if err != nil || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") ||
		u.Scheme != "" || u.Host != "" || strings.ContainsAny(p, "\r\n\t\\") || u.Path == "/login" {
		return "/"
	}
	return p
}

type loginView struct {
	Name, Next     string
	Error, ErrorEn string
}

func render(w http.ResponseWriter, code int, v loginView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	loginTemplate.Execute(w, v) // only a broken connection can fail it
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>ログイン / Log in — mamoru</title>
<style>
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,"Hiragino Sans","Noto Sans JP",sans-serif;background:#f4f4f2;color:#222}
main{max-width:24rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:8px}
h1{font-size:1.3rem;margin:0 0 1rem}
.en{display:block;font-size:.8em;color:#666;font-weight:normal}
label{display:block;margin:1rem 0 .3rem}
input{width:100%;font-size:1rem;padding:.6rem;border:1px solid #999;border-radius:4px}
button{width:100%;margin-top:1.5rem;font-size:1rem;padding:.8rem;border:0;border-radius:4px;background:#1d4e89;color:#fff}
.error{background:#fde8e8;color:#8a1c1c;padding:.6rem;border-radius:4px}
</style>
</head>
<body>
<main>
<h1>mamoru 管理コンソール<span class="en">mamoru managers' console</span></h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}<span class="en">{{.ErrorEn}}</span></p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="next" value="{{.Next}}">
<label for="name">名前<span class="en">Name</span></label>
<input id="name" name="name" value="{{.Name}}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
<label for="password">パスワード<span class="en">Password</span></label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">ログイン<span class="en" style="color:#dde">Log in</span></button>
</form>
</main>
</body>
</html>
`))
