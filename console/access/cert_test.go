package access

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// LoadOrCreateCert makes a pair once, and then loads the same one: the
// fingerprint it prints is the one a browser sees from the server.
func TestAccessLoadOrCreateCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "console-tls.crt"), filepath.Join(dir, "console-tls.key")
	hosts := []string{"127.0.0.1", "192.168.1.20", "shop-pc.local"}
	cert, fp, created, err := LoadOrCreateCert(certFile, keyFile, hosts)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCert = %v, created %v; want a new pair", err, created)
	}
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Errorf("fingerprint %q; want 32 upper-case hex pairs joined by ':'", fp)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	if strings.ReplaceAll(fp, ":", "") != strings.ToUpper(hex.EncodeToString(sum[:])) {
		t.Errorf("fingerprint %q is not the SHA-256 of the certificate", fp)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[1].Equal(net.ParseIP("192.168.1.20")) || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "shop-pc.local" {
		t.Errorf("certificate for %v %v; want %v", leaf.IPAddresses, leaf.DNSNames, hosts)
	}
	if d := time.Until(leaf.NotAfter); d < CertValidity-time.Hour || d > CertValidity {
		t.Errorf("certificate valid until %v; want about two years", leaf.NotAfter)
	}
	if err := leaf.VerifyHostname("192.168.1.20"); err != nil {
		t.Error(err)
	}

	_, again, created, err := LoadOrCreateCert(certFile, keyFile, hosts)
	if err != nil || created || again != fp {
		t.Errorf("second LoadOrCreateCert = %q, created %v, %v; want the same %q loaded", again, created, err, fp)
	}

	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if seen := Fingerprint(conn.ConnectionState().PeerCertificates[0].Raw); seen != fp {
		t.Errorf("a client sees %s; printed %s", seen, fp)
	}
}

func TestAccessLoadOrCreateCertRefuses(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	if _, _, _, err := LoadOrCreateCert(certFile, keyFile, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := LoadOrCreateCert(certFile, keyFile, nil); err == nil || !strings.Contains(err.Error(), keyFile+" must have mode 0600 or 0400") {
		t.Errorf("a key others may read: %v; want an error naming %s and its mode", err, keyFile)
	}
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if _, _, created, err := LoadOrCreateCert(certFile, keyFile, nil); err == nil || created || !strings.Contains(err.Error(), "only one exists") {
		t.Errorf("a key without its certificate: %v, created %v; want it refused, not replaced", err, created)
	}
	if _, err := os.Stat(certFile); err == nil {
		t.Errorf("LoadOrCreateCert wrote %s beside a key it did not make", certFile)
	}
}
