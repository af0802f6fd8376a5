//go:build linux

package s3test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mamoru/config"
	"mamoru/testproc"
)

// Gateway is one versitygw server (github.com/versity/versitygw, the
// version the Makefile pins) on its posix backend, with bucket versioning
// (which it keeps in a directory of its own) and its internal IAM, serving
// plain http on a free loopback port. Its root credentials are RootUser and
// RootPassword. It has no lifecycle rules and no per-user IAM policies.
type Gateway struct {
	Endpoint string
	Log      string

	t    testing.TB
	proc *testproc.Proc
}

// GatewayBinary returns the versitygw binary's path: $MAMORU_VERSITYGW,
// then the cache directory where `make versitygw` installs it; or fails t
// saying how to get it.
func GatewayBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MAMORU_VERSITYGW"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	found, _ := filepath.Glob(filepath.Join(home, ".cache", "mamoru", "versitygw-*", "versitygw"))
	if len(found) == 0 {
		t.Fatalf("no versitygw binary: run 'make versitygw' (it installs it under ~/.cache/mamoru), or set MAMORU_VERSITYGW")
	}
	return found[len(found)-1]
}

// StartGateway starts a versitygw server and stops it when the test ends.
func StartGateway(t testing.TB) *Gateway {
	t.Helper()
	dir := t.TempDir()
	g := &Gateway{t: t, Endpoint: freeAddr(t), Log: filepath.Join(dir, "versitygw.log")}
	for _, d := range []string{"data", "versions", "iam"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.Create(g.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(GatewayBinary(t), "--port", g.Endpoint, "--access", RootUser, "--secret", RootPassword,
		"--iam-dir", filepath.Join(dir, "iam"), "--quiet",
		"posix", "--versioning-dir", filepath.Join(dir, "versions"), filepath.Join(dir, "data"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = log, log
	g.proc = testproc.Start(t, "versitygw", cmd, g.Log)
	t.Cleanup(g.Stop)
	g.waitReady()
	return g
}

// waitReady waits for the gateway to answer an S3 request (an anonymous
// one, refused).
func (g *Gateway) waitReady() {
	g.t.Helper()
	client := &http.Client{Timeout: time.Second}
	g.proc.WaitReady(g.t, 30*time.Second, 50*time.Millisecond, func() bool {
		resp, err := client.Get("http://" + g.Endpoint + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

// Stop stops the gateway (SIGTERM, then SIGKILL after 10 s).
func (g *Gateway) Stop() {
	g.proc.Stop()
	g.proc = nil
}

// Root returns a client with the root credentials.
func (g *Gateway) Root() *minio.Client {
	g.t.Helper()
	c, err := minio.New(g.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(RootUser, RootPassword, "")})
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

// Storage returns a [storage] configuration for bucket with the root
// credentials.
func (g *Gateway) Storage(bucket string) config.Storage {
	return config.Storage{Endpoint: g.Endpoint, Bucket: bucket, PartSizeMB: 5, SpoolMaxMB: 1024,
		AccessKey: RootUser, SecretKey: RootPassword}
}
