package cliptest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Playback is what Chromium's <video> element did with a clip.
type Playback struct {
	// Ended reports whether playback reached the end of the clip.
	Ended bool
	// Error is empty when playback ended cleanly. Otherwise it holds the
	// element's MediaError ("MEDIA_ERR_SRC_NOT_SUPPORTED (4): ...") or says
	// why the page gave up waiting (timed out, stalled, play() refused).
	Error string
	// Duration and CurrentTime are the element's, in seconds, when it
	// stopped: Duration is NaN when no metadata loaded and +Inf for a stream
	// the browser takes as unbounded.
	Duration, CurrentTime float64
	// VideoDecodedBytes and AudioDecodedBytes are Chromium's
	// webkitVideoDecodedByteCount and webkitAudioDecodedByteCount: how much
	// of each track reached its decoder.
	VideoDecodedBytes, AudioDecodedBytes int64
	// VideoWidth and VideoHeight are the decoded picture size, zero without
	// video.
	VideoWidth, VideoHeight int
}

// playbackRate is how fast Play plays a clip, muted. Measured with Chromium
// 156 (Debian bookworm) on a 3 s H.264 + FLAC fragmented MP4: at rates 1, 2,
// 4, 8 and 16 the clip ended with the same webkitVideoDecodedByteCount and
// webkitAudioDecodedByteCount, every byte of both tracks. 4 is as fast as we
// go: beyond it a clip plays too far from the way a viewer plays it to vouch
// for, and saves little (about 1.4 s for that clip at 4, 0.9 s at 16, most
// of it chromium starting). TestPlayRate checks that 4 still decodes what 1
// does.
const playbackRate = 4

// Play limits. A clip may take its duration at playbackRate plus
// pageMargin to play, and its currentTime may stand still for stallLimit;
// the page itself enforces both, and reports how far it got. holdMargin lets
// the page post that report before the server gives up on it, and
// startMargin is for chromium to start and to exit.
const (
	pageMargin  = 10 * time.Second
	stallLimit  = 10 * time.Second
	holdMargin  = 5 * time.Second
	startMargin = 30 * time.Second
)

//go:embed page.html
var page []byte

// Play opens the clip at path in headless Chromium, plays it muted to the
// end at a raised playback rate, and reports what the <video> element did.
// It fails the test if chromium or ffprobe is missing, or if the page never
// reports (Chromium's stderr is then in the failure message); a clip that
// does not play is not a failure of Play but a Playback with an Error.
func Play(t testing.TB, path string) Playback {
	t.Helper()
	return play(t, path, playbackRate, 0)
}

// play plays the clip at rate and gives it limit to end; a limit of zero is
// the clip's duration at rate plus pageMargin.
func play(t testing.TB, path string, rate float64, limit time.Duration) Playback {
	t.Helper()
	chromium, err := tool("chromium", "chromium")
	if err != nil {
		t.Fatalf("cliptest: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("cliptest: Play: %v", err)
	}
	if limit == 0 {
		// A file ffprobe cannot read gets pageMargin, which is plenty for
		// Chromium to fail in too.
		info, err := probe(t.Context(), path)
		if errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("cliptest: %v", err)
		}
		if err == nil {
			limit = time.Duration(info.Duration / rate * float64(time.Second))
		}
		limit += pageMargin
	}

	p := &player{
		clip:     path,
		hold:     limit + holdMargin,
		reported: make(chan struct{}),
		done:     make(chan struct{}),
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	defer close(p.done) // before srv.Close, which waits for held requests

	query := url.Values{
		"rate":  {strconv.FormatFloat(rate, 'f', -1, 64)},
		"limit": {strconv.FormatInt(limit.Milliseconds(), 10)},
		"stall": {strconv.FormatInt(stallLimit.Milliseconds(), 10)},
	}
	ctx, cancel := context.WithTimeout(t.Context(), limit+holdMargin+startMargin)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--no-first-run",
		"--disable-quic",
		"--autoplay-policy=no-user-gesture-required",
		"--user-data-dir="+t.TempDir(),
		"--dump-dom",
		srv.URL+"/?"+query.Encode(),
	)
	var dom, stderr bytes.Buffer
	cmd.Stdout = &dom
	cmd.Stderr = &stderr
	// Chromium's helper processes inherit our pipes and may outlive the
	// browser for a while, above all a killed one; do not wait on them long.
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()

	var r report
	select {
	case <-p.reported:
		r = p.result
	default:
		m := resultInDOM.FindSubmatch(dom.Bytes())
		if m == nil {
			t.Fatalf("cliptest: Play %s: chromium gave no result (%v); its stderr:\n%s", path, runErr, stderr.Bytes())
		}
		if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &r); err != nil {
			t.Fatalf("cliptest: Play %s: result in the page: %v: %s", path, err, m[1])
		}
	}
	if r.VideoDecodedBytes == nil || r.AudioDecodedBytes == nil {
		t.Fatalf("cliptest: Play %s: this chromium reports no webkitVideoDecodedByteCount or webkitAudioDecodedByteCount", path)
	}
	return r.playback()
}

