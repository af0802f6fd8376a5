package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
)

// The ids and the token the tests push with.
const (
	lineToken = "s3cr3t-ch4nnel-t0ken/AbCdEfGh+1234=="
	lineUser  = "U0123456789abcdef0123456789abcdef"
	lineGroup = "C89abcdef0123456789abcdef01234567"
)

// linePushed is one push the stand-in took in: its retry key, its
// recipient and its text.
type linePushed struct {
	key, to, text string
}

// lineReply is how the stand-in answers a push it has not accepted
// before: status with header and body; status 0 accepts it (200); drop
// accepts it and then cuts the connection, so that the answer is lost.
type lineReply struct {
	status int
	header map[string]string
	body   string
	drop   bool
}

// lineStandIn is a local HTTPS server that takes pushes as LINE's
// Messaging API documents it (see the top of line.go), written from those
// documents rather than from the sender: it refuses a request that is
// not a POST to /v2/bot/message/push with the bearer token, JSON, a retry
// key that is a UUID, and a body of one to five text messages of at most
// 5000 UTF-16 code units to a user, group or room id; it executes a retry
// key once, answering its repeats 409 with x-line-accepted-request-id.
// Each refusal of a malformed request is an error of the test.
type lineStandIn struct {
	*httptest.Server
	mu       sync.Mutex // guards the fields below
	keys     map[string]string
	accepted []linePushed
	seen     []linePushed // every well-formed push, taken or not
	reply    func(to string, attempt int) lineReply
	problems []string
}

var standInID = regexp.MustCompile(`^[UCR][0-9a-f]{32}$`)

