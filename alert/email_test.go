//go:build linux

package alert

import (
	"context"
	"errors"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"mamoru/alert/smtptest"
)

const (
	mailUser     = "mamoru@shop.example.jp"
	mailPassword = "pa55word-for-smtp"
)

// emailTo returns an Email target for server at scheme://addr, trusting
// ca, logging in as mailUser with password.
func emailTo(t testing.TB, scheme, addr string, ca *smtptest.CA, password string) *Email {
	t.Helper()
	o := EmailOptions{Label: "オーナー", URL: scheme + "://" + addr, Username: mailUser, Password: password,
		From: "まもる <" + mailUser + ">", To: []string{"店長 <manager@shop.example.jp>", "hq@example.jp"}}
	if ca != nil {
		o.RootCAs = ca.Pool
	}
	m, err := NewEmail(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// An urgent press reaches the manager's mailbox over smtps:// and over
// smtp:// with STARTTLS, logged in: the subject a lock screen shows, in
// Japanese, and the console's link in the body. A retry is the same mail
// by its Message-ID.
func TestEmailDelivers(t *testing.T) {
	ca := smtptest.NewCA(t)
	for _, tt := range []struct {
		scheme   string
		implicit bool
	}{{"smtps", true}, {"smtp", false}} {
		t.Run(tt.scheme, func(t *testing.T) {
			server := smtptest.Start(t, smtptest.Options{CA: ca, Implicit: tt.implicit, Users: map[string]string{mailUser: mailPassword}})
			m := emailTo(t, tt.scheme, server.SMTP, ca, mailPassword)
			e := pressEvent()
			for range 2 {
				if err := m.Send(t.Context(), e); err != nil {
					t.Fatal(err)
				}
			}
			got := server.Messages()
			if len(got) != 2 {
				t.Fatalf("mailpit took %d mails, want 2", len(got))
			}
			msg := got[0]
			const subject = "【至急】カウンター1で通報ボタン 14:02"
			tests := []struct{ what, got, want string }{
				{"subject", msg.Subject, subject},
				{"message id", msg.MessageID, e.ID + "@mamoru"},
				{"the retry's message id", got[1].MessageID, e.ID + "@mamoru"},
				{"from", msg.From.Name + " " + msg.From.Address, "まもる " + mailUser},
				{"login", msg.Username, mailUser},
			}
			for _, tt := range tests {
				if tt.got != tt.want {
					t.Errorf("%s = %q, want %q", tt.what, tt.got, tt.want)
				}
			}
			if len(msg.To) != 2 || msg.To[0].Name != "店長" || msg.To[0].Address != "manager@shop.example.jp" || msg.To[1].Address != "hq@example.jp" {
				t.Errorf("to = %+v, want 店長 <manager@shop.example.jp>, hq@example.jp", msg.To)
			}
			for _, want := range []string{e.Link, "事案: shop-1/counter-1/20261130-140205-000042", "通報: 2026-11-30 14:02:05"} {
				if !strings.Contains(msg.Text, want) {
					t.Errorf("body %q does not contain %q", msg.Text, want)
				}
			}

			// The raw mail, as a mail reader other than mailpit's sees it.
			raw, err := mail.ReadMessage(strings.NewReader(msg.Raw))
			if err != nil {
				t.Fatal(err)
			}
			rawSubject := raw.Header.Get("Subject")
			var dec mime.WordDecoder
			if decoded, err := dec.DecodeHeader(rawSubject); err != nil || decoded != subject || !strings.HasPrefix(rawSubject, "=?UTF-8?b?") {
				t.Errorf("raw Subject %q decodes to %q, %v; want %q, B-encoded", rawSubject, decoded, err, subject)
			}
			for k, want := range map[string]string{
				"Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "base64",
				"Importance": "high", "Auto-Submitted": "auto-generated",
				"References": "<" + e.Incident + "@mamoru>",
			} {
				if got := raw.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			// The server's trace names the client as it said EHLO: by its
			// address, having no name in the DNS.
			if got := raw.Header.Get("Received"); !strings.HasPrefix(got, "from [127.0.0.1] ") {
				t.Errorf("Received = %q, want EHLO [127.0.0.1]", got)
			}
			if d, err := raw.Header.Date(); err != nil || time.Since(d) > time.Minute {
				t.Errorf("Date = %v, %v; want now", d, err)
			}
		})
	}
}

// A server that offers no STARTTLS is never written to in plain text: the
// target refuses it, saying what to fix, and the server takes no mail.
func TestEmailRefusesPlainText(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{})
	m := emailTo(t, "smtp", server.SMTP, nil, mailPassword)
	err := m.Send(t.Context(), pressEvent())
	var p *Permanent
	if !errors.As(err, &p) || !strings.Contains(p.Fix, "STARTTLS") || !strings.Contains(p.Fix, "smtps://") {
		t.Errorf("Send to a server without STARTTLS = %v, want a *Permanent saying to use smtps:// or STARTTLS", err)
	}
	if got := server.Messages(); len(got) != 0 {
		t.Errorf("the server took %d mails in plain text", len(got))
	}
}

// Refusals no retry cures are *Permanent, saying what to fix, and never
// show the password; and none sends the mail to anyone.
func TestEmailPermanent(t *testing.T) {
	ca := smtptest.NewCA(t)
	server := smtptest.Start(t, smtptest.Options{CA: ca, Users: map[string]string{mailUser: mailPassword}, Recipients: `^manager@shop\.example\.jp$`})
	implicit := smtptest.Start(t, smtptest.Options{CA: ca, Implicit: true})
	untrusted := smtptest.Start(t, smtptest.Options{CA: smtptest.NewCA(t)})
	oneTo := func(m *Email) *Email { m.to = m.to[:1]; return m }
	tests := []struct {
		name    string
		m       *Email
		status  int
		wantFix string
	}{
		{"wrong password", oneTo(emailTo(t, "smtp", server.SMTP, ca, "wrong-password")), 535, "password_file"},
		{"refused recipient", emailTo(t, "smtp", server.SMTP, ca, mailPassword), 550, "'to' entry 2"},
		{"untrusted certificate", emailTo(t, "smtps", implicit.SMTP, nil, ""), 0, "unknown authority"},
		{"certificate of another authority", emailTo(t, "smtp", untrusted.SMTP, ca, ""), 0, "unknown authority"},
		{"smtps to a STARTTLS port", emailTo(t, "smtps", server.SMTP, ca, mailPassword), 0, "smtp://"},
	}
	for _, tt := range tests {
		err := tt.m.Send(t.Context(), pressEvent())
		var p *Permanent
		if !errors.As(err, &p) {
			t.Errorf("%s: Send = %v, want a *Permanent", tt.name, err)
			continue
		}
		if p.Status != tt.status || !strings.Contains(p.Fix, tt.wantFix) {
			t.Errorf("%s: %v (status %d), want status %d and a fix naming %q", tt.name, err, p.Status, tt.status, tt.wantFix)
		}
		if strings.Contains(err.Error(), mailPassword) || strings.Contains(err.Error(), "wrong-password") {
			t.Errorf("%s: %v shows the password", tt.name, err)
		}
	}
	for _, s := range []*smtptest.Server{server, implicit, untrusted} {
		if got := s.Messages(); len(got) != 0 {
			t.Errorf("a server took %d mails, want none", len(got))
		}
	}
}

// A 4xx reply is worth retrying, and nothing is sent until the server
// takes the mail whole.
func TestEmailTransientReply(t *testing.T) {
	ca := smtptest.NewCA(t)
	server := smtptest.Start(t, smtptest.Options{CA: ca, Users: map[string]string{mailUser: mailPassword}, Chaos: "Recipient:451:100"})
	m := emailTo(t, "smtp", server.SMTP, ca, mailPassword)
	e := pressEvent()
	err := m.Send(t.Context(), e)
	var p *Permanent
	if err == nil || errors.As(err, &p) || !strings.Contains(err.Error(), "SMTP 451") {
		t.Fatalf("Send answered 451 = %v, want an error worth retrying", err)
	}
	if got := server.Messages(); len(got) != 0 {
		t.Fatalf("the server took %d mails, want none", len(got))
	}
	server.SetChaos(`{"Recipient": {"ErrorCode": 451, "Probability": 0}}`)
	if err := m.Send(t.Context(), e); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if got := server.Messages(); len(got) != 1 || got[0].MessageID != e.ID+"@mamoru" {
		t.Errorf("the server took %+v, want the press once", got)
	}
}

// While the server is down, the press waits in the queue; when it comes
// back, the mail goes, once.
func TestEmailServerDownThenUp(t *testing.T) {
	ca := smtptest.NewCA(t)
	addr := smtptest.FreeAddr(t)
	fc := clockwork.NewFakeClockAt(time.Date(2026, 11, 30, 5, 2, 5, 0, time.UTC))
	accepted := make(chan Event, 10)
	q, err := OpenQueue(t.TempDir(), emailTo(t, "smtps", addr, ca, mailPassword),
		QueueOptions{Label: "オーナー", Clock: fc, Log: quiet, Accepted: func(e Event) { accepted <- e }})
	if err != nil {
		t.Fatal(err)
	}
	e := pressEvent()
	if err := q.Put(e); err != nil {
		t.Fatal(err)
	}
	runQueue(t, q)
	// The first attempt fails, and the queue waits to retry.
	if err := fc.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if st := q.Status(); st.LastError == "" || st.NeedsFix || st.Delivered != 0 {
		t.Fatalf("Status with the server down = %+v, want an error worth retrying", st)
	}
	server := smtptest.Start(t, smtptest.Options{SMTP: addr, CA: ca, Implicit: true, Users: map[string]string{mailUser: mailPassword}})
	acceptAll(t, fc, accepted, 1)
	got := server.Messages()
	if len(got) != 1 || got[0].MessageID != e.ID+"@mamoru" {
		t.Fatalf("mailpit took %+v, want the press once", got)
	}
}

func TestNewEmailRejects(t *testing.T) {
	ok := EmailOptions{URL: "smtps://smtp.example.jp:465", From: "m@example.jp", To: []string{"a@example.jp"}}
	tests := []struct {
		name string
		edit func(*EmailOptions)
	}{
		{"http", func(o *EmailOptions) { o.URL = "https://smtp.example.jp:465" }},
		{"no port", func(o *EmailOptions) { o.URL = "smtps://smtp.example.jp" }},
		{"user in url", func(o *EmailOptions) { o.URL = "smtps://u:s3cr3t@smtp.example.jp:465" }},
		{"password without user", func(o *EmailOptions) { o.Password = "s3cr3t" }},
		{"no to", func(o *EmailOptions) { o.To = nil }},
		{"bad from", func(o *EmailOptions) { o.From = "mamoru" }},
		{"header injection", func(o *EmailOptions) { o.To = []string{"a@example.jp\r\nBcc: x@evil.example"} }},
		{"unknown language", func(o *EmailOptions) { o.Language = "fr" }},
	}
	for _, tt := range tests {
		o := ok
		tt.edit(&o)
		_, err := NewEmail(o)
		if err == nil {
			t.Errorf("%s: NewEmail = nil error", tt.name)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: %v shows the password", tt.name, err)
		}
	}
	if _, err := NewEmail(ok); err != nil {
		t.Errorf("NewEmail(%+v) = %v", ok, err)
	}
}

// A header value that would span lines is refused before anything is
// sent, whatever its source.
func TestEmailRefusesMultilineHeader(t *testing.T) {
	m, err := NewEmail(EmailOptions{URL: "smtps://127.0.0.1:1", From: "m@example.jp", To: []string{"a@example.jp"}})
	if err != nil {
		t.Fatal(err)
	}
	e := pressEvent()
	e.Label = "カウンター1\r\nBcc: x@evil.example"
	var p *Permanent
	if err := m.Send(t.Context(), e); !errors.As(err, &p) {
		t.Errorf("Send with a label of two lines = %v, want a *Permanent", err)
	}
}

// A server that never answers holds a delivery no longer than its context
// or its Timeout: both end it with an error worth retrying.
func TestEmailHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c // and never greet
		}
	}()
	defer func() {
		for range len(accepted) {
			(<-accepted).Close()
		}
	}()
	o := EmailOptions{URL: "smtp://" + l.Addr().String(), From: "m@example.jp", To: []string{"a@example.jp"}}
	m, err := NewEmail(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		c := <-accepted
		cancel()
		accepted <- c
	}()
	var p *Permanent
	if err := m.Send(ctx, pressEvent()); !errors.Is(err, context.Canceled) || errors.As(err, &p) {
		t.Errorf("Send cancelled while waiting for the greeting = %v, want context.Canceled", err)
	}

	o.Timeout = 50 * time.Millisecond
	if m, err = NewEmail(o); err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), pressEvent()); !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &p) {
		t.Errorf("Send to a server that never greets = %v, want a timeout worth retrying", err)
	}
}

