package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mamoru/capture/cliptest"
)

// 'mamoru clips viewing-copy' writes a copy FFmpeg decodes to the clip's
// own PCM, prints both hashes, gives the same bytes a second time, and
// neither replaces a file nor leaves one behind when the input is no clip.
func TestClipsViewingCopy(t *testing.T) {
	dir := t.TempDir()
	clip, pcm := cliptest.Record(t, dir, 2, 2)
	out := filepath.Join(dir, "copy.mp4")
	code, stdout, stderr := runCmd(t, "clips", "viewing-copy", clip, "-o", out)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	copyBytes, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	clipBytes, _ := os.ReadFile(clip)
	hash := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	if !strings.Contains(stdout, "SHA-256 "+hash(copyBytes)) || !strings.Contains(stdout, "derived from SHA-256 "+hash(clipBytes)) {
		t.Errorf("stdout %q: want the copy's SHA-256 and the clip's it is derived from", stdout)
	}
	got, err := exec.Command("ffmpeg", "-v", "error", "-i", out, "-map", "0:a", "-f", "s16le", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	if !bytes.Equal(got, pcm) {
		t.Errorf("the copy decodes to %d bytes of PCM, not the %d bytes of the clip", len(got), len(pcm))
	}

	again := filepath.Join(dir, "again.mp4")
	if code, _, stderr := runCmd(t, "clips", "viewing-copy", "-o", again, clip); code != 0 {
		t.Fatalf("flags first: exit %d, stderr %q", code, stderr)
	}
	if b, _ := os.ReadFile(again); !bytes.Equal(b, copyBytes) {
		t.Error("a second copy of the same clip differs from the first")
	}

	if code, _, stderr := runCmd(t, "clips", "viewing-copy", clip, "-o", out); code != 1 || !strings.Contains(stderr, "exists") {
		t.Errorf("over an existing copy: exit %d, stderr %q; want 1 and 'exists'", code, stderr)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, copyBytes) {
		t.Error("the existing copy was changed")
	}
	notClip := filepath.Join(dir, "notes.txt")
	os.WriteFile(notClip, []byte("not a clip"), 0o644)
	code, _, stderr = runCmd(t, "clips", "viewing-copy", notClip, "-o", filepath.Join(dir, "x.mp4"))
	if code != 1 || !strings.Contains(stderr, "not a fragmented MP4 clip") {
		t.Errorf("not a clip: exit %d, stderr %q; want 1 and why", code, stderr)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if name := e.Name(); name != "clip.mp4" && name != "copy.mp4" && name != "again.mp4" && name != "notes.txt" {
			t.Errorf("left %s behind", name)
		}
	}
	if code, _, _ := runCmd(t, "clips", "viewing-copy", clip); code != 2 {
		t.Errorf("without -o: exit %d, want 2", code)
	}
}
