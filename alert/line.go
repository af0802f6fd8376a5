package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/google/uuid"

	"mamoru/clock"
)

// What LINE's Messaging API documents, and this file relies on (LINE
// Developers, read 2026-11-30):
//
//   - Send push message, POST https://api.line.me/v2/bot/message/push,
//     "Authorization: Bearer {channel access token}", "Content-Type:
//     application/json", body {"to": <user, group or room id>, "messages":
//     [1 to 5 message objects]}; a text message is {"type": "text",
//     "text": ...}, at most 5000 characters
//     (https://developers.line.biz/en/reference/messaging-api/#send-push-message,
//     #text-message).
//   - Characters are counted in UTF-16 code units: an emoji outside the
//     BMP is two (https://developers.line.biz/en/docs/messaging-api/text-character-count/).
//   - Retrying: "X-Line-Retry-Key", a hexadecimal UUID of any version the
//     sender makes; a request is executed once however often it comes
//     with the same key, and a repeat of one already accepted is answered
//     409 with the header x-line-accepted-request-id. The key is valid for
//     24 hours from the first request. 5xx and timeouts may have been
//     delivered and are retried; other 4xx are not
//     (https://developers.line.biz/en/docs/messaging-api/retrying-api-request/).
//   - 429 is a rate limit, a concurrency limit, or the month's free
//     messages spent, told apart only by the body's "message"; the last
//     reads "You have reached your monthly limit.". A request answered
//     429 is not processed for any recipient
//     (https://developers.line.biz/en/docs/messaging-api/handling-http-429-errors/,
//     and LINE's FAQ on the LINE Official Account, which adds that the
//     monthly limit can be met for a moment while another delivery holds
//     messages in reserve).
//   - Error bodies are {"message": ..., "details": [{"message", "property"}]}
//     (the reference's #error-responses); an invalid recipient is a 400
//     whose message names the property 'to' (as LINE answered in
//     line/line-bot-sdk-java#54).
//
// None of it has been tried against LINE from here: the tests run against
// a local stand-in written from the above.

// LineOptions configure a Line target.
type LineOptions struct {
	Label string // who this is, for errors; never the token
	// URL is LINE's API server, https://api.line.me, or a stand-in's;
	// pushes go to <URL>/v2/bot/message/push.
	URL string
	// Token is the channel access token of the LINE Official Account's
	// Messaging API channel. Surrounding white space is dropped, so a
	// token file may end in a newline.
	Token string
	// To are the user (U…), group (C…) or room (R…) ids pushed to, each
	// on its own.
	To       []string
	Language string // the text: Japanese ("", "ja") or English ("en")
	// Client sends the requests; nil is a client with a 10 s timeout that
	// follows no redirect. Another should have a timeout too.
	Client *http.Client
	// Wall reads the time for a Retry-After date; nil is the system clock.
	Wall clock.Clock
}

// Line pushes each event, as the text a person reads, through the LINE
// Messaging API to every id in To: one push per id, each with its own
// retry key, so that a retry after a lost answer, a restart or a failure
// of another id is never a second message to an id that had it (for 24
// hours, as long as LINE keeps a key; beyond that, an event still
// undelivered to one id may reach the others twice).
//
// An answer about one id (LINE refuses it as a recipient) does not stop
// the push to the others: a bad entry in To must not keep a press from
// the managers whose ids are right. The event is then refused as a
// whole (*Permanent), and waits as any refused event does, holding up the
// target's later events until the entry is fixed: where that matters,
// give each person a target of their own. Any other failure ends the
// attempt, since the next push would meet it too.
type Line struct {
	opts LineOptions
	push string // the push endpoint's URL
	kind string

	mu sync.Mutex // guards acceptedFor and accepted
	// accepted are the ids that took the event acceptedFor, the one being
	// sent, so that its retries skip them without asking LINE. It holds
	// one event only: a queue sends one at a time, and retries it until
	// it is accepted.
	acceptedFor string
	accepted    map[string]bool
}

// lineID is a user, group or room id, as LINE's webhooks give them.
var lineID = regexp.MustCompile(`^[UCR][0-9a-f]{32}$`)

