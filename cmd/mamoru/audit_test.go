package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mamoru/audit"
	"mamoru/clock"
	"mamoru/outbox"
	"mamoru/uploader"
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
		// No log is no history, not a clean one.
		{"no log", nil, 1, "no audit log at %STATE%/audit.log: it was removed, or the recorder never ran here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			if tc.entries != nil {
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
			}
			tc.out = strings.ReplaceAll(tc.out, "%STATE%", state)
			cfg := writeConfig(t, t.TempDir(), "mamoru.toml", "[device]\nid = \"c1\"\nstore = \"s1\"\nstate_dir = \""+state+"\"\n")
			code, stdout, stderr := runCmd(t, "audit", "--config", cfg)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.out) {
				t.Errorf("mamoru audit = %d\n%s%s\nwant %d and %q", code, stdout, stderr, tc.code, tc.out)
			}
		})
	}
}

// mamoru audit finds a log cut, emptied or replaced after a manifest still
// in the outbox recorded its head, and reports a log set aside; each exits
// 1. (Before the heads, each of these verified as intact.)
func TestAuditFindsTheLogCut(t *testing.T) {
	const id = "20261123-154502-000001"
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string, log []byte)
		code   int
		out    string
	}{
		{"untouched", func(*testing.T, string, []byte) {}, 0, "5 entries, hash chain intact, the indicator lit whenever capture ran; holds the heads of 1 manifests"},
		{"end cut", func(t *testing.T, path string, log []byte) {
			lines := bytes.SplitAfter(log, []byte("\n"))
			os.WriteFile(path, bytes.Join(lines[:2], nil), 0o640)
		}, 1, "incident " + id + " (" + "%STATE%/incidents/" + id + "/manifest.json) recorded the log's head at entry 3: audit: log cut short: a head names entry 3, and the log ends at entry 1"},
		{"emptied", func(t *testing.T, path string, _ []byte) { os.WriteFile(path, nil, 0o640) }, 1, "the log is empty"},
		{"removed", func(t *testing.T, path string, _ []byte) { os.Remove(path) }, 1, "no audit log at %STATE%/audit.log: it was removed, or the recorder never ran here"},
		{"replaced", func(t *testing.T, path string, _ []byte) {
			os.Remove(path)
			a, _ := audit.Open(path, clock.Real())
			for range 5 {
				a.Record("start")
			}
			a.Close()
		}, 1, "audit: log entry replaced: entry 3 has hash"},
		{"set aside", func(t *testing.T, path string, log []byte) {
			os.Rename(path, path+".broken-20261123T000000Z")
			a, _ := audit.Open(path, clock.Real())
			a.Record("audit_broken", "kept", "audit.log.broken-20261123T000000Z", "err", "audit: log chain broken")
			a.Close()
		}, 1, "SET ASIDE: %STATE%/audit.log.broken-20261123T000000Z: set aside with its chain broken; 5 entries intact before the break"},
		// The new chain names the log it set aside; that log removed is
		// history removed.
		{"set aside, then removed", func(t *testing.T, path string, log []byte) {
			os.Remove(path)
			a, _ := audit.Open(path, clock.Real())
			a.Record("audit_broken", "kept", "audit.log.broken-20261123T000000Z", "err", "audit: log chain broken")
			a.Close()
		}, 1, "PROBLEM: entry 0 set the broken log aside as %STATE%/audit.log.broken-20261123T000000Z, and it is gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			path := filepath.Join(state, "audit.log")
			a, err := audit.Open(path, clock.Real())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range [][]string{{"start"}, {"indicator", "on", "true"}, {"capture", "state", "started"}, {"press", "incident", id}, {"incident", "id", id, "state", "complete"}} {
				if err := a.Record(e[0], e[1:]...); err != nil {
					t.Fatal(err)
				}
			}
			entries, _ := audit.ReadAll(path)
			a.Close()
			dir := filepath.Join(state, "incidents", id)
			os.MkdirAll(dir, 0o750)
			m := outbox.Manifest{Version: 1, Incident: id, State: outbox.StateComplete, AuditHead: &audit.Head{Seq: 3, Hash: entries[3].Hash}}
			if err := outbox.WriteManifest(dir, m); err != nil {
				t.Fatal(err)
			}
			log, _ := os.ReadFile(path)
			tc.change(t, path, log)
			cfg := writeConfig(t, t.TempDir(), "mamoru.toml", "[device]\nid = \"c1\"\nstore = \"s1\"\nstate_dir = \""+state+"\"\n")
			code, stdout, stderr := runCmd(t, "audit", "--config", cfg)
			want := strings.ReplaceAll(tc.out, "%STATE%", state)
			if code != tc.code || !strings.Contains(stdout+stderr, want) {
				t.Errorf("mamoru audit = %d\n%s%s\nwant %d and %q", code, stdout, stderr, tc.code, want)
			}
			// A head sealed before the log was set aside is in the log kept.
			if tc.name == "set aside" && strings.Contains(stdout+stderr, "PROBLEM") {
				t.Errorf("the head in the set-aside log taken for a problem:\n%s%s", stdout, stderr)
			}
		})
	}
}

// The last entry uploaded is a local anchor too: a log cut before it is
// reported, with no manifest left on the card.
func TestAuditFindsTheLogCutBeforeItsUpload(t *testing.T) {
	state := t.TempDir()
	path := filepath.Join(state, "audit.log")
	a, err := audit.Open(path, clock.Real())
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		a.Record("start")
	}
	a.Close()
	entries, _ := audit.ReadAll(path)
	p := uploader.AuditProgress{Chain: audit.Chain(entries[0]), Head: audit.Head{Seq: 3, Hash: entries[3].Hash}}
	b, _ := json.Marshal(p)
	os.WriteFile(uploader.AuditProgressPath(path), b, 0o640)
	cfg := writeConfig(t, t.TempDir(), "mamoru.toml", "[device]\nid = \"c1\"\nstore = \"s1\"\nstate_dir = \""+state+"\"\n")
	if code, stdout, stderr := runCmd(t, "audit", "--config", cfg); code != 0 {
		t.Fatalf("mamoru audit of the log as uploaded = %d\n%s%s", code, stdout, stderr)
	}
	log, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Join(bytes.SplitAfter(log, []byte("\n"))[:3], nil), 0o640)
	code, stdout, stderr := runCmd(t, "audit", "--config", cfg)
	if want := "entry 3 was uploaded (" + path + ".uploaded), and the log no longer holds it: audit: log cut short"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("mamoru audit of a log cut after its upload = %d\n%s%s\nwant 1 and %q", code, stdout, stderr, want)
	}
}
