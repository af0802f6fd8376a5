package access

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"mamoru/config"
	"mamoru/console/access/phc"
)

// cheapHash is a hash of pw with parameters cheap enough for tests.
func cheapHash(pw string) string {
	return phc.New(pw, []byte("saltsaltsalt"), phc.Hash{MemoryKiB: 64, Time: 1, Threads: 1, Key: make([]byte, 32)}).String()
}

var users = []config.ConsoleUser{
	{Name: "sato", Role: config.RoleManager, PasswordHash: cheapHash("manager-password")},
	{Name: "tanaka", Role: config.RoleViewer, PasswordHash: cheapHash("viewer-password")},
}

// console is a Guard in front of pages like the console's, served over
// real HTTP on loopback.
type console struct {
	*httptest.Server
	guard *Guard
	clock *clockwork.FakeClock
}

func serve(t *testing.T, o Options) *console {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	o.Addr = srv.Listener.Addr().String()
	clock := clockwork.NewFakeClock()
	o.Clock = clock
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Routes(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserOf(r)
		fmt.Fprintf(w, "home of %s (%s) csrf=%s", u.Name, u.Role, CSRFToken(r))
	})
	mux.HandleFunc("GET /incidents", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "incidents") })
	mux.HandleFunc("GET /api/incidents", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "[]") })
	mux.HandleFunc("GET /static/app.css", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "body{}") })
	mux.Handle("POST /incidents/{id}/hold", Require(Hold, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "held "+r.PathValue("id"))
	})))
	mux.Handle("POST /api/incidents/{id}/hold", Require(Hold, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"held":true}`)
	})))
	mux.Handle("POST /incidents/{id}/seen", Require(View, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "seen "+r.PathValue("id"))
	})))
	srv.Config.Handler = g.Handler(mux)
	srv.Start()
	t.Cleanup(srv.Close)
	return &console{srv, g, clock}
}

// client is a browser: it keeps cookies and shows each redirect rather
// than following it.
func (c *console) client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type reply struct {
	code   int
	body   string
	header http.Header
}

func do(t *testing.T, cl *http.Client, req *http.Request) reply {
	t.Helper()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b), resp.Header}
}

func (c *console) get(t *testing.T, cl *http.Client, path string) reply {
	t.Helper()
	req, _ := http.NewRequest("GET", c.URL+path, nil)
	return do(t, cl, req)
}

// post sends form, with the headers given as "Name: value".
func (c *console) post(t *testing.T, cl *http.Client, path string, form url.Values, headers ...string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", c.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	return do(t, cl, req)
}

func (c *console) login(t *testing.T, cl *http.Client, name, pw string) reply {
	t.Helper()
	return c.post(t, cl, "/login", url.Values{"name": {name}, "password": {pw}, "next": {"/incidents"}})
}

// csrf logs in (unless there are no users) and returns the page's token.
func (c *console) csrf(t *testing.T, cl *http.Client) string {
	t.Helper()
	home := c.get(t, cl, "/")
	_, tok, ok := strings.Cut(home.body, "csrf=")
	if home.code != http.StatusOK || !ok || tok == "" {
		t.Fatalf("GET / = %d %q; want the home page with a CSRF token", home.code, home.body)
	}
	return tok
}

func TestAccessNewRefusesTheNetworkWithoutUsersOrTLS(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     Options
		want  []error
		wants string
	}{
		{"loopback alone", Options{Addr: "127.0.0.1:8750"}, nil, ""},
		{"localhost", Options{Addr: "localhost:8750"}, nil, ""},
		{"IPv6 loopback", Options{Addr: "[::1]:8750"}, nil, ""},
		{"loopback with users", Options{Addr: "127.0.0.1:8750", Users: users}, nil, ""},
		{"LAN with both", Options{Addr: "192.168.1.20:8750", Users: users, TLS: true}, nil, ""},
		{"LAN bare", Options{Addr: "192.168.1.20:8750"}, []error{ErrNeedsUsers, ErrNeedsTLS}, "mamoru console adduser"},
		{"LAN without TLS", Options{Addr: "192.168.1.20:8750", Users: users}, []error{ErrNeedsTLS}, "console.tls_cert"},
		{"LAN without users", Options{Addr: "192.168.1.20:8750", TLS: true}, []error{ErrNeedsUsers}, "[[console.user]]"},
		{"every interface", Options{Addr: ":8750", TLS: true}, []error{ErrNeedsUsers}, ":8750 is reachable from the network"},
		{"0.0.0.0", Options{Addr: "0.0.0.0:8750", Users: users}, []error{ErrNeedsTLS}, "0.0.0.0:8750"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("New = %v; want a Guard", err)
				}
				return
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("New = %v; want %v", err, w)
				}
			}
			if err != nil && !strings.Contains(err.Error(), tc.wants) {
				t.Errorf("New = %v; want it to say %q", err, tc.wants)
			}
			if len(tc.want) == 1 && errors.Is(err, ErrNeedsUsers) && errors.Is(err, ErrNeedsTLS) {
				t.Errorf("New = %v; want only %v", err, tc.want[0])
			}
		})
	}
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no port", Options{Addr: "127.0.0.1"}, "not host:port"},
		{"bad hash", Options{Addr: "127.0.0.1:1", Users: []config.ConsoleUser{{Name: "sato", Role: "manager", PasswordHash: "hunter2"}}}, `user "sato": password_hash not an argon2id hash`},
		{"bad role", Options{Addr: "127.0.0.1:1", Users: []config.ConsoleUser{{Name: "sato", Role: "owner", PasswordHash: users[0].PasswordHash}}}, `role must be "viewer" or "manager"`},
		{"twice", Options{Addr: "127.0.0.1:1", Users: []config.ConsoleUser{users[0], users[0]}}, `"sato" is listed twice`},
	} {
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v; want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// On loopback, a page of another site whose name resolves to 127.0.0.1
// (DNS rebinding) is refused by its Host.
func TestAccessHostCheck(t *testing.T) {
	for _, withUsers := range []bool{false, true} {
		o := Options{}
		if withUsers {
			o.Users = users
		}
		c := serve(t, o)
		_, port, _ := strings.Cut(strings.TrimPrefix(c.URL, "http://"), ":")
		for _, tc := range []struct {
			host string
			pass bool
		}{
			{"127.0.0.1:" + port, true},
			{"localhost:" + port, true},
			{"LOCALHOST:" + port, true},
			{"[::1]:" + port, true},
			{"evil.example:" + port, false},
			{"127.0.0.1.nip.io:" + port, false},
			{"127.0.0.1", false},
			{"127.0.0.1:1" + port, false},
		} {
			req, _ := http.NewRequest("GET", c.URL+"/login", nil)
			req.Host = tc.host
			r := do(t, c.client(t), req)
			if pass := r.code != http.StatusMisdirectedRequest; pass != tc.pass {
				t.Errorf("users %v, Host %q: %d %q; want passed = %v", withUsers, tc.host, r.code, r.body, tc.pass)
			}
			if !tc.pass && !strings.Contains(r.body, "127.0.0.1, localhost or [::1]") {
				t.Errorf("Host %q refused with %q; want it to say which names pass", tc.host, r.body)
			}
		}
	}
}

// Without users, on loopback, every request is the local manager's, and
// an unsafe request still needs the Guard's CSRF token.
func TestAccessLocalUser(t *testing.T) {
	c := serve(t, Options{Local: User{Name: "sato@shop-pc (local)", Role: Manager}})
	cl := c.client(t)
	if r := c.get(t, cl, "/"); !strings.HasPrefix(r.body, "home of sato@shop-pc (local) (manager)") {
		t.Errorf("GET / = %d %q; want the local manager's home", r.code, r.body)
	}
	tok := c.csrf(t, cl)
	if r := c.post(t, cl, "/incidents/7/hold", nil); r.code != http.StatusForbidden {
		t.Errorf("POST without the token = %d %q; want 403", r.code, r.body)
	}
	if r := c.post(t, cl, "/incidents/7/hold", url.Values{"csrf": {tok}}); r.code != http.StatusOK || r.body != "held 7" {
		t.Errorf("POST with the token = %d %q; want held 7", r.code, r.body)
	}
	if r := c.get(t, cl, "/login"); r.code != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Errorf("GET /login without users = %d to %q; want a redirect to /", r.code, r.header.Get("Location"))
	}
	if r := serve(t, Options{}).get(t, cl, "/"); !strings.HasPrefix(r.body, "home of local (manager)") {
		t.Errorf("GET / with the zero Local = %q; want the local manager", r.body)
	}
}

// Without a session: a page redirects to the login page with where it
// was going, the API says 401 in JSON, and the login page and assets are
// served.
func TestAccessNoSession(t *testing.T) {
	c := serve(t, Options{Users: users})
	cl := c.client(t)
	for _, tc := range []struct {
		method, path string
		code         int
		location     string
		body         string
	}{
		{"GET", "/incidents?day=2026-11-30", http.StatusSeeOther, "/login?next=%2Fincidents%3Fday%3D2026-11-30", ""},
		{"GET", "/", http.StatusSeeOther, "/login?next=%2F", ""},
		{"POST", "/incidents/7/hold", http.StatusSeeOther, "/login", ""},
		{"POST", "/logout", http.StatusSeeOther, "/login", ""},
		{"GET", "/api/incidents", http.StatusUnauthorized, "", `{"error":"ログインが必要です / login required"}`},
		{"POST", "/api/incidents/7/hold", http.StatusUnauthorized, "", `"error"`},
		{"GET", "/static/app.css", http.StatusOK, "", "body{}"},
		{"GET", "/login", http.StatusOK, "", `<input id="password" name="password" type="password"`},
	} {
		req, _ := http.NewRequest(tc.method, c.URL+tc.path, nil)
		r := do(t, cl, req)
		if r.code != tc.code || r.header.Get("Location") != tc.location || !strings.Contains(r.body, tc.body) {
			t.Errorf("%s %s = %d to %q, %q; want %d to %q, %q", tc.method, tc.path, r.code, r.header.Get("Location"), r.body, tc.code, tc.location, tc.body)
		}
		if strings.HasPrefix(tc.path, "/api/") {
			var e struct{ Error string }
			if r.header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(r.body), &e) != nil || e.Error == "" {
				t.Errorf("%s %s: %s %q; want JSON with an error", tc.method, tc.path, r.header.Get("Content-Type"), r.body)
			}
		}
	}
}

func TestAccessLogin(t *testing.T) {
	c := serve(t, Options{Users: users, SessionTTL: time.Hour})
	for _, tc := range []struct {
		name, user, pw string
		code           int
		page           string // what the login page says, or the home page after
	}{
		{"manager", "sato", "manager-password", http.StatusSeeOther, "home of sato (manager)"},
		{"viewer", "tanaka", "viewer-password", http.StatusSeeOther, "home of tanaka (viewer)"},
		{"wrong password", "sato", "viewer-password", http.StatusUnauthorized, "名前かパスワードが違います"},
		{"unknown user", "suzuki", "manager-password", http.StatusUnauthorized, "Wrong name or password"},
		{"name in another case", "Sato", "manager-password", http.StatusUnauthorized, "Wrong name or password"},
		{"no password", "sato", "", http.StatusUnauthorized, "Wrong name or password"},
		{"a name that is markup", "<script>x</script>", "pw", http.StatusUnauthorized, `value="&lt;script&gt;x&lt;/script&gt;"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := c.client(t)
			r := c.login(t, cl, tc.user, tc.pw)
			if r.code != tc.code {
				t.Fatalf("login = %d %q; want %d", r.code, r.body, tc.code)
			}
			if r.code == http.StatusSeeOther {
				if loc := r.header.Get("Location"); loc != "/incidents" {
					t.Errorf("login went to %q; want next, /incidents", loc)
				}
				r = c.get(t, cl, "/")
			}
			if !strings.Contains(r.body, tc.page) {
				t.Errorf("page = %q; want it to say %q", r.body, tc.page)
			}
		})
	}
}