// NewLine checks o and returns its target. Errors never repeat the token.
func NewLine(o LineOptions) (*Line, error) {
	if err := checkURL(o.URL); err != nil {
		return nil, err
	}
	if err := CheckLanguage(o.Language); err != nil {
		return nil, err
	}
	o.Token = strings.TrimSpace(o.Token)
	if o.Token == "" {
		return nil, errors.New("alert: a LINE target needs the channel access token")
	}
	if strings.ContainsFunc(o.Token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return nil, errors.New("alert: the channel access token holds white space: it is one word")
	}
	if len(o.To) == 0 {
		return nil, errors.New("alert: a LINE target needs at least one id to push to")
	}
	for i, to := range o.To {
		if !lineID.MatchString(to) {
			return nil, fmt.Errorf("alert: to entry %d: %q is not a LINE user, group or room id ('U', 'C' or 'R' and 32 hex digits)", i+1, to)
		}
		if slices.Index(o.To, to) < i {
			return nil, fmt.Errorf("alert: to entry %d: %s is already entry %d", i+1, to, slices.Index(o.To, to)+1)
		}
	}
	return &Line{
		opts: o,
		push: strings.TrimSuffix(o.URL, "/") + "/v2/bot/message/push",
		kind: "line " + o.Label,
	}, nil
}

// maxLineText is the most characters, UTF-16 code units, a text message
// takes.
const maxLineText = 5000

// Send pushes e to every id that has not taken it yet.
func (l *Line) Send(ctx context.Context, e Event) error {
	m := Render(e, l.opts.Language)
	text := clipUTF16(m.Title+"\n"+m.Body, maxLineText)
	now := clock.Or(l.opts.Wall).Now()
	var refused []*Permanent // the ids LINE refuses as recipients
	for n, to := range l.opts.To {
		if ctx.Err() != nil {
			return fmt.Errorf("alert: %s: %w", l.kind, ctx.Err())
		}
		if l.took(e.ID, to) {
			continue
		}
		aboutTo, err := l.pushTo(ctx, e.ID, n, to, text, now)
		var p *Permanent
		switch {
		case err == nil:
			l.remember(e.ID, to)
		case aboutTo && errors.As(err, &p):
			refused = append(refused, p)
		default:
			return pushFailed(refused, err)
		}
	}
	return pushFailed(refused, nil)
}

// Probe asks LINE for the bot's own information (Get bot info, GET
// /v2/bot/info with the token: https://developers.line.biz/en/reference/messaging-api/#get-bot-info),
// which pushes nothing: it shows the API cannot be reached, or that LINE
// refuses the channel access token.
func (l *Line) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(l.opts.URL, "/")+"/v2/bot/info", nil)
	if err != nil {
		return &Permanent{Fix: "check the url", Err: fmt.Errorf("alert: %s: the url is not one a request can go to", l.kind)}
	}
	req.Header.Set("Authorization", "Bearer "+l.opts.Token)
	client := l.opts.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return checkTransport(err, l.kind)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	err = fmt.Errorf("alert: %s: LINE answered %s", l.kind, resp.Status)
	if fix, ok := lineFixes[resp.StatusCode]; ok {
		return &Permanent{Status: resp.StatusCode, Fix: fix, Err: err}
	}
	return err
}

// took reports whether to has taken the event id already.
func (l *Line) took(id, to string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acceptedFor == id && l.accepted[to]
}

// remember records that to took the event id, forgetting any other event.
func (l *Line) remember(id, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acceptedFor != id {
		l.acceptedFor, l.accepted = id, map[string]bool{}
	}
	l.accepted[to] = true
}

// lineKeySpace is the namespace of lineRetryKey's name-based UUIDs.
var lineKeySpace = uuid.MustParse("0f862064-850b-4519-9d0e-1bada9b778bf")

