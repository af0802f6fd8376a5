package uploader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/config"
	"mamoru/outbox"
)

// TestMisconfiguration checks that each setup mistake is told apart, says
// what to fix, never shows the secret, and keeps the incident.
func TestMisconfiguration(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	srv.AddUser("elsewhere", "elsewhere-secret", bucket.DevicePolicy(config.Storage{Bucket: "clips"}, "other-store", "other-device"))
	tlsSrv := s3test.Start(t, s3test.Options{TLS: true})
	tlsSrv.Bucket("clips")

	for _, tc := range []struct {
		name    string
		storage func() config.Storage
		code    string // the *bucket.Problem's code, or "" for success
		fix     string
	}{
		{"wrong access key", func() config.Storage {
			s := srv.Storage("clips")
			s.AccessKey = "nobody"
			return s
		}, "InvalidAccessKeyId", "storage.access_key_file"},
		{"wrong secret key", func() config.Storage {
			s := srv.Storage("clips")
			s.SecretKey = "not-the-secret"
			return s
		}, "SignatureDoesNotMatch", "storage.secret_key_file"},
		{"missing bucket", func() config.Storage { return srv.Storage("no-such-bucket") }, "NoSuchBucket", "mamoru storage init"},
		{"access denied", func() config.Storage {
			s := srv.Storage("clips")
			s.AccessKey, s.SecretKey = "elsewhere", "elsewhere-secret"
			return s
		}, "AccessDenied", "policy"},
		{"TLS with the custom CA", func() config.Storage { return tlsSrv.Storage("clips") }, "", ""},
		{"TLS without the custom CA", func() config.Storage {
			s := tlsSrv.Storage("clips")
			s.CAFile = ""
			return s
		}, "TLS", "storage.ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			box := t.TempDir()
			m := makeIncident(t, box, "20261123-233000-000001", 7<<20)
			st := tc.storage()
			u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t), Client: mustClient(t, st)}
			in := outbox.Incident{Dir: filepath.Join(box, m.Incident), Manifest: m}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			err := u.ship(ctx, in, nil)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("ship: %v", err)
				}
				return
			}
			var p *bucket.Problem
			if !errors.As(err, &p) {
				t.Fatalf("ship: %v (%T), want a *bucket.Problem %s", err, err, tc.code)
			}
			if p.Code != tc.code || !strings.Contains(err.Error(), tc.fix) {
				t.Errorf("ship: %v (code %s); want code %s and a fix mentioning %q", err, p.Code, tc.code, tc.fix)
			}
			if strings.Contains(err.Error(), st.SecretKey.Reveal()) {
				t.Errorf("the error shows the secret key: %v", err)
			}
			if _, err := os.Stat(filepath.Join(box, m.Incident, outbox.ClipFile)); err != nil {
				t.Errorf("the incident is gone after a failed upload: %v", err)
			}
		})
	}
}

// TestProblemsShowInStatusAndRetrySlowly runs the loop against a missing
// bucket: the status says what to fix, and the incident stays.
func TestProblemsShowInStatusAndRetrySlowly(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	box := t.TempDir()
	makeIncident(t, box, "20261123-233000-000001", 1<<20)
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: srv.Storage("missing"), Location: tokyo, Log: testLog(t), ProblemRetry: time.Hour}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for u.Status().LastError == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Now the bucket appears; the loop waits its hour, and shutdown cuts
	// the wait short.
	srv.Bucket("missing")
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return promptly when its context ended during a slow retry")
	}
	s := u.Status()
	if !s.Problem || !strings.Contains(s.LastError, "NoSuchBucket") && !strings.Contains(s.LastError, "does not exist") || s.Pending != 1 || s.Shipped != 0 {
		t.Errorf("status %+v; want a problem naming the missing bucket and the incident pending", s)
	}
}
