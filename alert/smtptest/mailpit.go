//go:build linux

// Package smtptest runs a real SMTP server for tests, mailpit
// (github.com/axllent/mailpit, the version the Makefile pins), on free
// loopback ports: what it takes is read back through its HTTP API. It
// serves TLS, from the first byte or after STARTTLS, with a certificate of
// a CA made for the test, and takes logins from a list.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mamoru/testproc"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Server is one mailpit server (github.com/axllent/mailpit, the version
// the Makefile pins): SMTP at SMTP, and at API the HTTP API the tests read
// the mail it took back through, both on loopback.
type Server struct {
	SMTP, API string
	Log       string

	t    testing.TB
	proc *testproc.Proc
}

// Options say how a Server serves SMTP.
type Options struct {
	// CA signs the server's certificate for 127.0.0.1: it offers STARTTLS
	// and requires it, or with Implicit speaks TLS from the first byte.
	// nil is a server in plain text that offers no STARTTLS.
	CA       *CA
	Implicit bool
	// Users are the logins it takes, user → password; nil takes mail
	// without one.
	Users map[string]string
	// Recipients, when set, is a regular expression: it refuses other
	// recipients.
	Recipients string
	// SMTP is the address to serve SMTP at; "" is a free port.
	SMTP string
	// Chaos, when set, are mailpit's chaos triggers: "Recipient:451:100"
	// answers every RCPT with 451. SetChaos changes them.
	Chaos string
}

// Binary returns the mailpit binary's path: $MAMORU_MAILPIT, then
// the cache directory where `make mailpit` installs it, then mailpit on
// PATH; or fails t saying how to get it.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MAMORU_MAILPIT"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	if found, _ := filepath.Glob(filepath.Join(home, ".cache", "mamoru", "mailpit-*", "mailpit")); len(found) > 0 {
		return found[len(found)-1]
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	t.Fatalf("no mailpit binary: run 'make mailpit' (it installs it under ~/.cache/mamoru), or set MAMORU_MAILPIT")
	return ""
}

// Start starts a mailpit and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	dir := t.TempDir()
	m := &Server{SMTP: o.SMTP, API: FreeAddr(t), Log: filepath.Join(dir, "mailpit.log"), t: t}
	if m.SMTP == "" {
		m.SMTP = FreeAddr(t)
	}
	args := []string{"--smtp", m.SMTP, "--listen", m.API, "--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns"}
	if o.CA != nil {
		cert, key := o.CA.serverFiles(t, dir)
		args = append(args, "--smtp-tls-cert", cert, "--smtp-tls-key", key)
		if o.Implicit {
			args = append(args, "--smtp-require-tls")
		} else {
			args = append(args, "--smtp-require-starttls")
		}
	}
	if o.Users != nil {
		auth := filepath.Join(dir, "smtp-auth")
		var lines string
		for u, p := range o.Users {
			lines += u + ":" + p + "\n"
		}
		if err := os.WriteFile(auth, []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--smtp-auth-file", auth)
	}
	if o.Chaos != "" {
		args = append(args, "--enable-chaos", "--chaos-triggers", o.Chaos)
	}
	if o.Recipients != "" {
		args = append(args, "--smtp-allowed-recipients", o.Recipients)
	}
	log, err := os.Create(m.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = log, log
	m.proc = testproc.Start(t, "mailpit", cmd, m.Log)
	t.Cleanup(m.Stop)
	m.waitReady()
	return m
}

// waitReady waits until mailpit answers on its API and takes connections
// on its SMTP port.
func (m *Server) waitReady() {
	m.t.Helper()
	client := &http.Client{Timeout: time.Second}
	m.proc.WaitReady(m.t, 30*time.Second, 50*time.Millisecond, func() bool {
		resp, err := client.Get("http://" + m.API + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		c, err := net.DialTimeout("tcp", m.SMTP, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Stop stops this mailpit, by its pid alone: SIGTERM, then SIGKILL after
// 10 s.
func (m *Server) Stop() {
	m.proc.Stop()
	m.proc = nil
}

// Address is an address as mailpit's API gives it.
type Address struct{ Name, Address string }

// Message is a mail as mailpit parsed it, and Raw as it took it.
type Message struct {
	ID, MessageID, Subject, Text, Username string
	From                                   Address
	To                                     []Address
	Raw                                    string
}

// Messages returns every mail mailpit took, newest first.
func (m *Server) Messages() []Message {
	m.t.Helper()
	var list struct{ Messages []struct{ ID string } }
	m.get("/api/v1/messages", &list)
	var msgs []Message
	for _, l := range list.Messages {
		var msg Message
		m.get("/api/v1/message/"+l.ID, &msg)
		m.get("/api/v1/message/"+l.ID+"/raw", &msg.Raw)
		msgs = append(msgs, msg)
	}
	return msgs
}

// SetChaos sets mailpit's chaos triggers (its API's JSON, e.g.
// {"Recipient": {"ErrorCode": 451, "Probability": 0}}).
func (m *Server) SetChaos(triggers string) {
	m.t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+m.API+"/api/v1/chaos", strings.NewReader(triggers))
	if err != nil {
		m.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		m.t.Fatalf("PUT /api/v1/chaos: %s: %s", resp.Status, body)
	}
}

// get reads path from the API into v: JSON, or the body whole for a
// *string.
func (m *Server) get(path string, v any) {
	m.t.Helper()
	resp, err := http.Get("http://" + m.API + path)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		m.t.Fatalf("GET %s: %s %v: %s", path, resp.Status, err, body)
	}
	if s, ok := v.(*string); ok {
		*s = string(body)
		return
	}
	if err := json.Unmarshal(body, v); err != nil {
		m.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// FreeAddr returns a loopback address no one listens at, for a moment.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// CA is a certificate authority made for one test: Pool trusts it, and so
// does a process whose SSL_CERT_FILE is File.
type CA struct {
	Pool *x509.CertPool
	File string // the CA's certificate, PEM
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA for t.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mamoru test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &CA{Pool: pool, File: file, cert: cert, key: key}
}

// serverFiles writes a certificate for 127.0.0.1 and localhost, signed by
// ca, and its key, as PEM files in dir.
func (ca *CA) serverFiles(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "smtp.crt"), filepath.Join(dir, "smtp.key")
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(fmt.Errorf("write %s: %w", file, err))
		}
	}
	return certFile, keyFile
}
