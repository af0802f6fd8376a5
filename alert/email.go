package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"mamoru/clock"
)

// EmailOptions configure an Email target.
type EmailOptions struct {
	Label string // who this is, for errors; never the server or the password
	// URL is the SMTP server: "smtps://host:port", TLS from the first byte
	// (usually port 465), or "smtp://host:port", which must offer STARTTLS
	// (usually port 587). Mail is never sent in plain text.
	URL string
	// Username and Password log in with AUTH PLAIN (or AUTH LOGIN where
	// the server offers only that), over TLS only; no Username sends
	// without logging in.
	Username, Password string
	// From is the sender and To the recipients: a bare address
	// ("manager@shop.example.jp") or a name and address
	// ("店長 <manager@shop.example.jp>").
	From     string
	To       []string
	Language string // the text: Japanese ("", "ja") or English ("en")
	// RootCAs are the authorities the server's certificate must chain to;
	// nil is the system's.
	RootCAs *x509.CertPool
	// Timeout bounds one delivery, from the dial to the server's answer to
	// the message; 0 is 30 s. It is the network's time, real.
	Timeout time.Duration
	// Wall reads the time for the Date header; nil is the system clock.
	Wall clock.Clock
}

// Email sends each event as a mail through an SMTP server, over TLS from
// the start (smtps://) or after STARTTLS (smtp://; a server that does not
// offer it is refused, never written to in plain text). The mail is
//
//	Subject:    the title a phone's lock screen shows, RFC 2047-encoded:
//	            "【至急】カウンター1で通報ボタン 14:02"
//	Message-ID: <event id@mamoru>, the same on every retry, so a retry that
//	            reaches a mailbox twice is recognisably the same mail
//	References: <store/device/incident@mamoru>, so that the mails about
//	            one incident thread together
//	Importance: high, for an urgent press
//	body:       text/plain in UTF-8, base64: the event's details and the
//	            console's link
type Email struct {
	opts     EmailOptions
	host     string // the server's name, for its certificate and AUTH PLAIN
	addr     string // host:port
	implicit bool   // smtps://: TLS from the first byte
	from     *mail.Address
	to       []*mail.Address
	kind     string
}

// defaultEmailTimeout bounds a delivery when EmailOptions.Timeout is 0.
const defaultEmailTimeout = 30 * time.Second

// NewEmail checks o and returns its target. Errors never repeat the
// password.
func NewEmail(o EmailOptions) (*Email, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" || u.User != nil {
		return nil, errors.New(`alert: the url is not "smtps://host:port" or "smtp://host:port"`)
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return nil, errors.New("alert: the url must name the SMTP server's port, host:port")
	}
	if err := CheckLanguage(o.Language); err != nil {
		return nil, err
	}
	if o.Password != "" && o.Username == "" {
		return nil, errors.New("alert: a password without a username")
	}
	m := &Email{opts: o, host: u.Hostname(), addr: u.Host, implicit: u.Scheme == "smtps", kind: "email " + o.Label}
	if m.from, err = parseAddress(o.From); err != nil {
		return nil, fmt.Errorf("alert: from: %w", err)
	}
	if len(o.To) == 0 {
		return nil, errors.New("alert: an e-mail needs at least one address to go to")
	}
	for i, s := range o.To {
		a, err := parseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("alert: to entry %d: %w", i+1, err)
		}
		m.to = append(m.to, a)
	}
	return m, nil
}

// parseAddress parses one address, refusing anything that could end a
// header line: config checks addresses too, but a header is written here.
func parseAddress(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%q is more than one line", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an e-mail address: %w", s, err)
	}
	return a, nil
}

// Send mails e to every recipient: all take it, or the error says which
// refused and none is sent it.
func (m *Email) Send(ctx context.Context, e Event) error {
	msg, err := m.message(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	return m.session(ctx, func(c *smtp.Client) error { return m.deliver(ctx, c, msg) })
}

// Probe connects, says hello, starts TLS and logs in as Send does, and
// quits without sending: `mamoru check` shows a server that cannot be
// reached, whose certificate is not trusted, or that refuses the login.
func (m *Email) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	return m.session(ctx, func(c *smtp.Client) error { return c.Quit() })
}

func (m *Email) timeout() time.Duration {
	if m.opts.Timeout <= 0 {
		return defaultEmailTimeout
	}
	return m.opts.Timeout
}

// session connects and logs in (login), then runs then on the client.
func (m *Email) session(ctx context.Context, then func(*smtp.Client) error) error {
	conn, err := m.dial(ctx)
	if err != nil {
		return m.failed(ctx, "connect", err)
	}
	// Every read and write ends when ctx does, at its deadline or when it
	// is cancelled, with ctx's error.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	defer conn.Close()
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		return m.failed(ctx, "greeting", err)
	}
	defer c.Close()
	if err := m.login(ctx, c, conn); err != nil {
		return err
	}
	return then(c)
}

