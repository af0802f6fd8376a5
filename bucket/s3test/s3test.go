//go:build linux

// Package s3test runs a real MinIO server for tests: in a temporary
// directory, on a free loopback port, optionally with TLS from a CA made for
// the test. It can be stopped and started again on the same port and data,
// to test outages.
//
// The minio binary is found in $MAMORU_MINIO, then on PATH, then in
// the cache directory where `make minio` installs it.
package s3test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mamoru/config"
	"mamoru/testproc"
)

// Root credentials of every test server.
const (
	RootUser     = "mamoru-root"
	RootPassword = "mamoru-root-secret"
)

// Server is one MinIO server.
type Server struct {
	Endpoint string // 127.0.0.1:port
	Secure   bool
	CAFile   string // the CA's PEM, when Secure
	Log      string // the server's output

	t       testing.TB
	bin     string
	data    string
	certs   string
	console string
	proc    *testproc.Proc
}

// Options configure Start.
type Options struct {
	TLS bool // serve https with a certificate from a CA made for the test
}

// Binary returns the minio binary's path, or fails t saying how to get it.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MAMORU_MINIO"); p != "" {
		return p
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	found, _ := filepath.Glob(filepath.Join(home, ".cache", "mamoru", "minio-*", "minio"))
	if len(found) == 0 {
		t.Fatalf("no minio server binary: run 'make minio' (it installs it under ~/.cache/mamoru), or set MAMORU_MINIO")
	}
	return found[len(found)-1]
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{
		t: t, bin: Binary(t), data: filepath.Join(dir, "data"), Log: filepath.Join(dir, "minio.log"),
		Endpoint: freeAddr(t), console: freeAddr(t), Secure: o.TLS,
	}
	if o.TLS {
		s.certs = filepath.Join(dir, "certs")
		s.CAFile = filepath.Join(dir, "ca.pem")
		makeCerts(t, s.certs, s.CAFile)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start starts the server again after Stop, on the same port and data.
func (s *Server) Start() {
	s.t.Helper()
	args := []string{"server", "--quiet", "--address", s.Endpoint, "--console-address", s.console}
	if s.certs != "" {
		args = append(args, "--certs-dir", s.certs)
	}
	args = append(args, s.data)
	log, err := os.OpenFile(s.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+RootUser, "MINIO_ROOT_PASSWORD="+RootPassword,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "CI=true")
	cmd.Stdout, cmd.Stderr = log, log
	s.proc = testproc.Start(s.t, "minio", cmd, s.Log)
	s.waitReady()
}

func (s *Server) waitReady() {
	s.t.Helper()
	client := &http.Client{Timeout: time.Second, Transport: s.transport()}
	scheme := "http"
	if s.Secure {
		scheme = "https"
	}
	s.proc.WaitReady(s.t, 60*time.Second, 100*time.Millisecond, func() bool {
		// The health check can pass before the object layer is up, when
		// S3 requests still get 503 "Server not initialized yet". An
		// anonymous list of buckets gets 403 once it is.
		resp, err := client.Get(scheme + "://" + s.Endpoint + "/minio/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		if resp, err = client.Get(scheme + "://" + s.Endpoint + "/"); err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusServiceUnavailable
	})
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s).
func (s *Server) Stop() {
	s.proc.Stop()
	s.proc = nil
}

func (s *Server) transport() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.Secure {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			s.t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return tr
}

// Root returns a client with the root credentials.
func (s *Server) Root() *minio.Client {
	s.t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(RootUser, RootPassword, ""), Secure: s.Secure, Transport: s.transport(),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// Bucket creates a bucket.
func (s *Server) Bucket(name string) {
	s.t.Helper()
	if err := s.Root().MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		s.t.Fatalf("make bucket %s: %v", name, err)
	}
}

// AddUser creates a user whose only rights are the IAM policy document
// policyJSON.
func (s *Server) AddUser(name, secret, policyJSON string) {
	s.t.Helper()
	if s.Secure {
		s.t.Fatal("s3test: AddUser needs a server without TLS")
	}
	adm, err := madmin.NewWithOptions(s.Endpoint, &madmin.Options{Creds: credentials.NewStaticV4(RootUser, RootPassword, ""), Secure: false})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := context.Background()
	if err := adm.AddUser(ctx, name, secret); err != nil {
		s.t.Fatalf("add user %s: %v", name, err)
	}
	if err := adm.AddCannedPolicy(ctx, name+"-policy", []byte(policyJSON)); err != nil {
		s.t.Fatalf("add policy for %s: %v", name, err)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{name + "-policy"}, User: name}); err != nil {
		s.t.Fatalf("attach policy to %s: %v", name, err)
	}
}

// Storage returns a [storage] configuration for bucket with the root
// credentials.
func (s *Server) Storage(bucket string) config.Storage {
	return config.Storage{
		Endpoint: s.Endpoint, Bucket: bucket, Secure: s.Secure, CAFile: s.CAFile,
		PartSizeMB: 5, SpoolMaxMB: 1024,
		AccessKey: RootUser, SecretKey: RootPassword,
	}
}

// makeCerts writes a CA to caFile and a server certificate it signed for
// 127.0.0.1 and localhost into dir, as MinIO's --certs-dir wants them.
func makeCerts(t testing.TB, dir, caFile string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mamoru test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(caFile, "CERTIFICATE", caDER)
	write(filepath.Join(dir, "public.crt"), "CERTIFICATE", srvDER)
	write(filepath.Join(dir, "private.key"), "EC PRIVATE KEY", keyDER)
}

// String describes the server for test logs.
func (s *Server) String() string { return fmt.Sprintf("minio at %s (log %s)", s.Endpoint, s.Log) }
