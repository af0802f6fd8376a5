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
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Browser is a browser that PlayIn and PlayURLIn play a clip in, headless.
type Browser int

const (
	// Chromium is chromium (Debian package chromium). It plays the clip
	// muted and counts the bytes that reach each track's decoder
	// (VideoDecodedBytes, AudioDecodedBytes).
	Chromium Browser = iota
	// Firefox is firefox-esr (Debian package firefox-esr), which counts no
	// decoded bytes: the page plays the clip's sound into Web Audio instead
	// of the speakers and measures it there (AudioPeak). Firefox runs Web
	// Audio only with an audio device, so it gets a PulseAudio daemon of its
	// own whose one output is a null sink (Debian package pulseaudio).
	Firefox
)

func (b Browser) String() string {
	switch b {
	case Chromium:
		return "chromium"
	case Firefox:
		return "firefox-esr"
	}
	return "Browser(" + strconv.Itoa(int(b)) + ")"
}

// Playback is what a browser's <video> element did with a clip.
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
	// of each track reached its decoder. Firefox has neither; they are zero.
	VideoDecodedBytes, AudioDecodedBytes int64
	// VideoFrames is getVideoPlaybackQuality().totalVideoFrames, in either
	// browser: the frames decoded, whether shown or dropped.
	VideoFrames int
	// AudioPeak is, in Firefox, the loudest sample (0 to 1) of the clip's
	// sound as it came out of the element into Web Audio while it played:
	// above zero, the audio track was decoded. It is zero for a clip
	// without sound Firefox can decode, which it plays muted. Chromium's is
	// zero: it plays muted, and counts AudioDecodedBytes instead.
	AudioPeak float64
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
// startMargin is for the browser to start and to exit.
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
	return PlayIn(t, Chromium, path)
}

// PlayIn is Play in browser b.
func PlayIn(t testing.TB, b Browser, path string) Playback {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("cliptest: Play: %v", err)
	}
	return play(t, b, source{path: path}, playbackRate, 0)
}

// PlayURLIn is PlayIn for the clip at clipURL, an http or https URL: the
// page's server forwards the browser's requests for the clip there, Range
// headers and all, and the answers back, so that the page and the clip
// share an origin (Web Audio hears nothing of a clip from another).
func PlayURLIn(t testing.TB, b Browser, clipURL string) Playback {
	t.Helper()
	u, err := url.Parse(clipURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("cliptest: PlayURLIn: %q is not an http or https URL", clipURL)
	}
	return play(t, b, source{url: u}, playbackRate, 0)
}

// source is where the page's clip comes from: a file, or a URL.
type source struct {
	path string
	url  *url.URL
}

func (s source) String() string {
	if s.url != nil {
		return s.url.String()
	}
	return s.path
}

