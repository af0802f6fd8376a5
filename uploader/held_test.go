package uploader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

// A device provisioned anew (another device id) keeps incidents it made
// under the old one, which its new write-only keys may not put: each is
// held and retried slowly, said so in status, and the newer incidents
// behind it still go.
func TestRefusedIncidentDoesNotBlockTheQueue(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	st := srv.Storage("clips")
	srv.AddUser("counter-2", "counter-2-secret", bucket.DevicePolicy(st, "shibuya", "counter-2"))
	st.AccessKey, st.SecretKey = "counter-2", "counter-2-secret"

	box := t.TempDir()
	old := makeIncident(t, box, "20261123-083000-000001", 100<<10) // made as shibuya/counter-1
	m := makeIncident(t, box, "20261123-083100-000002", 100<<10)
	m.Device = "counter-2"
	if err := outbox.WriteManifest(filepath.Join(box, m.Incident), m); err != nil {
		t.Fatal(err)
	}
	shipped := make(chan string, 2)
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t), ProblemRetry: time.Hour,
		Store: "shibuya", Device: "counter-2", Shipped: func(m outbox.Manifest, _ string) { shipped <- m.Incident }}
	runUntil(t, u, func() bool { return len(shipped) > 0 })

	if got := <-shipped; got != m.Incident {
		t.Errorf("shipped %s, want the new incident %s", got, m.Incident)
	}
	s := u.Status()
	if len(s.Held) != 1 || s.Held[0].Incident != old.Incident || !strings.Contains(s.Held[0].Error, "made as shibuya/counter-1, and this device is now shibuya/counter-2") ||
		!strings.Contains(s.Held[0].Error, "AccessDenied") && !strings.Contains(s.Held[0].Error, "Access Denied") {
		t.Errorf("held %+v; want the old incident, said to be another device's and refused", s.Held)
	}
	if _, err := os.Stat(filepath.Join(box, old.Incident, outbox.ClipFile)); err != nil {
		t.Errorf("the held incident's clip is gone: %v", err)
	}
}