// resultInDOM finds the page's report in the DOM that chromium dumps.
var resultInDOM = regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`)

// report is the page's account of playback.
type report struct {
	Ended             bool   `json:"ended"`
	ErrorCode         int    `json:"errorCode"`
	ErrorMessage      string `json:"errorMessage"`
	Problem           string `json:"problem"`
	Duration          number `json:"duration"`
	CurrentTime       number `json:"currentTime"`
	VideoDecodedBytes *int64 `json:"videoDecodedBytes"`
	AudioDecodedBytes *int64 `json:"audioDecodedBytes"`
	VideoWidth        int    `json:"videoWidth"`
	VideoHeight       int    `json:"videoHeight"`
}

// mediaErrors names MediaError codes.
var mediaErrors = map[int]string{
	1: "MEDIA_ERR_ABORTED",
	2: "MEDIA_ERR_NETWORK",
	3: "MEDIA_ERR_DECODE",
	4: "MEDIA_ERR_SRC_NOT_SUPPORTED",
}

func (r report) playback() Playback {
	pb := Playback{
		Ended:       r.Ended,
		Error:       r.Problem,
		Duration:    float64(r.Duration),
		CurrentTime: float64(r.CurrentTime),
		VideoWidth:  r.VideoWidth,
		VideoHeight: r.VideoHeight,
	}
	if r.VideoDecodedBytes != nil {
		pb.VideoDecodedBytes = *r.VideoDecodedBytes
	}
	if r.AudioDecodedBytes != nil {
		pb.AudioDecodedBytes = *r.AudioDecodedBytes
	}
	if r.ErrorCode != 0 {
		name, ok := mediaErrors[r.ErrorCode]
		if !ok {
			name = "MediaError"
		}
		// A MediaError is the cause of any other problem the page saw, such
		// as play() failing.
		pb.Error = fmt.Sprintf("%s (%d): %s", name, r.ErrorCode, r.ErrorMessage)
	}
	return pb
}

// player serves the page, the clip, and the page's report.
type player struct {
	clip string
	hold time.Duration // longest /hold waits for the report

	once     sync.Once
	result   report        // written once, before reported is closed
	reported chan struct{} // closed when the page has posted its report
	done     chan struct{} // closed when Play no longer waits
}

func (p *player) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	case "/clip.mp4":
		f, err := os.Open(p.clip)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		http.ServeContent(w, r, "clip.mp4", fi.ModTime(), f)
	case "/hold":
		timer := time.NewTimer(p.hold)
		defer timer.Stop()
		select {
		case <-p.reported:
		case <-timer.C:
		case <-p.done:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	case "/result":
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var rep report
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.once.Do(func() {
			p.result = rep
			close(p.reported)
		})
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}