// A connection dropped after the greeting is the network's failure, worth
// retrying, not a server without STARTTLS.
func TestEmailDroppedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 mail.example ESMTP\r\n"))
			c.Close()
		}
	}()
	m, err := NewEmail(EmailOptions{URL: "smtp://" + l.Addr().String(), From: "m@example.jp", To: []string{"a@example.jp"}})
	if err != nil {
		t.Fatal(err)
	}
	var p *Permanent
	if err := m.Send(t.Context(), pressEvent()); err == nil || errors.As(err, &p) {
		t.Errorf("Send over a dropped connection = %v, want an error worth retrying", err)
	}
}

// The login goes by what the server offers: PLAIN, else LOGIN, else none.
func TestEmailAuthChoice(t *testing.T) {
	m, err := NewEmail(EmailOptions{URL: "smtps://smtp.example.jp:465", Username: "u", Password: "p", From: "m@example.jp", To: []string{"a@example.jp"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ offered, want string }{
		{"PLAIN LOGIN", "PLAIN"},
		{"LOGIN PLAIN", "PLAIN"},
		{"login xoauth2", "LOGIN"},
		{"CRAM-MD5 XOAUTH2", ""},
	}
	for _, tt := range tests {
		auth := m.auth(tt.offered)
		got := ""
		if auth != nil {
			got, _, err = auth.Start(&smtp.ServerInfo{Name: "smtp.example.jp", TLS: true})
			if err != nil {
				t.Fatal(err)
			}
		}
		if got != tt.want {
			t.Errorf("offered %q: login %q, want %q", tt.offered, got, tt.want)
		}
	}
}

// AUTH LOGIN, spoken with a real server: the right password logs in, a
// wrong one is refused; and never over plain text.
func TestEmailLoginAuth(t *testing.T) {
	ca := smtptest.NewCA(t)
	server := smtptest.Start(t, smtptest.Options{CA: ca, Implicit: true, Users: map[string]string{mailUser: mailPassword}})
	for _, tt := range []struct {
		password string
		ok       bool
	}{{mailPassword, true}, {"wrong-password", false}} {
		m := emailTo(t, "smtps", server.SMTP, ca, tt.password)
		conn, err := m.dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		c, err := smtp.NewClient(conn, m.host)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Auth(&loginAuth{username: mailUser, password: tt.password, host: m.host})
		c.Close()
		if (err == nil) != tt.ok {
			t.Errorf("AUTH LOGIN with password %q: %v, want ok %v", tt.password, err, tt.ok)
		}
	}
	if _, _, err := (&loginAuth{host: "h"}).Start(&smtp.ServerInfo{Name: "h"}); err == nil {
		t.Error("AUTH LOGIN starts without TLS")
	}
}