// lineRetryKey is the X-Line-Retry-Key of the push of event id to the id
// to: a name-based UUID (version 5) of both, the same on every retry and
// after a restart, and another for each recipient, since LINE executes a
// key once and each push is a request of its own.
func lineRetryKey(id, to string) string {
	return uuid.NewSHA1(lineKeySpace, []byte(id+" "+to)).String()
}

// linePush is the body of a push.
type linePush struct {
	To       string        `json:"to"`
	Messages []lineMessage `json:"messages"`
}

type lineMessage struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// lineFixes refine fixes for LINE's answers.
var lineFixes = map[int]string{
	http.StatusBadRequest:   "LINE refuses the push as malformed: check that the url is LINE's API server, https://api.line.me",
	http.StatusUnauthorized: "LINE refuses the channel access token: reissue the channel access token in LINE Developers and write it to token_file (LINE Developers Console, the provider, the channel, the Messaging API tab)",
	http.StatusForbidden:    "LINE does not let this channel push: check that token_file holds the Messaging API channel's access token, and the LINE Official Account's plan",
	http.StatusNotFound:     "there is no push API at the url: it must be LINE's API server only, https://api.line.me",
}

// monthlyLimit is how LINE's 429 says the month's messages are spent:
// "You have reached your monthly limit."
const monthlyLimit = "reached your monthly limit"

// pushTo pushes text to the id to, entry n of To, and classifies LINE's
// answer. aboutTo reports an error that is LINE refusing to as a
// recipient, which does not concern the other ids.
func (l *Line) pushTo(ctx context.Context, id string, n int, to, text string, now time.Time) (aboutTo bool, err error) {
	what := fmt.Sprintf("%s: to entry %d", l.kind, n+1)
	body, err := json.Marshal(linePush{To: to, Messages: []lineMessage{{Type: "text", Text: text}}})
	if err != nil {
		return false, &Permanent{Fix: "the event cannot be encoded", Err: fmt.Errorf("alert: %s: %w", what, err)}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Bearer "+l.opts.Token)
	h.Set("X-Line-Retry-Key", lineRetryKey(id, to))
	resp, answer, err := request(ctx, l.opts.Client, l.push, h, body, what)
	if err != nil {
		return false, err
	}
	said := parseLineAnswer(answer, l.opts.Token)
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return false, nil
	case code == http.StatusConflict && resp.Header.Get("X-Line-Accepted-Request-Id") != "":
		return false, nil // accepted before, under this key: an answer we lost
	case code == http.StatusConflict:
		return false, &Permanent{Status: code, Fix: "the server answered 409 without saying it had accepted the push before, which LINE's API server does: check that the url is https://api.line.me",
			Err: said.explain(fmt.Errorf("alert: %s: HTTP 409 Conflict", what))}
	case code == http.StatusTooManyRequests && strings.Contains(said.Message, monthlyLimit):
		return false, &Permanent{Status: code, Fix: "the LINE Official Account has sent all the messages its plan allows this month (the free plan: 200), and LINE takes no more until the 1st: upgrade the plan in LINE Official Account Manager, or the alerts wait for next month (the next alert tries again; so does a restart)",
			Err: said.explain(fmt.Errorf("alert: %s: HTTP 429 Too Many Requests", what))}
	case code == http.StatusBadRequest && said.about("to"):
		return true, &Permanent{Status: code, Fix: fmt.Sprintf("LINE refuses 'to' entry %d, %s, as a recipient: check the id (a user's is U and 32 hex digits, from a webhook or 'Your user ID' in LINE Developers; a group's is C…, from the webhook when the account joins), and that the user has added the LINE Official Account as a friend", n+1, to),
			Err: said.explain(fmt.Errorf("alert: %s: HTTP 400 Bad Request", what))}
	}
	return false, said.explain(checkResponse(resp, what, lineFixes, now))
}

// lineAnswer is LINE's error body.
type lineAnswer struct {
	Message string `json:"message"`
	Details []struct {
		Message  string `json:"message"`
		Property string `json:"property"`
	} `json:"details"`
}