// play plays the clip at rate in browser b and gives it limit to end; a
// limit of zero is the clip's duration at rate plus pageMargin.
func play(t testing.TB, b Browser, src source, rate float64, limit time.Duration) Playback {
	t.Helper()
	bin, err := b.tool()
	if err != nil {
		t.Fatalf("cliptest: %v", err)
	}
	if limit == 0 {
		// A clip ffprobe cannot read gets pageMargin, which is plenty for
		// the browser to fail in too.
		info, err := probe(t.Context(), src.String())
		if errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("cliptest: %v", err)
		}
		if err == nil {
			limit = time.Duration(info.Duration / rate * float64(time.Second))
		}
		limit += pageMargin
	}

	p := &player{
		clip:     src,
		hold:     limit + holdMargin,
		reported: make(chan struct{}),
		done:     make(chan struct{}),
	}
	if src.url != nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		defer transport.CloseIdleConnections()
		p.proxy = &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				u := *src.url
				r.Out.URL = &u
				r.Out.Host = ""
			},
			Transport: transport,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				http.Error(w, err.Error(), http.StatusBadGateway)
			},
		}
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	defer close(p.done) // before srv.Close, which waits for held requests

	query := url.Values{
		"rate":  {strconv.FormatFloat(rate, 'f', -1, 64)},
		"limit": {strconv.FormatInt(limit.Milliseconds(), 10)},
		"stall": {strconv.FormatInt(stallLimit.Milliseconds(), 10)},
	}
	env := os.Environ()
	if b == Firefox {
		query.Set("listen", "1")
		server, stopPulse := pulse(t)
		defer stopPulse()
		env = append(env, "PULSE_SERVER="+server, "MOZ_CRASHREPORTER_DISABLE=1")
	}
	ctx, cancel := context.WithTimeout(t.Context(), limit+holdMargin+startMargin)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, b.args(t, srv.URL+"/?"+query.Encode())...)
	cmd.Env = env
	var dom, stderr bytes.Buffer
	cmd.Stdout = &dom
	cmd.Stderr = &stderr
	// The browser's helper processes are in its process group, end with
	// it, and are waited for below; they inherit our pipes, so do not wait
	// on the pipes long.
	ownGroup(cmd)
	cmd.Cancel = func() error {
		signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("cliptest: Play %s: %v", src, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var runErr error
	select {
	case <-p.reported:
		// Chromium would end by itself, once the page has loaded; Firefox
		// would not.
		runErr = stop(cmd.Process, exited)
	case runErr = <-exited:
	}
	if left := end(cmd.Process.Pid); len(left) > 0 {
		t.Errorf("cliptest: Play %s: %s left processes %v running", src, b, left)
	}

	var r report
	select {
	case <-p.reported:
		r = p.result
	default:
		m := resultInDOM.FindSubmatch(dom.Bytes())
		if m == nil {
			t.Fatalf("cliptest: Play %s: %s gave no result (%v); its stderr:\n%s", src, b, runErr, stderr.Bytes())
		}
		if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &r); err != nil {
			t.Fatalf("cliptest: Play %s: result in the page: %v: %s", src, err, m[1])
		}
	}
	switch {
	case b == Chromium && (r.VideoDecodedBytes == nil || r.AudioDecodedBytes == nil):
		t.Fatalf("cliptest: Play %s: this chromium reports no webkitVideoDecodedByteCount or webkitAudioDecodedByteCount", src)
	case b == Firefox && r.AudioContext != "" && r.AudioContext != "running":
		t.Fatalf("cliptest: Play %s: firefox's Web Audio did not run (AudioContext %q): %s; its stderr:\n%s", src, r.AudioContext, r.Problem, stderr.Bytes())
	case r.VideoFrames == nil:
		t.Fatalf("cliptest: Play %s: this %s has no getVideoPlaybackQuality", src, b)
	}
	return r.playback()
}

// Browser process limits: a browser asked to quit gets quitLimit to end,
// and its helper processes get as long again after it.
const quitLimit = 5 * time.Second

// stop asks the browser to quit, which ends its helper processes too, kills
// its process group if it does not within quitLimit, and returns what its
// Wait returned, which exited delivers.
func stop(browser *os.Process, exited <-chan error) error {
	browser.Signal(syscall.SIGTERM)
	timer := time.NewTimer(quitLimit)
	defer timer.Stop()
	select {
	case err := <-exited:
		return err
	case <-timer.C:
		signalGroup(browser.Pid, syscall.SIGKILL)
		return <-exited
	}
}

