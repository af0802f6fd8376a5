package uploader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

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

// problemRun is an uploader running on a fake clock against a missing
// bucket, through a proxy that counts requests.
type problemRun struct {
	u     *Uploader
	clock *clockwork.FakeClock
	proxy *proxy
	srv   *s3test.Server
	stop  context.CancelFunc
	done  chan struct{} // closed when Run has returned, with err
	err   error
}

// startProblemRun starts Run and returns after its first failure.
func startProblemRun(t *testing.T, retry time.Duration) *problemRun {
	t.Helper()
	r := &problemRun{srv: s3test.Start(t, s3test.Options{}), clock: clockwork.NewFakeClock(), done: make(chan struct{})}
	r.proxy = newProxy(t, r.srv.Endpoint)
	st := r.srv.Storage("missing")
	st.Endpoint = strings.TrimPrefix(r.proxy.URL, "http://")
	box := t.TempDir()
	makeIncident(t, box, "20261123-233000-000001", 1<<20)
	r.u = &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t), ProblemRetry: retry, Clock: r.clock}
	ctx, cancel := context.WithCancel(t.Context())
	r.stop = cancel
	go func() { defer close(r.done); r.err = r.u.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	waitForClock(t, r.clock)
	return r
}

// stopped ends Run and fails t unless it returns promptly and cleanly.
func (r *problemRun) stopped(t *testing.T) {
	t.Helper()
	r.stop()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return promptly when its context ended")
	}
}

// waitForClock returns once something waits on fc: the uploader has done
// all it can until fc moves.
func waitForClock(t *testing.T, fc *clockwork.FakeClock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := fc.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal("the uploader never came to wait on its clock")
	}
}

// TestProblemsShowInStatusAndRetrySlowly runs the loop against a missing
// bucket: the status says what to fix, the incident stays, and the next
// attempt comes exactly ProblemRetry later, not before; once the bucket
// exists, that attempt ships it.
func TestProblemsShowInStatusAndRetrySlowly(t *testing.T) {
	const retry = time.Hour
	r := startProblemRun(t, retry)
	u, fc := r.u, r.clock
	start := fc.Now()
	s := u.Status()
	if !s.Problem || !strings.Contains(s.LastError, "NoSuchBucket") && !strings.Contains(s.LastError, "does not exist") || s.Pending != 1 || s.Shipped != 0 {
		t.Errorf("status %+v; want a problem naming the missing bucket and the incident pending", s)
	}
	if !s.LastErrorAt.Equal(start) {
		t.Errorf("LastErrorAt %v, want the clock's time %v", s.LastErrorAt, start)
	}
	// An attempt against a missing bucket sends the same requests each time.
	perAttempt := r.proxy.requestCount()
	if perAttempt == 0 {
		t.Fatal("the first attempt sent no request")
	}

	for _, step := range []struct {
		advance  time.Duration
		attempts int
	}{
		{retry - time.Nanosecond, 1}, // just under: no retry yet
		{time.Nanosecond, 2},         // elapsed: exactly one more
		{retry - time.Nanosecond, 2},
		{time.Nanosecond, 3},
	} {
		fc.Advance(step.advance)
		waitForClock(t, fc)
		elapsed := fc.Since(start)
		if got, want := r.proxy.requestCount(), step.attempts*perAttempt; got != want {
			t.Fatalf("%v after the first failure: %d requests, want %d (%d attempts)", elapsed, got, want, step.attempts)
		}
		if got, want := u.Status().LastErrorAt, start.Add(time.Duration(step.attempts-1)*retry); !got.Equal(want) {
			t.Errorf("%v after the first failure: LastErrorAt %v, want %v", elapsed, got, want)
		}
	}

	// A person creates the bucket: the next slow retry ships the incident.
	r.srv.Bucket("missing")
	fc.Advance(retry)
	waitForClock(t, fc)
	s = u.Status()
	if s.Shipped != 1 || s.Pending != 0 || s.Problem || s.LastError != "" || !s.LastSuccessAt.Equal(start.Add(3*retry)) {
		t.Errorf("status after the fix %+v; want the incident shipped at %v and no problem", s, start.Add(3*retry))
	}
	r.stopped(t)
}

// TestShutdownEndsAProblemWait: a slow retry's wait ends with the context,
// and the incident stays.
func TestShutdownEndsAProblemWait(t *testing.T) {
	r := startProblemRun(t, time.Hour)
	r.stopped(t)
	if s := r.u.Status(); s.Pending != 1 || s.Shipped != 0 {
		t.Errorf("status %+v; want the incident still pending", s)
	}
	if n, _, err := r.u.Outbox.Pending(); n != 1 || err != nil {
		t.Errorf("outbox pending %d, %v; want the incident kept", n, err)
	}
}