// parseLineAnswer reads an error body; one that is not LINE's is empty.
// The token is cut out of it, whatever a server echoes: its words go into
// errors.
func parseLineAnswer(b []byte, token string) lineAnswer {
	var a lineAnswer
	if json.Unmarshal(b, &a) != nil {
		return lineAnswer{}
	}
	scrub := func(s string) string {
		if token == "" {
			return s
		}
		return strings.ReplaceAll(s, token, "[token]")
	}
	a.Message = scrub(a.Message)
	for i := range a.Details {
		a.Details[i].Message, a.Details[i].Property = scrub(a.Details[i].Message), scrub(a.Details[i].Property)
	}
	return a
}

// about reports whether the answer is about the property p of the push.
func (a lineAnswer) about(p string) bool {
	for _, d := range a.Details {
		if d.Property == p {
			return true
		}
	}
	// LINE's message for a recipient that is no id at all names it so.
	return strings.Contains(a.Message, "'"+p+"'")
}

// maxSaid bounds what of LINE's message goes into an error.
const maxSaid = 200

// explain adds what LINE said to err, quoted and bounded for a log line.
func (a lineAnswer) explain(err error) error {
	said := a.Message
	for _, d := range a.Details {
		said += "; " + d.Property + ": " + d.Message
	}
	if said == "" || err == nil {
		return err
	}
	if r := []rune(said); len(r) > maxSaid {
		said = string(r[:maxSaid]) + "…"
	}
	var p *Permanent
	var rl *RetryLater
	switch {
	case errors.As(err, &p):
		p.Err = fmt.Errorf("%w: LINE says %q", p.Err, said)
		return p
	case errors.As(err, &rl):
		rl.Err = fmt.Errorf("%w: LINE says %q", rl.Err, said)
		return rl
	}
	return fmt.Errorf("%w: LINE says %q", err, said)
}

// pushFailed is the outcome of an attempt in which LINE refused the
// recipients refused and then, unless it is nil, the push met last,
// which ended the attempt. The attempt is worth retrying when last is
// (the refused ids stay refused, and the accepted are not pushed to
// again); else it is a *Permanent saying every fix.
func pushFailed(refused []*Permanent, last error) error {
	if len(refused) == 0 {
		return last
	}
	var msgs, fixes []string
	for _, p := range refused {
		msgs = append(msgs, p.Err.Error())
		fixes = append(fixes, p.Fix)
	}
	var p *Permanent
	if last == nil || errors.As(last, &p) {
		if p != nil {
			msgs = append(msgs, p.Err.Error())
			fixes = append(fixes, p.Fix)
		}
		return &Permanent{Status: refused[0].Status, Fix: strings.Join(fixes, "; "), Err: errors.New(strings.Join(msgs, "; "))}
	}
	msgs = append(msgs, last.Error())
	failed := &pushErrors{msg: strings.Join(msgs, "; ") + " (" + strings.Join(fixes, "; ") + ")", last: last}
	if rl := (*RetryLater)(nil); errors.As(last, &rl) {
		return &RetryLater{After: rl.After, Err: failed}
	}
	return failed
}

// pushErrors are an attempt's failures when the last is worth retrying:
// its message says them all, and it unwraps to the last alone, so that
// no *Permanent among the others stops the retries.
type pushErrors struct {
	msg  string
	last error
}

func (e *pushErrors) Error() string { return e.msg }
func (e *pushErrors) Unwrap() error { return e.last }

// clipUTF16 returns s cut to at most max UTF-16 code units, on a whole
// character, ending in "…" when cut.
func clipUTF16(s string, max int) string {
	if utf16Len(s) <= max {
		return s
	}
	n := 0
	for i, r := range s {
		n += runeUnits(r)
		if n > max-1 { // leave room for the ellipsis
			return s[:i] + "…"
		}
	}
	return s
}

// utf16Len is the length of s in UTF-16 code units.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += runeUnits(r)
	}
	return n
}

// runeUnits is r's length in UTF-16 code units; invalid UTF-8, which
// ranging over a string yields as U+FFFD, goes into JSON as U+FFFD too.
func runeUnits(r rune) int {
	if w := utf16.RuneLen(r); w > 0 {
		return w
	}
	return 1
}