func newLineStandIn(t *testing.T) *lineStandIn {
	s := &lineStandIn{keys: map[string]string{}}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range s.problems {
			t.Errorf("the stand-in refused a request LINE would refuse: %s", p)
		}
	})
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *lineStandIn) serve(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.mu.Lock()
		s.problems = append(s.problems, msg)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"message": msg})
	}
	if r.Method == http.MethodGet && r.URL.Path == "/v2/bot/info" {
		if r.Header.Get("Authorization") != "Bearer "+lineToken {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"userId":"Ub0000000000000000000000000000000","basicId":"@000aaaaa","displayName":"まもる","chatMode":"bot","markAsReadMode":"auto"}`)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v2/bot/message/push" {
		refuse(http.StatusNotFound, "%s %s: want POST /v2/bot/message/push", r.Method, r.URL.Path)
		return
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+lineToken {
		refuse(http.StatusUnauthorized, "Authorization is not the bearer token")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		refuse(http.StatusUnsupportedMediaType, "Content-Type %q, want application/json", ct)
		return
	}
	key := r.Header.Get("X-Line-Retry-Key")
	if u, err := uuid.Parse(key); err != nil || u.String() != key {
		refuse(http.StatusBadRequest, "X-Line-Retry-Key %q is not a hexadecimal UUID", key)
		return
	}
	var push struct {
		To       string `json:"to"`
		Messages []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&push); err != nil {
		refuse(http.StatusBadRequest, "the body is not a push: %v", err)
		return
	}
	if !standInID.MatchString(push.To) {
		refuse(http.StatusBadRequest, "The property, 'to', in the request body is invalid (line: -, column: -)")
		return
	}
	if len(push.Messages) < 1 || len(push.Messages) > 5 {
		refuse(http.StatusBadRequest, "%d messages, want 1 to 5", len(push.Messages))
		return
	}
	for _, m := range push.Messages {
		if n := len(utf16.Encode([]rune(m.Text))); m.Type != "text" || n == 0 || n > 5000 || !utf8.ValidString(m.Text) {
			refuse(http.StatusBadRequest, "message of type %q and %d UTF-16 code units, want text of 1 to 5000", m.Type, n)
			return
		}
	}
	p := linePushed{key: key, to: push.To, text: push.Messages[0].Text}

	s.mu.Lock()
	s.seen = append(s.seen, p)
	attempt := 0
	for _, q := range s.seen {
		if q.to == p.to {
			attempt++
		}
	}
	if id, ok := s.keys[key]; ok {
		s.mu.Unlock()
		w.Header().Set("X-Line-Accepted-Request-Id", id)
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"message":"The retry key is already accepted"}`)
		return
	}
	var reply lineReply
	if s.reply != nil {
		reply = s.reply(push.To, attempt)
	}
	if reply.status != 0 {
		s.mu.Unlock()
		for k, v := range reply.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(reply.status)
		io.WriteString(w, reply.body)
		return
	}
	s.keys[key] = uuid.NewString()
	s.accepted = append(s.accepted, p)
	s.mu.Unlock()
	if reply.drop {
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"sentMessages":[{"id":"%d","quoteToken":"q"}]}`, len(s.keys))
}

// answer sets how pushes not accepted before are answered.
func (s *lineStandIn) answer(reply func(to string, attempt int) lineReply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = reply
}

func (s *lineStandIn) pushes() (accepted, seen []linePushed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.accepted), slices.Clone(s.seen)
}

func tos(ps []linePushed) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.to)
	}
	return s
}

// lineTo returns a Line pushing to s, with the token in a token file's
// form.
func lineTo(t testing.TB, s *lineStandIn, lang string, to ...string) *Line {
	t.Helper()
	l, err := NewLine(LineOptions{Label: "店長のLINE", URL: s.URL, Token: lineToken + "\n", To: to, Language: lang, Client: s.Client(),
		Wall: clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLinePush(t *testing.T) {
	tests := []struct {
		lang, firstLine string
	}{
		{"", "【至急】カウンター1で通報ボタン 14:02"},
		{Japanese, "【至急】カウンター1で通報ボタン 14:02"},
		{English, "URGENT: Panic button at カウンター1 14:02"},
	}
	for _, tt := range tests {
		s := newLineStandIn(t)
		e := pressEvent()
		if err := lineTo(t, s, tt.lang, lineUser, lineGroup).Send(t.Context(), e); err != nil {
			t.Fatalf("%q: Send = %v", tt.lang, err)
		}
		got, _ := s.pushes()
		if !slices.Equal(tos(got), []string{lineUser, lineGroup}) {
			t.Fatalf("%q: pushed to %v, want each id once, in order", tt.lang, tos(got))
		}
		m := Render(e, tt.lang)
		for _, p := range got {
			if want := m.Title + "\n" + m.Body; p.text != want {
				t.Errorf("%q: text %q, want %q", tt.lang, p.text, want)
			}
			if first, _, _ := strings.Cut(p.text, "\n"); first != tt.firstLine || !strings.Contains(p.text, e.Link) {
				t.Errorf("%q: text %q, want it to start %q and hold the link", tt.lang, p.text, tt.firstLine)
			}
			if want := lineRetryKey(e.ID, p.to); p.key != want {
				t.Errorf("%q: retry key %s for %s, want %s", tt.lang, p.key, p.to, want)
			}
		}
		if got[0].key == got[1].key {
			t.Errorf("%q: both pushes have the retry key %s; LINE would execute one", tt.lang, got[0].key)
		}
	}
}

// The retry key is what the event and the recipient imply, so a sender
// made afresh (a restart) pushing the same event is refused as a repeat
// by LINE, and a manager gets it once; another event has other keys.
func TestLineRetryKey(t *testing.T) {
	s := newLineStandIn(t)
	e := pressEvent()
	for range 2 {
		if err := lineTo(t, s, "", lineUser, lineGroup).Send(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	other := pressEvent()
	if err := lineTo(t, s, "", lineUser).Send(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	accepted, seen := s.pushes()
	if got, want := tos(accepted), []string{lineUser, lineGroup, lineUser}; !slices.Equal(got, want) {
		t.Errorf("accepted pushes to %v, want %v: the restarted sender's are repeats", got, want)
	}
	if len(seen) != 5 || seen[0].key != seen[2].key || seen[1].key != seen[3].key || seen[4].key == seen[0].key {
		t.Errorf("retry keys %v: want the same per event and recipient, another for another event", seen)
	}
	for _, p := range seen {
		if u, err := uuid.Parse(p.key); err != nil || u.Variant() != uuid.RFC4122 {
			t.Errorf("retry key %q: not an RFC 4122 UUID", p.key)
		}
	}
}

func TestLineAnswers(t *testing.T) {
	wall := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	lineSays := func(status int, msg string) lineReply {
		b, _ := json.Marshal(map[string]string{"message": msg})
		return lineReply{status: status, header: map[string]string{"Content-Type": "application/json"}, body: string(b)}
	}
	tests := []struct {
		name      string
		reply     lineReply
		ok        bool
		permanent bool
		after     time.Duration // a *RetryLater's, or 0 for none
		fix, says string        // in the fix, and in the error
	}{
		{name: "200", reply: lineReply{}, ok: true},
		{name: "409 accepted before", reply: lineReply{status: 409, header: map[string]string{"X-Line-Accepted-Request-Id": "1"}}, ok: true},
		{name: "409 not from LINE", reply: lineReply{status: 409}, permanent: true, fix: "https://api.line.me"},
		{name: "401", reply: lineSays(401, "Authentication failed. Confirm that the access token in the authorization header is valid."),
			permanent: true, fix: "reissue the channel access token in LINE Developers and write it to token_file", says: "Authentication failed"},
		{name: "403", reply: lineSays(403, "Access to this API is not available for your account"), permanent: true, fix: "token_file", says: "not available"},
		{name: "400 to", reply: lineSays(400, "The property, 'to', in the request body is invalid (line: -, column: -)"),
			permanent: true, fix: "'to' entry 1, " + lineUser, says: "'to'"},
		{name: "400 to in details", reply: lineReply{status: 400, body: `{"message":"The request body has 1 error(s)","details":[{"message":"invalid","property":"to"}]}`},
			permanent: true, fix: "'to' entry 1", says: "to: invalid"},
		{name: "400 other", reply: lineReply{status: 400, body: `{"message":"The request body has 1 error(s)","details":[{"message":"Length must be between 0 and 5000","property":"messages[0].text"}]}`},
			permanent: true, fix: "malformed", says: "Length must be"},
		{name: "404", reply: lineReply{status: 404, body: "<html>not found</html>"}, permanent: true, fix: "https://api.line.me"},
		{name: "429 Retry-After seconds", reply: lineReply{status: 429, header: map[string]string{"Retry-After": "7"}}, after: 7 * time.Second},
		{name: "429 Retry-After date", reply: lineReply{status: 429, header: map[string]string{"Retry-After": wall.Add(time.Minute).Format(http.TimeFormat)}}, after: time.Minute},
		{name: "429 rate limit", reply: lineSays(429, "The API rate limit has been exceeded. Try again later."), says: "rate limit"},
		{name: "429 monthly limit", reply: lineSays(429, "You have reached your monthly limit."), permanent: true, fix: "this month", says: "monthly limit"},
		{name: "500", reply: lineReply{status: 500}},
		{name: "503 Retry-After", reply: lineReply{status: 503, header: map[string]string{"Retry-After": "2"}}, after: 2 * time.Second},
		{name: "an echo of the token", reply: lineSays(400, "token "+lineToken+" refused"), permanent: true, says: "token [token] refused"},
	}
	for _, tt := range tests {
		s := newLineStandIn(t)
		s.answer(func(string, int) lineReply { return tt.reply })
		err := lineTo(t, s, "", lineUser).Send(t.Context(), pressEvent())
		if tt.ok {
			if err != nil {
				t.Errorf("%s: Send = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Send = nil, want an error", tt.name)
			continue
		}
		var p *Permanent
		if errors.As(err, &p) != tt.permanent {
			t.Errorf("%s: Send = %v; permanent %v, want %v", tt.name, err, !tt.permanent, tt.permanent)
		}
		if tt.permanent && (p.Status != tt.reply.status || !strings.Contains(p.Fix, tt.fix)) {
			t.Errorf("%s: %+v; want status %d and a fix saying %q", tt.name, p, tt.reply.status, tt.fix)
		}
		var rl *RetryLater
		if got := errors.As(err, &rl); got != (tt.after != 0) || got && rl.After != tt.after {
			t.Errorf("%s: Send = %v, want a RetryLater of %v", tt.name, err, tt.after)
		}
		msg := err.Error()
		if strings.Contains(msg, lineToken) || !strings.Contains(msg, "店長のLINE: to entry 1") || !strings.Contains(msg, tt.says) {
			t.Errorf("%s: error %q; want it to name the target and entry, say %q, and never show the token", tt.name, msg, tt.says)
		}
	}
}

// A push whose answer is lost may have been delivered: the retry goes
// with the same key, LINE answers 409, and the manager has it once.
func TestLineLostAnswer(t *testing.T) {
	s := newLineStandIn(t)
	s.answer(func(_ string, attempt int) lineReply { return lineReply{drop: attempt == 1} })
	l := lineTo(t, s, "", lineUser)
	e := pressEvent()
	err := l.Send(t.Context(), e)
	var p *Permanent
	if err == nil || errors.As(err, &p) || strings.Contains(err.Error(), lineToken) {
		t.Fatalf("Send with the answer lost = %v, want an error worth retrying, without the token", err)
	}
	if err := l.Send(t.Context(), e); err != nil {
		t.Fatalf("Send again = %v, want nil (409: accepted before)", err)
	}
	accepted, seen := s.pushes()
	if len(accepted) != 1 || len(seen) != 2 || seen[0].key != seen[1].key {
		t.Errorf("accepted %v of %v; want one push, tried twice with the same retry key", accepted, seen)
	}
}

// One push per id: an id LINE refuses keeps no one else from the alert,
// an id that took it is not pushed to again, and a failure of the server
// or the token ends the attempt.
func TestLineRecipients(t *testing.T) {
	const third = "R0123456789abcdef0123456789abcdef"
	refusedTo := lineReply{status: 400, body: `{"message":"The property, 'to', in the request body is invalid (line: -, column: -)"}`}
	tests := []struct {
		name  string
		reply func(to string, attempt int) lineReply
		// after the first attempt
		permanent      bool     // else worth retrying
		says           []string // in the error
		seen, accepted []string
		// after a second attempt by the same sender, and one by a sender
		// made afresh
		seen2, accepted2 []string
	}{
		{
			name: "the first fails once",
			reply: func(to string, attempt int) lineReply {
				if to == lineUser && attempt == 1 {
					return lineReply{status: 500}
				}
				return lineReply{}
			},
			says: []string{"to entry 1: HTTP 500"},
			seen: []string{lineUser}, accepted: nil,
			seen2: []string{lineUser, lineUser, lineGroup, third, lineUser, lineGroup, third}, accepted2: []string{lineUser, lineGroup, third},
		},
		{
			name: "the second fails once",
			reply: func(to string, attempt int) lineReply {
				if to == lineGroup && attempt == 1 {
					return lineReply{status: 502}
				}
				return lineReply{}
			},
			says: []string{"to entry 2: HTTP 502"},
			seen: []string{lineUser, lineGroup}, accepted: []string{lineUser},
			// The same sender skips the one that took it; the fresh one
			// asks, and LINE says it had it.
			seen2: []string{lineUser, lineGroup, lineGroup, third, lineUser, lineGroup, third}, accepted2: []string{lineUser, lineGroup, third},
		},
		{
			name: "one id refused",
			reply: func(to string, _ int) lineReply {
				if to == lineGroup {
					return refusedTo
				}
				return lineReply{}
			},
			permanent: true, says: []string{"to entry 2: HTTP 400"},
			seen: []string{lineUser, lineGroup, third}, accepted: []string{lineUser, third},
			seen2: []string{lineUser, lineGroup, third, lineGroup, lineUser, lineGroup, third}, accepted2: []string{lineUser, third},
		},
		{
			name: "one id refused, then the server fails",
			reply: func(to string, _ int) lineReply {
				if to == lineUser {
					return refusedTo
				}
				return lineReply{status: 500}
			},
			says: []string{"to entry 1: HTTP 400", "to entry 2: HTTP 500", "'to' entry 1"},
			seen: []string{lineUser, lineGroup}, accepted: nil,
			seen2: []string{lineUser, lineGroup, lineUser, lineGroup, lineUser, lineGroup}, accepted2: nil,
		},
		{
			name:      "a bad token",
			reply:     func(string, int) lineReply { return lineReply{status: 401} },
			permanent: true, says: []string{"to entry 1: HTTP 401"},
			seen: []string{lineUser}, accepted: nil,
			seen2: []string{lineUser, lineUser, lineUser}, accepted2: nil,
		},
	}
	for _, tt := range tests {
		s := newLineStandIn(t)
		s.answer(tt.reply)
		l := lineTo(t, s, "", lineUser, lineGroup, third)
		e := pressEvent()
		err := l.Send(t.Context(), e)
		var p *Permanent
		if err == nil || errors.As(err, &p) != tt.permanent {
			t.Errorf("%s: Send = %v; want an error, permanent %v", tt.name, err, tt.permanent)
			continue
		}
		for _, says := range tt.says {
			if !strings.Contains(err.Error(), says) {
				t.Errorf("%s: Send = %q, want it to say %q", tt.name, err, says)
			}
		}
		accepted, seen := s.pushes()
		if !slices.Equal(tos(seen), tt.seen) || !slices.Equal(tos(accepted), tt.accepted) {
			t.Errorf("%s: pushed to %v, accepted %v; want %v, %v", tt.name, tos(seen), tos(accepted), tt.seen, tt.accepted)
		}
		l.Send(t.Context(), e)
		lineTo(t, s, "", lineUser, lineGroup, third).Send(t.Context(), e)
		accepted, seen = s.pushes()
		if !slices.Equal(tos(seen), tt.seen2) || !slices.Equal(tos(accepted), tt.accepted2) {
			t.Errorf("%s: after two more attempts, pushed to %v, accepted %v; want %v, %v", tt.name, tos(seen), tos(accepted), tt.seen2, tt.accepted2)
		}
	}
}

func TestLineTextLimit(t *testing.T) {
	s := newLineStandIn(t)
	e := pressEvent()
	e.Details = map[string]string{"error": strings.Repeat("🍎", 3000)} // 6000 code units
	if err := lineTo(t, s, "", lineUser).Send(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	got, _ := s.pushes()
	if n := len(utf16.Encode([]rune(got[0].text))); n > maxLineText || !strings.HasSuffix(got[0].text, "🍎…") || !strings.HasPrefix(got[0].text, "【至急】") {
		t.Errorf("text of %d code units ending %q; want at most %d, cut between two apples", n, got[0].text[len(got[0].text)-10:], maxLineText)
	}

	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcdef", 5, "abcd…"},
		{"ab🍎", 4, "ab🍎"},
		{"ab🍎c", 4, "ab…"}, // never half an apple
		{"🍎🍎🍎", 4, "🍎…"},
		{"通報ボタン", 5, "通報ボタン"},
		{"通報ボタン!", 5, "通報ボタ…"},
		{"\xffabc", 3, "\xffa…"},
	}
	for _, tt := range tests {
		if got := clipUTF16(tt.s, tt.max); got != tt.want {
			t.Errorf("clipUTF16(%q, %d) = %q, want %q", tt.s, tt.max, got, tt.want)
		}
	}
}

func TestNewLineRejects(t *testing.T) {
	good := LineOptions{URL: "https://api.line.me", Token: lineToken, To: []string{lineUser}}
	tests := []struct {
		name string
		edit func(*LineOptions)
	}{
		{"no url", func(o *LineOptions) { o.URL = "" }},
		{"not http", func(o *LineOptions) { o.URL = "api.line.me" }},
		{"no token", func(o *LineOptions) { o.Token = " \n" }},
		{"a token of two words", func(o *LineOptions) { o.Token = lineToken + " " + lineToken }},
		{"a token over two lines", func(o *LineOptions) { o.Token = lineToken + "\r\nX-Evil: 1" }},
		{"no one to push to", func(o *LineOptions) { o.To = nil }},
		{"not an id", func(o *LineOptions) { o.To = []string{"@shop-manager"} }},
		{"an id twice", func(o *LineOptions) { o.To = []string{lineUser, lineGroup, lineUser} }},
		{"unknown language", func(o *LineOptions) { o.Language = "fr" }},
	}
	for _, tt := range tests {
		o := good
		tt.edit(&o)
		_, err := NewLine(o)
		if err == nil {
			t.Errorf("%s: NewLine = nil error", tt.name)
			continue
		}
		if strings.Contains(err.Error(), lineToken) {
			t.Errorf("%s: error %q shows the token", tt.name, err)
		}
	}
	if _, err := NewLine(good); err != nil {
		t.Errorf("NewLine(%+v) = %v", good, err)
	}
}

// Without the stand-in's authority, its certificate is one no retry makes
// valid.
func TestLineUnknownAuthority(t *testing.T) {
	s := newLineStandIn(t)
	l, err := NewLine(LineOptions{Label: "店長のLINE", URL: s.URL, Token: lineToken, To: []string{lineUser}})
	if err != nil {
		t.Fatal(err)
	}
	var p *Permanent
	if err := l.Send(t.Context(), pressEvent()); !errors.As(err, &p) || !strings.Contains(p.Fix, "unknown authority") || strings.Contains(err.Error(), lineToken) {
		t.Errorf("Send to a server of an unknown authority = %v, want a *Permanent saying so", err)
	}
}

// Through the durable queue, as the recorder sends: an incident.started
// whose first answer is lost, raised again after a restart (under the id
// its press gave it, alert.IncidentID), reaches each manager once.
func TestLineThroughQueue(t *testing.T) {
	s := newLineStandIn(t)
	s.answer(func(to string, attempt int) lineReply { return lineReply{drop: to == lineGroup && attempt == 1} })
	fc := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 5, 2, 5, 0, time.UTC))
	dir := t.TempDir()
	e := origin.IncidentEvent(IncidentStarted, fc.Now(), "20261130-140205-000042", fc.Now())
	e.ID, e.Source = IncidentID(e.Incident, IncidentStarted), "button"

	for run := range 2 { // the second: the recorder restarted, and raised it again
		accepted := make(chan Event, 10)
		q, err := OpenQueue(dir, lineTo(t, s, "", lineUser, lineGroup), QueueOptions{Label: "店長のLINE", Clock: fc, Accepted: func(e Event) { accepted <- e }})
		if err != nil {
			t.Fatal(err)
		}
		stop := runQueue(t, q)
		if err := q.Put(e); err != nil {
			t.Fatal(err)
		}
		if got := acceptAll(t, fc, accepted, 1); got[0].ID != e.ID {
			t.Errorf("run %d: accepted %s, want %s", run, got[0].ID, e.ID)
		}
		stop()
		if st := q.Status(); st.Pending != 0 || st.Delivered != 1 {
			t.Errorf("run %d: Status = %+v, want one delivered, none pending", run, st)
		}
	}
	accepted, seen := s.pushes()
	if got, want := tos(accepted), []string{lineUser, lineGroup}; !slices.Equal(got, want) {
		t.Errorf("LINE executed pushes to %v, want %v: once each", got, want)
	}
	// The user's push, the group's (answer lost), the group's again; then,
	// after the restart, one each, which LINE answers 409.
	if got, want := tos(seen), []string{lineUser, lineGroup, lineGroup, lineUser, lineGroup}; !slices.Equal(got, want) {
		t.Errorf("pushes tried %v, want %v", got, want)
	}
	for _, p := range seen {
		if !strings.HasPrefix(p.text, "カウンター1で通報ボタン 14:02\n") {
			t.Errorf("text %q, want the press's title first", p.text)
		}
	}
}

// LINE's error body is outside bytes: whatever it holds, what goes into an
// error is bounded and never the token.
func FuzzLineAnswer(f *testing.F) {
	f.Add([]byte(`{"message":"The property, 'to', in the request body is invalid (line: -, column: -)"}`))
	f.Add([]byte(`{"message":"The request body has 1 error(s)","details":[{"message":"invalid","property":"to"}]}`))
	f.Add([]byte(`{"message":"You have reached your monthly limit."}`))
	f.Add([]byte(`{"message":"` + lineToken + `","details":[{"message":"` + lineToken + lineToken + `","property":"x` + lineToken + `"}]}`))
	f.Add([]byte("<html>not found</html>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a := parseLineAnswer(b, lineToken)
		a.about("to")
		msg := a.explain(errors.New("alert: line x: HTTP 400 Bad Request")).Error()
		if strings.Contains(msg, lineToken) {
			t.Errorf("%q: error %q shows the token", b, msg)
		}
		// 200 characters, each quoted in at most 10 bytes (\U0010ffff).
		if len(msg) > 100+maxSaid*10 {
			t.Errorf("%q: error of %d bytes", b, len(msg))
		}
	})
}

// Probe asks LINE for the bot's information, which pushes nothing: with
// the right token it passes, with another it is a *Permanent saying to
// reissue the token, and the token never shows.
func TestLineProbe(t *testing.T) {
	s := newLineStandIn(t)
	if err := lineTo(t, s, "ja", lineUser).Probe(context.Background()); err != nil {
		t.Errorf("Probe: %v", err)
	}
	wrong, err := NewLine(LineOptions{Label: "店長のLINE", URL: s.URL, Token: "an-0ld-t0ken", To: []string{lineUser}, Client: s.Client()})
	if err != nil {
		t.Fatal(err)
	}
	var p *Permanent
	if err := wrong.Probe(context.Background()); !errors.As(err, &p) || !strings.Contains(p.Fix, "reissue the channel access token") || strings.Contains(err.Error(), "an-0ld-t0ken") {
		t.Errorf("Probe with a wrong token = %v, want a *Permanent saying to reissue it, without the token", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) != 0 {
		t.Errorf("the probes pushed %d messages, want none", len(s.seen))
	}
}