// end waits for the processes of leader's group, and its crash helper, to
// end once leader has, kills them if they have not within quitLimit, and
// returns any still running after as long again.
func end(leader int) []int {
	// Nothing tells us when another's child ends: look every 20 ms.
	deadline := time.Now().Add(quitLimit)
	killed := false
	for {
		left := remaining(leader)
		switch {
		case len(left) == 0:
			return nil
		case time.Now().After(deadline) && killed:
			return left
		case time.Now().After(deadline):
			signalGroup(leader, syscall.SIGKILL)
			killed = true
			deadline = time.Now().Add(quitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tool returns the path of b's command.
func (b Browser) tool() (string, error) {
	switch b {
	case Chromium:
		return tool("chromium", "chromium")
	case Firefox:
		return tool("firefox-esr", "firefox-esr")
	}
	return "", fmt.Errorf("no browser %v", b)
}

// args returns the arguments that make b open page headless, in a
// profile of its own in a temporary directory of t.
func (b Browser) args(t testing.TB, page string) []string {
	t.Helper()
	profile := t.TempDir()
	if b == Firefox {
		if err := os.WriteFile(filepath.Join(profile, "user.js"), firefoxPrefs, 0o644); err != nil {
			t.Fatalf("cliptest: %v", err)
		}
		return []string{"--headless", "--no-remote", "--profile", profile, page}
	}
	return []string{
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--no-first-run",
		"--disable-quic",
		"--autoplay-policy=no-user-gesture-required",
		"--user-data-dir=" + profile,
		"--dump-dom",
		page,
	}
}

// firefoxPrefs is a fresh profile's user.js: the page plays and sounds
// without a gesture, and Firefox shows no first-run pages and does not
// reach out to the internet while it does.
var firefoxPrefs = []byte(`user_pref("media.autoplay.default", 0);
user_pref("media.autoplay.blocking_policy", 0);
user_pref("media.autoplay.block-webaudio", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("startup.homepage_welcome_url", "about:blank");
user_pref("startup.homepage_welcome_url.additional", "");
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("app.update.disabledForTesting", true);
user_pref("app.normandy.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("services.settings.server", "http://127.0.0.1:9/");
`)

// pulse starts a PulseAudio daemon whose one output is a null sink, and
// returns its address for PULSE_SERVER and a function that stops it.
func pulse(t testing.TB) (server string, stop func()) {
	t.Helper()
	bin, err := tool("pulseaudio", "pulseaudio")
	if err != nil {
		t.Fatalf("cliptest: %v", err)
	}
	// Not t.TempDir: a socket's path has room for 107 bytes only.
	dir, err := os.MkdirTemp("", "cliptest-pulse")
	if err != nil {
		t.Fatalf("cliptest: %v", err)
	}
	socket := filepath.Join(dir, "native")
	cmd := exec.Command(bin, "--daemonize=no", "-n", "--exit-idle-time=-1", "--use-pid-file=no",
		"--load=module-native-protocol-unix auth-anonymous=1 socket="+socket,
		"--load=module-null-sink sink_name=cliptest")
	// Its runtime files and cookie stay in dir.
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("cliptest: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(quitLimit)
		defer timer.Stop()
		select {
		case <-exited:
		case <-timer.C:
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	// The daemon tells no one when it listens: look for its socket.
	deadline := time.Now().Add(startMargin)
	for {
		if _, err := os.Stat(socket); err == nil {
			return "unix:" + socket, stop
		}
		select {
		case err := <-exited:
			os.RemoveAll(dir)
			t.Fatalf("cliptest: pulseaudio exited (%v) before it listened:\n%s", err, stderr.Bytes())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("cliptest: pulseaudio did not listen on %s within %v:\n%s", socket, startMargin, stderr.Bytes())
		}
	}
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
	VideoFrames       *int   `json:"videoFrames"`
	AudioContext      string `json:"audioContext"` // its state, if the page listened
	AudioPeak         number `json:"audioPeak"`
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
		AudioPeak:   float64(r.AudioPeak),
		VideoWidth:  r.VideoWidth,
		VideoHeight: r.VideoHeight,
	}
	if r.VideoDecodedBytes != nil {
		pb.VideoDecodedBytes = *r.VideoDecodedBytes
	}
	if r.AudioDecodedBytes != nil {
		pb.AudioDecodedBytes = *r.AudioDecodedBytes
	}
	if r.VideoFrames != nil {
		pb.VideoFrames = *r.VideoFrames
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
	clip  source
	proxy *httputil.ReverseProxy // to clip.url, if it is a URL
	hold  time.Duration          // longest /hold waits for the report

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
		if p.proxy != nil {
			p.proxy.ServeHTTP(w, r)
			return
		}
		f, err := os.Open(p.clip.path)
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