func (m *Email) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: m.host, RootCAs: m.opts.RootCAs, MinVersion: tls.VersionTLS12}
}

// dial connects to the server, with the TLS handshake done for smtps://.
func (m *Email) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{}
	if m.implicit {
		return (&tls.Dialer{NetDialer: d, Config: m.tlsConfig()}).DialContext(ctx, "tcp", m.addr)
	}
	return d.DialContext(ctx, "tcp", m.addr)
}

// login speaks SMTP on c up to the envelope: EHLO, STARTTLS unless the
// connection is TLS already, and the login.
func (m *Email) login(ctx context.Context, c *smtp.Client, conn net.Conn) error {
	// EHLO now, for its error: Extension would take a dropped connection
	// for a server without the extension.
	if err := c.Hello(heloName(conn)); err != nil {
		return m.failed(ctx, "EHLO", err)
	}
	if !m.implicit {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return &Permanent{
				Fix: "the SMTP server does not offer STARTTLS, and mail is never sent in plain text: use its TLS port with smtps:// (usually 465), or turn STARTTLS on",
				Err: fmt.Errorf("alert: %s: the server offers no STARTTLS", m.kind),
			}
		}
		if err := c.StartTLS(m.tlsConfig()); err != nil {
			return m.failed(ctx, "STARTTLS", err)
		}
	}
	if m.opts.Username != "" {
		ok, mechs := c.Extension("AUTH")
		if !ok {
			return &Permanent{
				Fix: "the SMTP server offers no login: leave 'username' and 'password_file' out if it takes mail without one",
				Err: fmt.Errorf("alert: %s: the server offers no AUTH", m.kind),
			}
		}
		auth := m.auth(mechs)
		if auth == nil {
			return &Permanent{
				Fix: fmt.Sprintf("the SMTP server takes neither AUTH PLAIN nor AUTH LOGIN, the logins mamoru speaks (it offers %s)", mechs),
				Err: fmt.Errorf("alert: %s: no AUTH PLAIN or LOGIN", m.kind),
			}
		}
		if err := c.Auth(auth); err != nil {
			return m.failed(ctx, "login", err)
		}
	}
	return nil
}

