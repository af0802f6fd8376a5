package alert

import (
	"context"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"mamoru/clock"
)

// NtfyOptions configure an Ntfy target.
type NtfyOptions struct {
	Label string // who this is, for errors; never the URL
	// URL is the topic's: https://ntfy.sh/<topic> or a self-hosted
	// server's. On ntfy.sh the topic is the only secret: pick one nobody
	// guesses.
	URL string
	// Token, when set, is sent as a bearer token (an ntfy access token,
	// tk_...), for a server or topic that requires one.
	Token    string
	Language string // the text: Japanese ("", "ja") or English ("en")
	// Client sends the requests; nil is a client with a 10 s timeout that
	// follows no redirect. Another should have a timeout too: a receiver
	// that never answers would hold up the queue.
	Client *http.Client
	// Wall reads the time for a receiver's Retry-After date; nil is the
	// system clock.
	Wall clock.Clock
}

// Ntfy publishes events to an ntfy topic, which pushes them to the phones
// of everyone subscribed in the ntfy app: a POST of the text a person
// reads, with the headers ntfy's publish API takes:
//
//	Title:    the title, RFC 2047-encoded when not ASCII (ntfy decodes it)
//	Priority: 5 for an urgent press, 4 for any other press and for what
//	          stops recording, 3 for the rest
//	Tags:     emoji names, e.g. rotating_light
//	Click:    the console's page for the incident, when there is one
//	Authorization: Bearer <token>, when a token is set
type Ntfy struct {
	opts NtfyOptions
	kind string
}

// ntfyFixes refine fixes for ntfy's answers.
var ntfyFixes = map[int]string{
	http.StatusUnauthorized: "the ntfy server wants a login: set the target's token (an access token, tk_...)",
	http.StatusForbidden:    "the token may not publish to this topic: check the token and the topic's access",
}

// NewNtfy checks o and returns its target.
func NewNtfy(o NtfyOptions) (*Ntfy, error) {
	if err := checkURL(o.URL); err != nil {
		return nil, err
	}
	if err := CheckLanguage(o.Language); err != nil {
		return nil, err
	}
	o.Token = strings.TrimSpace(o.Token) // a token file ends in a newline
	return &Ntfy{opts: o, kind: "ntfy " + o.Label}, nil
}

// Send publishes e.
func (n *Ntfy) Send(ctx context.Context, e Event) error {
	m := Render(e, n.opts.Language)
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Title", mime.BEncoding.Encode("UTF-8", m.Title))
	h.Set("Priority", strconv.Itoa(priority(e)))
	h.Set("Tags", tags[e.Name])
	if e.Link != "" {
		h.Set("Click", e.Link)
	}
	if n.opts.Token != "" {
		h.Set("Authorization", "Bearer "+n.opts.Token)
	}
	return post(ctx, n.opts.Client, n.opts.URL, h, []byte(m.Body), n.kind, ntfyFixes, clock.Or(n.opts.Wall).Now())
}
