package access

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"mamoru/clock"
	"mamoru/config"
	"mamoru/console/access/phc"
)

// Options configure a Guard.
type Options struct {
	// Users may log in. None is allowed only on a loopback Addr, and then
	// every request is from Local.
	Users []config.ConsoleUser
	// Local is whom every request is from on a loopback address without
	// users, e.g. {Name: "sato@shop-pc (local)", Role: Manager}; the zero
	// User means {Name: "local", Role: Manager}.
	Local User
	// Addr is the address the console listens on (host:port): whether it
	// is loopback decides whether users and TLS are needed and which Host
	// headers pass.
	Addr string
	// TLS is true when the console serves HTTPS: the session cookie is
	// then Secure. Set it only when a certificate is really in use.
	TLS bool
	// Clock times sessions and login lockouts; nil is the system clock.
	Clock clock.Clock
	// SessionTTL is how long a login lasts; 0 is DefaultSessionTTL.
	SessionTTL time.Duration
}

// DefaultSessionTTL is how long a login lasts unless Options say otherwise.
const DefaultSessionTTL = 12 * time.Hour

// CookieName is the session cookie's name.
const CookieName = "mamoru_session"

// The login rate limit: LoginFailures failed logins from one remote IP,
// or for one user name, within LoginWindow lock that IP or name out for
// LoginLockout. A successful login clears both counts. A name can thus be
// locked out by anyone who can reach the login page: the price of
// slowing a guesser who spreads over many addresses.
const (
	LoginFailures = 5
	LoginWindow   = 15 * time.Minute
	LoginLockout  = 15 * time.Minute
)

// maxChecks is how many password checks may run at once.
const maxChecks = 4

// Guard checks every request to the console; see the package doc. It is
// safe for concurrent use.
type Guard struct {
	users map[string]account // by name; empty without users
	local User               // whom requests are from without users
	hosts map[string]bool    // the Host headers that pass; nil: any
	tls   bool
	clock clock.Clock
	ttl   time.Duration
	cop   *http.CrossOriginProtection
	// dummy is checked for an unknown name, so that a failed login costs
	// the same whether or not the name is a user's.
	dummy     phc.Hash
	localCSRF string // the CSRF token without users
	// checks holds a place for each password check under way: each takes
	// 64 MiB, and logins sent all at once must not exhaust the memory.
	checks chan struct{}

	mu       sync.Mutex          // guards sessions and failures
	sessions map[string]*session // by cookie value
	failures map[string]*failures
}

type account struct {
	user User
	hash phc.Hash
}

type session struct {
	user    User
	csrf    string
	expires time.Time
}

// failures counts failed logins of one remote IP or user name.
type failures struct {
	n      int
	first  time.Time // of the n failures
	locked time.Time // until this time
}

// New returns a Guard for o. It refuses a non-loopback o.Addr without
// users (ErrNeedsUsers) or without TLS (ErrNeedsTLS), both if both are
// missing, and a user whose role or hash is malformed.
func New(o Options) (*Guard, error) {
	_, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("access: the listen address %q is not host:port", o.Addr)
	}
	g := &Guard{
		users:    map[string]account{},
		tls:      o.TLS,
		clock:    clock.Or(o.Clock),
		ttl:      o.SessionTTL,
		cop:      http.NewCrossOriginProtection(),
		sessions: map[string]*session{},
		failures: map[string]*failures{},
		checks:   make(chan struct{}, maxChecks),
	}
	if g.ttl <= 0 {
		g.ttl = DefaultSessionTTL
	}
	for _, u := range o.Users {
		h, err := phc.Parse(u.PasswordHash)
		if err != nil {
			return nil, fmt.Errorf("access: user %q: password_hash %w", u.Name, err)
		}
		if r := Role(u.Role); r != Viewer && r != Manager {
			return nil, fmt.Errorf("access: user %q: role must be %q or %q (got %q)", u.Name, Viewer, Manager, u.Role)
		}
		if _, dup := g.users[u.Name]; dup {
			return nil, fmt.Errorf("access: user %q is listed twice", u.Name)
		}
		g.users[u.Name] = account{User{u.Name, Role(u.Role)}, h}
		if len(g.users) == 1 {
			salt := make([]byte, len(h.Salt))
			rand.Read(salt)
			g.dummy = phc.New(random(), salt, h)
		}
	}
	if !config.Loopback(o.Addr) {
		var errs []error
		if len(g.users) == 0 {
			errs = append(errs, fmt.Errorf("%w; %s is reachable from the network", ErrNeedsUsers, o.Addr))
		}
		if !o.TLS {
			errs = append(errs, fmt.Errorf("%w; %s is reachable from the network", ErrNeedsTLS, o.Addr))
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	} else {
		g.hosts = map[string]bool{"127.0.0.1:" + port: true, "localhost:" + port: true, "[::1]:" + port: true}
	}
	if len(g.users) == 0 {
		g.local = o.Local
		if g.local.Name == "" {
			g.local.Name = "local"
		}
		if g.local.Role == "" {
			g.local.Role = Manager
		}
		g.localCSRF = random()
	}
	return g, nil
}

