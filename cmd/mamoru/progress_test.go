package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// feed reports the first upTo of total bytes arriving, 1000 at a time.
func feed(p *progress, upTo, total int64) {
	for done := int64(0); done < upTo; {
		done = min(done+1000, upTo)
		p.update(done, total)
	}
}

// Into a pipe or a log, a download is one line as it starts and one as it
// ends, not a redrawn line for every percent.
func TestProgressNotTerminal(t *testing.T) {
	for _, tc := range []struct {
		name        string
		total, upTo int64 // upTo < total: the download broke off
		want        string
	}{
		{"whole", 3_000_000, 3_000_000, "x/clip.mp4: downloading 3.0 MB\nx/clip.mp4: 100%, 3.0 MB of 3.0 MB\n"},
		{"broken off", 3_000_000, 1_500_000, "x/clip.mp4: downloading 3.0 MB\nx/clip.mp4: 50%, 1.5 MB of 3.0 MB\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			p := newProgress(&b, "x/clip.mp4", tc.total, false)
			feed(p, tc.upTo, tc.total)
			p.finish()
			if got := b.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// On a terminal, the bar is redrawn in place once a percent.
func TestProgressTerminal(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "x/clip.mp4", 1_000_000, true)
	feed(p, 1_000_000, 1_000_000)
	p.finish()
	got := b.String()
	if n := strings.Count(got, "\r"); n != 101 {
		t.Errorf("the bar was drawn %d times, want 101 (0%% to 100%%)", n)
	}
	if n := strings.Count(got, "\n"); n != 1 || !strings.HasSuffix(got, "\rx/clip.mp4 [####################] 100% 1.0 MB\n") {
		t.Errorf("got %q, want the full bar last and one newline", got[max(0, len(got)-80):])
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name string
		w    io.Writer
	}{{"pipe", w}, {"file", f}, {"buffer", &bytes.Buffer{}}} {
		if isTerminal(tc.w) {
			t.Errorf("isTerminal(%s) = true, want false", tc.name)
		}
	}
}
