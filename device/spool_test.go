package device

import (
	"context"
	"mamoru/audit"
	"mamoru/outbox"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSpoolFullRefusesNewIncidents fills the spool with a clip waiting for
// upload: a press is refused loudly, the waiting clip is untouched, and the
// ring keeps rolling.
func TestSpoolFullRefusesNewIncidents(t *testing.T) {
	cfg := testConfig(t)
	cfg.Storage.SpoolMaxMB = 16
	waiting := filepath.Join(cfg.Device.StateDir, "incidents", "20261123-100000-000001")
	os.MkdirAll(waiting, 0o750)
	clip := filepath.Join(waiting, outbox.ClipFile)
	if err := os.WriteFile(clip, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	os.Truncate(clip, 17<<20) // sparse: 17 MB by size, nothing on the card
	m := outbox.Manifest{Version: 1, Incident: filepath.Base(waiting), State: outbox.StateComplete,
		Clip: outbox.ClipDigest{File: outbox.ClipFile, Size: 17 << 20}}
	if err := outbox.WriteManifest(waiting, m); err != nil {
		t.Fatal(err)
	}
	start(t, cfg)
	st := waitFor(t, cfg, "buffering", func(s Status) bool { return s.BufferedSeconds >= 1 })
	if !st.SpoolFull || st.SpoolBytes < 17<<20 {
		t.Errorf("status spool_full %v, spool_bytes %d; want full", st.SpoolFull, st.SpoolBytes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Trigger(ctx, cfg.Device.StateDir, "cli")
	if err == nil || !strings.Contains(err.Error(), "SPOOL FULL") || !strings.Contains(err.Error(), "storage.spool_max_mb = 16") {
		t.Fatalf("trigger with a full spool: %v; want SPOOL FULL naming storage.spool_max_mb", err)
	}
	st = waitFor(t, cfg, "buffering goes on", func(s Status) bool { return s.State == StateBuffering })
	if len(st.Incidents) != 1 || st.Incidents[0].ID != m.Incident {
		t.Errorf("incidents %+v; want only the waiting one", st.Incidents)
	}
	if fi, err := os.Stat(clip); err != nil || fi.Size() != 17<<20 {
		t.Errorf("the waiting clip changed: %v", err)
	}
	entries, _ := audit.ReadAll(filepath.Join(cfg.Device.StateDir, auditFile))
	refused := false
	for _, e := range entries {
		refused = refused || e.Event == "press" && e.Fields["reason"] == "spool full"
	}
	if !refused {
		t.Error("the audit log does not record the refused press")
	}
}