func TestAccessSessionCookie(t *testing.T) {
	for _, tls := range []bool{false, true} {
		c := serve(t, Options{Users: users, TLS: tls, SessionTTL: time.Hour})
		resp, err := c.client(t).PostForm(c.URL+"/login", url.Values{"name": {"sato"}, "password": {"manager-password"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cookies := resp.Cookies()
		if len(cookies) != 1 {
			t.Fatalf("login set %d cookies; want 1", len(cookies))
		}
		ck := cookies[0]
		if ck.Name != "mamoru_session" || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != tls || ck.Path != "/" ||
			ck.MaxAge != 3600 || !ck.Expires.Equal(c.clock.Now().Add(time.Hour).Truncate(time.Second)) || len(ck.Value) < 43 {
			t.Errorf("TLS %v: cookie %s; want mamoru_session, 32 random bytes, HttpOnly, SameSite=Strict, Secure=%v, Path=/, an hour", tls, resp.Header.Get("Set-Cookie"), tls)
		}
	}
}

// A session ends at its TTL on the Guard's clock, or at logout, after
// which its cookie opens nothing even if sent again.
func TestAccessSessionEnds(t *testing.T) {
	c := serve(t, Options{Users: users, SessionTTL: time.Hour})
	cl := c.client(t)
	c.login(t, cl, "sato", "manager-password")
	c.clock.Advance(time.Hour - time.Second)
	if r := c.get(t, cl, "/"); r.code != http.StatusOK {
		t.Errorf("GET / within the hour = %d; want 200", r.code)
	}
	c.clock.Advance(time.Second)
	if r := c.get(t, cl, "/"); r.code != http.StatusSeeOther {
		t.Errorf("GET / after the hour = %d; want a redirect to log in", r.code)
	}

	c.login(t, cl, "sato", "manager-password")
	c.guard.mu.Lock()
	if n := len(c.guard.sessions); n != 1 {
		t.Errorf("after a session expired and a new login the Guard holds %d sessions; want 1", n)
	}
	c.guard.mu.Unlock()
	u, _ := url.Parse(c.URL)
	old := cl.Jar.Cookies(u)
	tok := c.csrf(t, cl)
	if r := c.post(t, cl, "/logout", url.Values{"csrf": {tok}}); r.code != http.StatusSeeOther || r.header.Get("Location") != "/login" {
		t.Errorf("logout = %d to %q; want a redirect to /login", r.code, r.header.Get("Location"))
	}
	if len(cl.Jar.Cookies(u)) != 0 {
		t.Errorf("after logout the browser keeps %v; want the cookie cleared", cl.Jar.Cookies(u))
	}
	req, _ := http.NewRequest("GET", c.URL+"/", nil)
	req.AddCookie(old[0])
	if r := do(t, c.client(t), req); r.code != http.StatusSeeOther {
		t.Errorf("the logged-out cookie sent again: %d %q; want a redirect to log in", r.code, r.body)
	}
}

// Every unsafe request needs the session's CSRF token and must come from
// the console's own pages; what it may do depends on the role.
func TestAccessUnsafeRequests(t *testing.T) {
	c := serve(t, Options{Users: users})
	manager, viewer := c.client(t), c.client(t)
	c.login(t, manager, "sato", "manager-password")
	c.login(t, viewer, "tanaka", "viewer-password")
	mtok, vtok := c.csrf(t, manager), c.csrf(t, viewer)
	if mtok == vtok {
		t.Fatalf("two sessions share the CSRF token %q", mtok)
	}
	for _, tc := range []struct {
		name    string
		cl      *http.Client
		path    string
		form    url.Values
		headers []string
		code    int
		body    string
	}{
		{"no token", manager, "/incidents/7/hold", nil, nil, http.StatusForbidden, "CSRF token"},
		{"another session's token", manager, "/incidents/7/hold", url.Values{"csrf": {vtok}}, nil, http.StatusForbidden, "CSRF token"},
		{"token in the form", manager, "/incidents/7/hold", url.Values{"csrf": {mtok}}, nil, http.StatusOK, "held 7"},
		{"token in the header", manager, "/incidents/7/hold", nil, []string{"X-CSRF-Token: " + mtok}, http.StatusOK, "held 7"},
		{"same origin", manager, "/incidents/7/hold", url.Values{"csrf": {mtok}}, []string{"Sec-Fetch-Site: same-origin", "Origin: " + c.URL}, http.StatusOK, "held 7"},
		{"cross-site", manager, "/incidents/7/hold", url.Values{"csrf": {mtok}}, []string{"Sec-Fetch-Site: cross-site"}, http.StatusForbidden, "another site"},
		{"another origin", manager, "/incidents/7/hold", url.Values{"csrf": {mtok}}, []string{"Origin: https://evil.example"}, http.StatusForbidden, "another site"},
		{"viewer holds", viewer, "/incidents/7/hold", url.Values{"csrf": {vtok}}, nil, http.StatusForbidden, "tanaka (viewer): この操作（hold or release）は店長（manager）だけができます / only a manager may hold or release incidents"},
		{"viewer holds by the API", viewer, "/api/incidents/7/hold", nil, []string{"X-CSRF-Token: " + vtok}, http.StatusForbidden, `{"error":"tanaka (viewer):`},
		{"viewer views", viewer, "/incidents/7/seen", url.Values{"csrf": {vtok}}, nil, http.StatusOK, "seen 7"},
		{"manager by the API", manager, "/api/incidents/7/hold", nil, []string{"X-CSRF-Token: " + mtok}, http.StatusOK, `{"held":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.post(t, tc.cl, tc.path, tc.form, tc.headers...)
			if r.code != tc.code || !strings.Contains(r.body, tc.body) {
				t.Errorf("POST %s = %d %q; want %d %q", tc.path, r.code, r.body, tc.code, tc.body)
			}
		})
	}
}

func TestAccessCan(t *testing.T) {
	for a := View; a <= Delete; a++ {
		if !(User{"sato", Manager}).Can(a) {
			t.Errorf("a manager cannot %v", a)
		}
		if got := (User{"tanaka", Viewer}).Can(a); got != (a == View) {
			t.Errorf("a viewer Can(%v) = %v", a, got)
		}
		if (User{"x", "owner"}).Can(a) || (User{}).Can(a) {
			t.Errorf("a user without a known role can %v", a)
		}
	}
	if (User{"sato", Manager}).Can(Delete + 1) {
		t.Error("a manager can an action that does not exist")
	}
}

// LoginFailures failures lock the remote IP, and a user's name from any
// IP, out for LoginLockout on the Guard's clock; a success clears the
// count.
func TestAccessLoginRateLimit(t *testing.T) {
	clock := clockwork.NewFakeClock()
	g, err := New(Options{Addr: "127.0.0.1:8750", Users: users, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Routes(mux)
	h := g.Handler(mux)
	login := func(ip, name, pw string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest("POST", "http://127.0.0.1:8750/login", strings.NewReader(url.Values{"name": {name}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = ip + ":40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	type step struct {
		ip, name, pw string
		code         int
		advance      time.Duration // after the step
	}
	good, bad := "manager-password", "guess"
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"an IP is locked out, even with the right password, and let in after", []step{
			{"10.0.0.1", "x1", bad, 401, 0}, {"10.0.0.1", "x2", bad, 401, 0}, {"10.0.0.1", "x3", bad, 401, 0}, {"10.0.0.1", "x4", bad, 401, 0}, {"10.0.0.1", "x5", bad, 401, 0},
			{"10.0.0.1", "sato", good, 429, LoginLockout - time.Second},
			{"10.0.0.1", "sato", good, 429, time.Second},
			{"10.0.0.1", "sato", good, 303, 0},
		}},
		{"a name is locked out from every IP; other names and IPs are not", []step{
			{"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.2", "sato", bad, 401, 0}, {"10.0.0.3", "sato", bad, 401, 0}, {"10.0.0.4", "sato", bad, 401, 0}, {"10.0.0.5", "sato", bad, 401, 0},
			{"10.0.0.6", "sato", good, 429, 0},
			{"10.0.0.6", "tanaka", "viewer-password", 303, 0},
			{"10.0.0.1", "tanaka", "viewer-password", 303, LoginLockout},
			{"10.0.0.6", "sato", good, 303, 0},
		}},
		{"failures spread beyond the window do not lock", []step{
			{"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, LoginWindow},
			{"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0},
			{"10.0.0.1", "sato", good, 303, 0},
		}},
		{"a success clears the count", []step{
			{"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0},
			{"10.0.0.1", "sato", good, 303, 0},
			{"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0}, {"10.0.0.1", "sato", bad, 401, 0},
			{"10.0.0.1", "sato", good, 303, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.mu.Lock()
			clear(g.failures)
			g.mu.Unlock()
			for i, s := range tc.steps {
				w := login(s.ip, s.name, s.pw)
				if w.Code != s.code {
					t.Fatalf("step %d (%s as %s): %d; want %d", i+1, s.ip, s.name, w.Code, s.code)
				}
				if w.Code == http.StatusTooManyRequests {
					if ra := w.Header().Get("Retry-After"); ra == "" || ra == "0" {
						t.Errorf("step %d: Retry-After %q; want the seconds left", i+1, ra)
					}
					if b := w.Body.String(); !strings.Contains(b, "ログインの失敗が続いたため") || !strings.Contains(b, "Too many failed logins") {
						t.Errorf("step %d: %q; want the reason in Japanese and English", i+1, b)
					}
				}
				clock.Advance(s.advance)
			}
		})
	}
	g.mu.Lock()
	clear(g.failures)
	g.mu.Unlock()
	for range LoginFailures {
		login("10.0.0.9", "sato", bad)
	}
	if w := login("10.0.0.9", "sato", good); w.Header().Get("Retry-After") != "900" {
		t.Errorf("Retry-After = %q at the start of a lockout; want 900", w.Header().Get("Retry-After"))
	}

	// Guesses sent all at once are counted as they arrive, not as their
	// checks end: only LoginFailures of them are checked.
	g.mu.Lock()
	clear(g.failures)
	g.mu.Unlock()
	codes := make(chan int)
	for i := range 3 * LoginFailures {
		go func() { codes <- login("10.0.0.10", "sato", fmt.Sprint("guess ", i)).Code }()
	}
	count := map[int]int{}
	for range 3 * LoginFailures {
		count[<-codes]++
	}
	if count[401] != LoginFailures || count[429] != 2*LoginFailures {
		t.Errorf("%d guesses at once: %v; want %d checked (401), the rest refused (429)", 3*LoginFailures, count, LoginFailures)
	}
}

// An unknown name is checked against a hash made like a user's, so that
// a failure takes as long as for a user's wrong password.
func TestAccessDummyHashCostsTheSame(t *testing.T) {
	g, err := New(Options{Addr: "127.0.0.1:1", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	u := g.users["sato"].hash
	d := g.dummy
	if d.MemoryKiB != u.MemoryKiB || d.Time != u.Time || d.Threads != u.Threads || len(d.Key) != len(u.Key) || len(d.Salt) != len(u.Salt) {
		t.Errorf("dummy hash %v; want the parameters of %v", d, u)
	}
}

func TestAccessLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/incidents?day=1": "/incidents?day=1",
		"/":                "/",
		"":                 "/",
		"incidents":        "/",
		"//evil.example/":  "/",
		"/\\evil.example":  "/",
		"https://evil/":    "/",
		"/a\r\nSet-Cookie": "/",
		"/login?next=/x":   "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestAccessHashPassword(t *testing.T) {
	h, err := HashPassword("パスワード十文字以上です")
	if err != nil {
		t.Fatal(err)
	}
	p, err := phc.Parse(h)
	if err != nil {
		t.Fatalf("HashPassword = %q, which Parse refuses: %v", h, err)
	}
	if p.MemoryKiB != 64<<10 || p.Time != 2 || p.Threads != 1 || len(p.Salt) != 16 || len(p.Key) != 32 {
		t.Errorf("HashPassword made %v; want m=65536,t=2,p=1 with a 16-byte salt and 32-byte key", h)
	}
	if !p.Verify("パスワード十文字以上です") || p.Verify("パスワード十文字以上で") {
		t.Error("the hash does not tell the password from another")
	}
	if h2, _ := HashPassword("パスワード十文字以上です"); h2 == h {
		t.Error("two hashes of one password are the same: the salt is not random")
	}
	for _, pw := range []string{"", "short", "123456789", "九文字のパスワード"} {
		if _, err := HashPassword(pw); !errors.Is(err, ErrPasswordTooShort) {
			t.Errorf("HashPassword(%q) = %v; want ErrPasswordTooShort", pw, err)
		}
	}
}
