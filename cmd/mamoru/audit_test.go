package main

import (
	"path/filepath"
	"strings"
	"testing"

	"mamoru/audit"
	"mamoru/clock"
)

// mamoru audit fails a log whose chain holds but which records capture
// with the indicator off, and passes one that brackets capture with it.
func TestAuditChecksTheInterlock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries [][]string
		code    int
		out     string
	}{
		{"bracketed", [][]string{{"indicator", "on", "true"}, {"capture", "state", "started"}, {"capture", "state", "stopped"}, {"indicator", "on", "false"}},
			0, "4 entries, hash chain intact, the indicator lit whenever capture ran"},
		{"capture in the dark", [][]string{{"capture", "state", "started"}},
			1, "capture started with the indicator off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			a, err := audit.Open(filepath.Join(state, "audit.log"), clock.Real())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tc.entries {
				if err := a.Record(e[0], e[1:]...); err != nil {
					t.Fatal(err)
				}
			}
			a.Close()
			cfg := writeConfig(t, t.TempDir(), "mamoru.toml", "[device]\nid = \"c1\"\nstore = \"s1\"\nstate_dir = \""+state+"\"\n")
			code, stdout, stderr := runCmd(t, "audit", "--config", cfg)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.out) {
				t.Errorf("mamoru audit = %d\n%s%s\nwant %d and %q", code, stdout, stderr, tc.code, tc.out)
			}
		})
	}
}