// random returns 32 random bytes in unpadded URL-safe base64.
func random() string {
	b := make([]byte, 32)
	rand.Read(b) // never returns an error
	return base64.RawURLEncoding.EncodeToString(b)
}

// Handler serves next the requests that pass the Guard, with their User
// in the context (UserOf, CSRFToken). It refuses, in this order:
//   - on a loopback address, a Host other than 127.0.0.1, localhost or
//     [::1] with the port (421): a page of another site whose name was
//     made to resolve to 127.0.0.1 (DNS rebinding);
//   - an unsafe method (POST, PUT, PATCH, DELETE) from another origin
//     (403, http.CrossOriginProtection);
//   - with users, a request without a valid session, except GET /login,
//     POST /login and /static/: a GET or HEAD of a page is redirected to
//     /login?next=<its path>, any other page request to /login, and a
//     request under /api/ gets 401 with JSON {"error": "..."};
//   - an unsafe method without the session's CSRF token in the form
//     field "csrf" or the header X-CSRF-Token (403), except POST /login.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.hosts != nil && !g.hosts[strings.ToLower(r.Host)] {
			http.Error(w, fmt.Sprintf("このコンソールは 127.0.0.1・localhost・[::1] の名前でだけ開けます / this console answers only to 127.0.0.1, localhost or [::1] with its port, not to Host %q", r.Host), http.StatusMisdirectedRequest)
			return
		}
		if err := g.cop.Check(r); err != nil {
			refuse(w, r, http.StatusForbidden, "別のサイトからの操作は受け付けません / a request from another site is refused")
			return
		}
		id, ok := g.identify(r)
		if !ok && !public(r) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/api/"):
				refuse(w, r, http.StatusUnauthorized, "ログインが必要です / login required")
			case r.Method == http.MethodGet || r.Method == http.MethodHead:
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			default:
				http.Redirect(w, r, "/login", http.StatusSeeOther)
			}
			return
		}
		if unsafe(r.Method) && !(r.Method == http.MethodPost && r.URL.Path == "/login") && !(ok && sameToken(r, id.csrf)) {
			refuse(w, r, http.StatusForbidden, "操作の確認用トークンがありません。ページを再読み込みしてください / the request lacks this page's CSRF token: reload the page and try again")
			return
		}
		if ok {
			r = withIdentity(r, id)
		}
		next.ServeHTTP(w, r)
	})
}

// identify returns whom r is from: the local user without users, else
// the user of r's session, if it is valid.
func (g *Guard) identify(r *http.Request) (identity, bool) {
	if len(g.users) == 0 {
		return identity{user: g.local, csrf: g.localCSRF}, true
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return identity{}, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sessions[c.Value]
	if !ok {
		return identity{}, false
	}
	if !g.clock.Now().Before(s.expires) {
		delete(g.sessions, c.Value)
		return identity{}, false
	}
	return identity{user: s.user, csrf: s.csrf, session: true}, true
}

// public reports whether r may be served without a session.
func public(r *http.Request) bool {
	return r.URL.Path == "/login" && (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodPost) ||
		strings.HasPrefix(r.URL.Path, "/static/")
}

func unsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// sameToken reports whether r carries token, in the header X-CSRF-Token
// or the form field csrf.
func sameToken(r *http.Request, token string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// refuse answers r with code and msg: JSON {"error": msg} under /api/,
// plain text elsewhere.
func refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		http.Error(w, msg, code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