// deliver sends the envelope and the message on a client logged in. The
// mail is sent once the server has answered the message with 250; what
// follows cannot fail it.
func (m *Email) deliver(ctx context.Context, c *smtp.Client, msg []byte) error {
	if err := c.Mail(m.from.Address); err != nil {
		return m.failed(ctx, "sender", err)
	}
	for i, to := range m.to {
		if err := c.Rcpt(to.Address); err != nil {
			_ = c.Reset() // send it to none rather than to some
			return m.failed(ctx, "to entry "+strconv.Itoa(i+1), err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return m.failed(ctx, "message", err)
	}
	if _, err := w.Write(msg); err != nil {
		return m.failed(ctx, "message", err)
	}
	if err := w.Close(); err != nil {
		return m.failed(ctx, "message", err)
	}
	_ = c.Quit()
	return nil
}

// auth is the login to use among the mechanisms a server offers: PLAIN,
// or LOGIN for a server without it; nil when it offers neither. Both
// send the password as it is, and both refuse a connection without TLS.
func (m *Email) auth(mechs string) smtp.Auth {
	offered := strings.Fields(strings.ToUpper(mechs))
	switch {
	case slices.Contains(offered, "PLAIN"):
		return smtp.PlainAuth("", m.opts.Username, m.opts.Password, m.host)
	case slices.Contains(offered, "LOGIN"):
		return &loginAuth{username: m.opts.Username, password: m.opts.Password, host: m.host}
	}
	return nil
}

// loginAuth is AUTH LOGIN (draft-murchison-sasl-login): the server asks
// for the username, then the password. The prompts' words vary between
// servers, so the answers go by their order.
type loginAuth struct {
	username, password, host string
	asked                    int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		return "", nil, errors.New("unencrypted connection")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	a.asked = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(prompt []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.asked++
	switch a.asked {
	case 1:
		return []byte(a.username), nil
	case 2:
		return []byte(a.password), nil
	}
	return nil, fmt.Errorf("AUTH LOGIN: a third prompt %q", prompt)
}

// heloName is the name EHLO gives. A recorder has no name in the DNS, so
// it gives its address as a literal, as RFC 5321 (4.1.4) asks of such a
// client, rather than "localhost", which some servers refuse.
func heloName(conn net.Conn) string {
	a, ok := conn.LocalAddr().(*net.TCPAddr)
	switch {
	case !ok:
		return "localhost"
	case a.IP.To4() != nil:
		return "[" + a.IP.To4().String() + "]"
	}
	return "[IPv6:" + a.IP.String() + "]"
}

// smtpFixes say, per SMTP reply no retry cures, what to do.
var smtpFixes = map[int]string{
	530: "the SMTP server wants a login: set 'username' and 'password_file'",
	534: "the SMTP server wants a stronger login: many providers want an app password in 'password_file'",
	535: "the SMTP server refuses the login: check 'username' and the password in 'password_file' (many providers want an app password)",
	538: "the SMTP server wants a login over TLS",
	552: "the SMTP server refuses a message this large",
	554: "the SMTP server refuses the mail: check 'from' and 'to', and that this login may send",
}

// addressRefused are the replies that refuse an address (RFC 5321 4.2.2,
// 4.2.3): its fix names which.
var addressRefused = []int{550, 551, 553}

// failed says which step failed and classifies its error: a 5xx reply, a
// certificate no retry makes valid (certificateFix), or a server that
// does not speak TLS on an smtps:// port is a *Permanent; a 4xx reply or
// the network is worth retrying. Network errors say the step, not the
// server's address.
func (m *Email) failed(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		// Ended by ctx: a timeout, or the caller cancelling.
		return fmt.Errorf("alert: %s: %s: %w", m.kind, step, ctx.Err())
	}
	var op *net.OpError
	if errors.As(err, &op) {
		err = fmt.Errorf("%s: %w", op.Op, op.Err)
	}
	var reply *textproto.Error
	if errors.As(err, &reply) {
		err = fmt.Errorf("alert: %s: %s: SMTP %d %s", m.kind, step, reply.Code, reply.Msg)
		if reply.Code < 500 {
			return err
		}
		fix, ok := smtpFixes[reply.Code]
		switch entry, isTo := strings.CutPrefix(step, "to "); {
		case isTo && slices.Contains(addressRefused, reply.Code):
			fix = fmt.Sprintf("the SMTP server refuses 'to' %s: check the address, and that the server takes or relays mail for it", entry)
		case step == "sender" && slices.Contains(addressRefused, reply.Code):
			fix = "the SMTP server refuses the sender: 'from' must be an address this login may send as"
		case !ok:
			fix = "the SMTP server refuses the mail: check the target's url, username, from and to"
		}
		return &Permanent{Status: reply.Code, Fix: fix, Err: err}
	}
	if fix := certificateFix(err, "the SMTP server"); fix != "" {
		return &Permanent{Fix: fix, Err: fmt.Errorf("alert: %s: %s: %w", m.kind, step, err)}
	}
	var notTLS tls.RecordHeaderError
	if errors.As(err, &notTLS) {
		return &Permanent{
			Fix: "the SMTP server does not speak TLS at this port: smtps:// is for TLS from the start (usually 465); use smtp:// for STARTTLS (usually 587)",
			Err: fmt.Errorf("alert: %s: %s: %w", m.kind, step, err),
		}
	}
	return fmt.Errorf("alert: %s: %s: %w", m.kind, step, err)
}

// msgIDLeft is what may stand left of the @ in a Message-ID (RFC 5322
// 3.6.4, dot-atom-text).
var msgIDLeft = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")

// message is e as a mail: its headers and its text. A header value that
// would span lines is refused, whatever its source.
func (m *Email) message(e Event) ([]byte, error) {
	text := Render(e, m.opts.Language)
	if strings.ContainsAny(text.Title+e.ID, "\r\n") {
		return nil, &Permanent{Fix: "the event cannot be mailed", Err: fmt.Errorf("alert: %s: a header would span lines", m.kind)}
	}
	to := make([]string, len(m.to))
	for i, a := range m.to {
		to[i] = a.String()
	}
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", m.from.String())
	header("To", strings.Join(to, ",\r\n "))
	header("Date", clock.Or(m.opts.Wall).Now().In(e.Time.Location()).Format(time.RFC1123Z))
	header("Message-ID", "<"+e.ID+"@mamoru>")
	if msgIDLeft.MatchString(e.Incident) {
		// The mails about one incident (the press, its urgent mark, the
		// clip saved and uploaded) thread together in a mail reader.
		header("References", "<"+e.Incident+"@mamoru>")
	}
	// An encoded word is at most 75 characters: one a line keeps each
	// line short, and readers join them with nothing between.
	header("Subject", strings.ReplaceAll(mime.BEncoding.Encode("UTF-8", text.Title), "?= =?", "?=\r\n =?"))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=UTF-8")
	header("Content-Transfer-Encoding", "base64")
	// RFC 3834: an auto-responder ("on holiday") answers nothing.
	header("Auto-Submitted", "auto-generated")
	if priority(e) == 5 {
		header("Importance", "high")
		header("X-Priority", "1")
	}
	b.WriteString("\r\n")
	body := base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(text.Body, "\n", "\r\n") + "\r\n"))
	for len(body) > 76 {
		b.WriteString(body[:76] + "\r\n")
		body = body[76:]
	}
	b.WriteString(body + "\r\n")
	return b.Bytes(), nil
}
