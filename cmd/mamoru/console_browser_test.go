package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/minio/minio-go/v7"

	"mamoru/bucket/s3test"
	"mamoru/device"
	"mamoru/outbox"
	"mamoru/signing"
)

// TestConsoleInBrowser is the managers' console as a manager uses it:
// real recorders on simulated hardware upload signed incidents to a real
// MinIO prepared by 'mamoru storage init', one is then written over and
// one loses its signature, and 'mamoru console' serves them to a real
// headless Chromium, which lists them with their verdicts, plays a clip
// to its end through the console and through a share link, marks it
// reviewed, keeps and releases it, and takes the Japanese screenshots of
// the manager's guide at desktop and phone widths.
//
// Screenshots go to $MAMORU_ARTIFACTS, else a temporary directory (the
// log says which); with MAMORU_UPDATE_DOCS=1 also to
// docs/images/console-<page>-<desktop|phone>.png.
func TestConsoleInBrowser(t *testing.T) {
	chromium := browserOrSkip(t)
	start := time.Now()

	// The bucket, as an installer prepares it: object lock (legal holds
	// need it) and versioning (an overwrite is seen).
	srv := s3test.Start(t, s3test.Options{})
	storage := fmt.Sprintf("\n[storage]\nendpoint = %q\nbucket = \"clips\"\nsecure = false\nprefix = \"mamoru\"\npart_size_mb = 5\n", srv.Endpoint)
	rootKeys := keyFiles(t, s3test.RootUser, s3test.RootPassword)
	admin := writeConfig(t, t.TempDir(), "admin.toml", recorderConfig(t, "shop-1", "counter-1", "")+storage+rootKeys+"\n[policy]\nretention_days = 30\n")
	if code, out, errOut := runCmd(t, "storage", "init", "--config", admin); code != 0 {
		t.Fatalf("mamoru storage init exited %d: %s%s", code, out, errOut)
	}
	root := srv.Root()
	if lock, _, _, _, err := root.GetObjectLockConfig(t.Context(), "clips"); err != nil || lock != "Enabled" {
		t.Fatalf("storage init left the bucket without object lock: %q, %v", lock, err)
	}

	// The recorders. shop-2/counter-2's key is not in the manager's
	// keyring.
	devices := []struct {
		store, device string
		incidents     int
		inKeyring     bool
	}{
		{"shop-1", "counter-1", 2, true},
		{"shop-2", "counter-1", 2, true},
		{"shop-2", "counter-2", 1, false},
	}
	var keyring strings.Builder
	ids := map[string][]string{} // store/device: incident ids, in order
	var idsMu sync.Mutex         // guards ids
	t.Run("recorders", func(t *testing.T) {
		for _, d := range devices {
			keyPath := filepath.Join(t.TempDir(), "signing.key")
			pub, err := signing.NewKey(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if d.inKeyring {
				keyring.WriteString("\n" + keyringEntry(d.store, d.device, pub, time.Now()))
			}
			// Uploads are not locked: the lock waits for NTP, which this
			// machine's clock may not have (TestUploadEndToEnd); the bucket
			// still keeps every version, and legal holds work.
			cfg := writeConfig(t, t.TempDir(), "device.toml", recorderConfig(t, d.store, d.device, keyPath)+storage+rootKeys+"\n[policy]\nobject_lock = \"none\"\n")
			t.Run(d.store+"/"+d.device, func(t *testing.T) {
				t.Parallel()
				got := recordIncidents(t, cfg, d.incidents)
				idsMu.Lock()
				ids[d.store+"/"+d.device] = got
				idsMu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("%d recorders uploaded their incidents in %v", len(devices), time.Since(start).Round(100*time.Millisecond))

	// What each incident should show, and what is done to two of them:
	// B's clip is written over; D's signature is removed, every version
	// of it, so that no deletion marker is left: the bucket then holds
	// what a device without a signing key uploads. (A plain delete leaves
	// a marker, and the console rightly calls that tampered.)
	a, b := "shop-1/counter-1/"+ids["shop-1/counter-1"][0], "shop-1/counter-1/"+ids["shop-1/counter-1"][1]
	c, d := "shop-2/counter-1/"+ids["shop-2/counter-1"][0], "shop-2/counter-1/"+ids["shop-2/counter-1"][1]
	e := "shop-2/counter-2/" + ids["shop-2/counter-2"][0]
	want := map[string]string{a: "verified", b: "tampered", c: "verified", d: "unsigned", e: "unknown"}
	folder := incidentFolders(t, root)
	clip := folder[b] + "/" + outbox.ClipFile
	junk := bytes.Repeat([]byte{0x5a}, 4096)
	if _, err := root.PutObject(t.Context(), "clips", clip, bytes.NewReader(junk), int64(len(junk)), minio.PutObjectOptions{ContentType: "video/mp4"}); err != nil {
		t.Fatal(err)
	}
	sig := folder[d] + "/" + outbox.SignatureFile
	for v := range root.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: sig, WithVersions: true}) {
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		if err := root.RemoveObject(t.Context(), "clips", v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: true}); err != nil {
			t.Fatalf("remove %s version %s: %v", v.Key, v.VersionID, err)
		}
	}

	// The manager's console, on this machine only.
	manager := writeConfig(t, t.TempDir(), "manager.toml", storage+rootKeys+keyring.String())
	base := startConsole(t, manager)

	// The browser: Japanese, as the shops' managers have it.
	userData, err := os.MkdirTemp("", "mamoru-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(userData) })
	// Everything in the browser is done within a minute, or the browser
	// is stopped.
	browserCtx, cancelBrowser := context.WithTimeout(t.Context(), time.Minute)
	defer cancelBrowser()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(browserCtx,
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("lang", "ja"),
		chromedp.Flag("accept-lang", "ja"),
		// Our own directory: chromedp then leaves the browser's
		// processes to the browser, and kills none by its command line.
		chromedp.UserDataDir(userData),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	defer cancelTab()
	// The first Do starts the browser, which lives as long as the context
	// it is given: this one, not a step's bounded one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// do runs steps within limit, failing the test with what was
	// being done.
	do := func(what string, limit time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shots := newScreenshots(t)
	// The console's pages log no error and throw no exception.
	complaints := watchConsole(ctx)
	defer func() {
		for _, m := range complaints() {
			t.Errorf("the browser's console: %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line)
		}
	}()

	// The inbox: every incident, each with its verdict once the page's
	// checks in the background are done.
	do("open the inbox", 20*time.Second, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.ID("inbox")))
	if lang := evaluate[string](t, ctx, `navigator.language + " " + document.documentElement.lang`); lang != "ja ja" {
		t.Errorf("the browser's language and the inbox's: %q, want ja and ja", lang)
	}
	do("wait for the inbox's checks", 30*time.Second, chromedp.Poll[chromedp.Void](
		`document.querySelectorAll('#inbox .state[data-state="checking"]').length == 0 && !document.getElementById('inbox').dataset.checking`,
		chromedp.WithPollingInterval(100*time.Millisecond)))
	states := evaluate[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#inbox tbody tr')].map(r => [r.dataset.name, r.querySelector('.state').dataset.state]))`)
	if len(states) != len(want) {
		t.Errorf("the inbox lists %d incidents %v, want %d", len(states), states, len(want))
	}
	for name, w := range want {
		if got := states[name]; got != w {
			t.Errorf("the inbox shows %s as %q, want %q", name, got, w)
		}
	}
	checkFonts(t, ctx, "inbox")
	shots.take(ctx, "inbox", "desktop")
	// Each incident's own page, which checks it again, agrees.
	for _, name := range []string{b, d, e} {
		do("open "+name, 20*time.Second, chromedp.Navigate(base+"incidents/"+name), chromedp.WaitVisible(chromedp.ID("verdict")))
		if got := evaluate[string](t, ctx, `document.getElementById('verdict').dataset.state`); got != want[name] {
			t.Errorf("the page of %s says %q, want %q", name, got, want[name])
		}
	}

	// The verified incident's page: its verdict, and the player plays the
	// clip to its end through the console's /media, both tracks decoded.
	incidentURL := base + "incidents/" + a
	media := watchMedia(ctx, "/media/")
	do("open the verified incident", 20*time.Second, chromedp.Navigate(incidentURL), chromedp.WaitVisible(chromedp.ID("verdict")))
	if got := evaluate[string](t, ctx, `document.getElementById('verdict').dataset.state`); got != "verified" {
		t.Errorf("the page of %s says %q, want verified", a, got)
	}
	// The recorders' manifests do not give the picture's size.
	if facts := evaluate[string](t, ctx, `document.querySelector('dl.facts').innerText`); !strings.Contains(facts, "video h264, ") || strings.Contains(facts, "0x0") {
		t.Errorf("the incident's facts say %q, want the video track without a size of 0x0", facts)
	}
	pb := play(t, ctx, "#player")
	if !pb.Ended || pb.Video <= 0 || pb.Audio <= 0 || !strings.Contains(pb.Src, "/media/"+a+"/clip.mp4") {
		t.Errorf("the player: %+v; want it ended, audio and video decoded, from /media/%s/clip.mp4", pb, a)
	}
	if statuses := media(); !slices.Contains(statuses, http.StatusPartialContent) {
		t.Errorf("the player's requests to /media were answered %v, want a 206 (a Range request served)", statuses)
	}

	// Reviewed: a record in the chain of custody, and the tag on the page.
	click := func(id, done string) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		resp, err := chromedp.RunResponse(c, chromedp.Click(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("click #%s: %v", id, err)
		}
		if resp.Status != http.StatusOK || !strings.HasSuffix(resp.URL, "?done="+done) {
			t.Fatalf("click #%s: %d %s, want 200 and the incident's page saying done=%s", id, resp.Status, resp.URL, done)
		}
	}
	click("mark-reviewed", "reviewed")
	custodyDir := "mamoru/.custody/" + a + "/"
	var reviews int
	for o := range root.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: custodyDir, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if strings.Contains(o.Key, "-review-") {
			reviews++
		}
	}
	if reviews != 1 {
		t.Errorf("%d review records under %s, want 1", reviews, custodyDir)
	}
	if tag := evaluate[string](t, ctx, `(document.querySelector('.marks .tag.ok') || {}).textContent || ""`); tag != "確認済み" {
		t.Errorf("after the review the page's tag is %q, want 確認済み", tag)
	}

	// Kept and released: the legal hold of the clip, manifest and
	// signature, and what the page says.
	holds := func(want minio.LegalHoldStatus) {
		t.Helper()
		for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
			st, err := root.GetObjectLegalHold(t.Context(), "clips", folder[a]+"/"+name, minio.GetObjectLegalHoldOptions{})
			if err != nil || st == nil || *st != want {
				t.Errorf("legal hold of %s: %v, %v; want %s", name, st, err, want)
			}
		}
	}
	click("hold", "held")
	holds(minio.LegalHoldEnabled)
	if held := evaluate[string](t, ctx, `document.getElementById('hold-state').dataset.held + " " + !!document.querySelector('.marks .tag.kept')`); held != "true true" {
		t.Errorf("after keeping, the page's hold state and kept tag: %q, want \"true true\"", held)
	}
	click("release", "released")
	holds(minio.LegalHoldDisabled)
	if held := evaluate[string](t, ctx, `document.getElementById('hold-state').dataset.held`); held != "false" {
		t.Errorf("after the release the page's hold state is %q, want false", held)
	}

	// Shared for the default 24 hours: the link plays in a tab of its own,
	// as on a phone that opens it.
	func() {
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := chromedp.RunResponse(c, chromedp.Click(chromedp.ID("share"))); err != nil {
			t.Fatalf("click #share: %v", err)
		}
	}()
	do("share", 20*time.Second, chromedp.WaitVisible(chromedp.ID("share-link")))
	link := evaluate[string](t, ctx, `document.getElementById('share-link').href`)
	if !strings.HasPrefix(link, "http://"+srv.Endpoint+"/clips/"+folder[a]+"/clip.mp4?") || !strings.Contains(link, "X-Amz-Expires=86400") {
		t.Errorf("the share link is %q, want a presigned link to %s's clip for 24 h", link, a)
	}
	checkFonts(t, ctx, "incident")
	shots.take(ctx, "incident", "desktop")
	func() {
		tab, cancel := chromedp.NewContext(ctx)
		defer cancel()
		if err := chromedp.Do(tab); err != nil {
			t.Fatalf("open a tab: %v", err)
		}
		c, cancelOpen := context.WithTimeout(tab, 20*time.Second)
		defer cancelOpen()
		if err := chromedp.Do(c, chromedp.Navigate(link), chromedp.WaitReady(chromedp.CSS("video"))); err != nil {
			t.Fatalf("open the share link: %v", err)
		}
		if pb := play(t, tab, "video"); !pb.Ended || pb.Video <= 0 || pb.Audio <= 0 {
			t.Errorf("the shared link's clip: %+v; want it ended, audio and video decoded", pb)
		}
	}()

	do("open the devices", 20*time.Second, chromedp.Navigate(base+"devices"), chromedp.WaitVisible(chromedp.ID("devices")))
	if n := evaluate[int](t, ctx, `document.querySelectorAll('#devices tbody tr').length`); n != len(devices) {
		t.Errorf("the devices page lists %d devices, want %d", n, len(devices))
	}
	checkFonts(t, ctx, "devices")
	shots.take(ctx, "devices", "desktop")

	// A phone, 390 px wide: nothing scrolls sideways.
	for _, p := range []struct{ page, url, ready string }{
		{"inbox", base, "inbox"},
		{"incident", incidentURL, "verdict"},
		{"devices", base + "devices", "devices"},
	} {
		do("open the "+p.page+" on a phone", 20*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
			chromedp.Navigate(p.url), chromedp.WaitVisible(chromedp.ID(p.ready)))
		if p.page != "devices" {
			w := evaluate[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`)
			if w[1] != 390 || w[0] > w[1] {
				t.Errorf("on a phone the %s is %d px wide in a %d px viewport, want 390 and nothing wider", p.page, w[0], w[1])
			}
		}
		shots.take(ctx, p.page, "phone")
	}
	t.Logf("the console in the browser: %v in all", time.Since(start).Round(100*time.Millisecond))
}

// browserOrSkip returns Chromium's path, or skips the test: under
// qemu-user (make test-arm64) or where it is not installed.
func browserOrSkip(t *testing.T) string {
	t.Helper()
	if os.Getenv("MAMORU_TEST_EXEC") != "" {
		t.Skip("under qemu-user (make test-arm64) there is no Chromium of that architecture to drive; the native run covers the console in a browser")
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium): the console is not tested in a browser")
	}
	return path
}

// recorderConfig is validConfig for store/device, signing with keyPath
// if it is not "".
func recorderConfig(t *testing.T, store, device, keyPath string) string {
	t.Helper()
	src := fmt.Sprintf(validConfig, t.TempDir())
	src = strings.Replace(src, `id = "test-counter"`, fmt.Sprintf("id = %q", device), 1)
	src = strings.Replace(src, `store = "test-store"`, fmt.Sprintf("store = %q", store), 1)
	if keyPath != "" {
		src = strings.Replace(src, "\n\n[capture]", fmt.Sprintf("\nsigning_key_file = %q\n\n[capture]", keyPath), 1)
	}
	return src
}

// recordIncidents runs the recorder of cfg, raises n incidents with
// 'mamoru trigger', one after the other, waits until each is uploaded,
// stops the recorder and returns their ids.
func recordIncidents(t *testing.T, cfg string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), &stdout, &stderr) }()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("mamoru run exited %d\nstderr: %s", code, stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Error("mamoru run did not stop within 60 s of its context ending")
		}
	}()
	var ids []string
	for i := range n {
		awaitStatus(t, cfg, "a pre-roll", func(s device.Status) bool { return s.State == device.StateBuffering && s.BufferedSeconds >= 2 }, &stderr)
		code, out, errOut := runCmd(t, "trigger", "--config", cfg)
		if code != 0 {
			t.Fatalf("mamoru trigger exited %d: %s", code, errOut)
		}
		id := strings.Fields(out)[1]
		awaitStatus(t, cfg, "the upload of "+id, func(s device.Status) bool {
			return s.Uploads != nil && s.Uploads.Shipped == i+1 && s.PendingUploads == 0
		}, &stderr)
		ids = append(ids, id)
	}
	return ids
}

// incidentFolders maps each incident (store/device/id) in the bucket to
// its folder's key.
func incidentFolders(t *testing.T, root *minio.Client) map[string]string {
	t.Helper()
	out := map[string]string{}
	for o := range root.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: "mamoru/shop-", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		// mamoru/<store>/<device>/YYYY/MM/DD/<id>/manifest.json
		p := strings.Split(o.Key, "/")
		if len(p) == 8 && p[7] == outbox.ManifestFile {
			out[p[1]+"/"+p[2]+"/"+p[6]] = strings.Join(p[:7], "/")
		}
	}
	return out
}

// startConsole runs 'mamoru console' for the manager's configuration
// until the test ends and returns its address.
func startConsole(t *testing.T, manager string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out, w := io.Pipe()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"console", "--config", manager, "--listen", "127.0.0.1:0", "--no-browser"}, strings.NewReader(""), w, &stderr)
		w.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("mamoru console exited %d\nstderr: %s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("mamoru console did not stop within 30 s of its context ending")
		}
	})
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			select {
			case lines <- s.Text():
			default: // nobody reads past the address
			}
		}
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("mamoru console ended without an address\nstderr: %s", stderr.String())
			}
			if m := regexp.MustCompile(`^mamoru console: (http://127\.0\.0\.1:\d+/)$`).FindStringSubmatch(line); m != nil {
				return m[1]
			}
		case <-timeout:
			t.Fatalf("mamoru console printed no address within 30 s\nstderr: %s", stderr.String())
		}
	}
}

// evaluate returns what expression gives in the page of ctx, within 10 s.
func evaluate[T any](t *testing.T, ctx context.Context, expression string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expression, err)
	}
	return v
}

// playback is what a <video> element did when played to its end.
type playback struct {
	Ended                 bool
	Problem               string
	CurrentTime, Duration float64
	Video, Audio          int64 // webkit{Video,Audio}DecodedByteCount
	Src                   string
}

// playJS plays the video element that selector finds, muted, at 4 times
// its speed, and reports when it ends, fails, or stalls for 10 s.
const playJS = `(async (selector) => {
  const v = document.querySelector(selector);
  if (!v) return {problem: "no " + selector};
  v.muted = true;
  v.defaultPlaybackRate = 4;
  v.playbackRate = 4;
  let problem = "";
  const end = new Promise((resolve) => {
    v.addEventListener("ended", () => resolve(), {once: true});
    v.addEventListener("error", () => { problem = "media error " + v.error.code + ": " + v.error.message; resolve(); }, {once: true});
    let last = -1;
    const watch = setInterval(() => {
      if (v.ended || problem) { clearInterval(watch); return; }
      if (v.currentTime == last) { problem = "stalled at " + v.currentTime; clearInterval(watch); resolve(); }
      last = v.currentTime;
    }, 10000);
  });
  try { await v.play(); } catch (e) { problem = "play(): " + e; }
  if (!problem) await end;
  return {ended: v.ended, problem: problem, currentTime: v.currentTime, duration: v.duration,
    video: v.webkitVideoDecodedByteCount, audio: v.webkitAudioDecodedByteCount, src: v.currentSrc};
})`

// play plays the video that selector finds in the page of ctx to its
// end, within 45 s.
func play(t *testing.T, ctx context.Context, selector string) playback {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	pb, err := chromedp.Run(c, chromedp.Evaluate[playback](playJS+"("+strconv.Quote(selector)+")", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("play %s: %v", selector, err)
	}
	return pb
}

// watchMedia records the status of every response to a URL holding path
// in the page of ctx, until the returned func is called; it returns them.
func watchMedia(ctx context.Context, path string) func() []int {
	c, cancel := context.WithCancel(ctx)
	events := chromedp.Events(c, network.ResponseReceived)
	var mu sync.Mutex // guards statuses
	var statuses []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range events {
			if err != nil {
				return
			}
			if strings.Contains(ev.Response.URL, path) {
				mu.Lock()
				statuses = append(statuses, int(ev.Response.Status))
				mu.Unlock()
			}
		}
	}()
	return func() []int {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return statuses
	}
}

// watchConsole records the errors and exceptions the browser's console
// shows for the page of ctx, until the returned func is called; it
// returns them.
func watchConsole(ctx context.Context) func() []chromedp.ConsoleMessage {
	c, cancel := context.WithCancel(ctx)
	messages := chromedp.Console(c)
	var mu sync.Mutex // guards bad
	var bad []chromedp.ConsoleMessage
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				bad = append(bad, m)
				mu.Unlock()
			}
		}
	}()
	return func() []chromedp.ConsoleMessage {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return bad
	}
}

// screenshots saves full-page screenshots to the artifacts' directory and,
// with MAMORU_UPDATE_DOCS=1, to the manager's guide's images.
type screenshots struct {
	t    *testing.T
	dir  string
	docs string // "" unless MAMORU_UPDATE_DOCS=1
}

// maxDocImage bounds a screenshot committed to docs/images.
const maxDocImage = 300 << 10

func newScreenshots(t *testing.T) *screenshots {
	s := &screenshots{t: t, dir: os.Getenv("MAMORU_ARTIFACTS")}
	if s.dir == "" {
		s.dir = t.TempDir()
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("MAMORU_UPDATE_DOCS") == "1" {
		s.docs = filepath.Join("..", "..", "docs", "images")
		if err := os.MkdirAll(s.docs, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", s.dir)
	return s
}

// take saves the page of ctx as console-<page>-<width>.png; the guide's
// copy is drawn smaller, if it must be, to weigh at most maxDocImage.
func (s *screenshots) take(ctx context.Context, page, width string) {
	s.t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	name := "console-" + page + "-" + width + ".png"
	png, err := chromedp.Run(c, fullPage(1))
	if err != nil {
		s.t.Fatalf("screenshot of the %s (%s): %v", page, width, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if s.docs == "" {
		return
	}
	for scale := 0.8; len(png) > maxDocImage && scale > 0.3; scale -= 0.1 {
		if png, err = chromedp.Run(c, fullPage(scale)); err != nil {
			s.t.Fatalf("screenshot of the %s (%s) at %.1f: %v", page, width, scale, err)
		}
	}
	if len(png) > maxDocImage {
		s.t.Errorf("%s is %d KB even drawn small, more than the guide's %d KB", name, len(png)>>10, maxDocImage>>10)
		return
	}
	if err := os.WriteFile(filepath.Join(s.docs, name), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// fullPage is a PNG of the whole page, drawn at scale.
func fullPage(scale float64) chromedp.Action[[]byte] {
	return func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		m, err := cdp.Call(ctx, tg, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		r, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format: page.CaptureScreenshotFormatPng, CaptureBeyondViewport: &[]bool{true}[0], FromSurface: &[]bool{true}[0],
			Clip: &page.Viewport{Width: m.CSSContentSize.Width, Height: m.CSSContentSize.Height, Scale: scale},
		})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	}
}

// checkFonts fails the test for each text of the page of ctx that is
// drawn, wholly or in part, without a font that has its characters.
func checkFonts(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	problems, err := missingGlyphs(c, fontCoverage{})
	if err != nil {
		t.Fatalf("fonts of the %s: %v", page, err)
	}
	for _, p := range problems {
		t.Errorf("the %s: %s", page, p)
	}
}

// missingGlyphs asks Chromium which fonts drew each text node of the page
// (CSS.getPlatformFontsForNode), and returns, for each text that is drawn,
// what no font drawing it has a glyph for, or is drawn with no glyphs at
// all. A character no font has is drawn with the first font's .notdef
// glyph and counted as that font's, so the counts alone do not tell:
// each font's character set (fontconfig's) does.
func missingGlyphs(ctx context.Context, cover fontCoverage) ([]string, error) {
	var problems []string
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		depth := int64(-1)
		doc, err := cdp.Call(ctx, tg, dom.GetDocument, dom.GetDocumentParams{Depth: &depth})
		if err != nil {
			return err
		}
		var walk func(n *cdp.Node, drawn bool) error
		walk = func(n *cdp.Node, drawn bool) error {
			switch strings.ToLower(n.LocalName) {
			case "head", "script", "style", "title", "template", "option":
				drawn = false // not drawn as text of the page
			}
			if text := strings.TrimSpace(n.NodeValue); n.NodeType == 3 && drawn && text != "" {
				fonts, err := cdp.Call(ctx, tg, css.GetPlatformFontsForNode, css.GetPlatformFontsForNodeParams{NodeID: n.NodeID})
				if err != nil {
					return fmt.Errorf("fonts of %q: %w", text, err)
				}
				if p, err := cover.check(text, fonts.Fonts); err != nil {
					return err
				} else if p != "" {
					problems = append(problems, p)
				}
			}
			for _, ch := range n.Children {
				if err := walk(ch, drawn); err != nil {
					return err
				}
			}
			return nil
		}
		return walk(doc.Root, true)
	}))
	return problems, err
}

// fontCoverage reads fonts' character sets from fontconfig, which is
// where Chromium on Linux finds its fonts, and remembers them by
// PostScript name.
type fontCoverage map[string]*unicode.RangeTable

// check says what of text, drawn with fonts, has no glyph in them: ""
// if every character has one.
func (fc fontCoverage) check(text string, fonts []*css.PlatformFontUsage) (string, error) {
	var glyphs float64
	var tables []*unicode.RangeTable
	var names []string
	for _, f := range fonts {
		glyphs += f.GlyphCount
		tab, err := fc.charset(f.PostScriptName)
		if err != nil {
			return "", err
		}
		tables = append(tables, tab)
		names = append(names, f.FamilyName)
	}
	// Text hidden (display: none, a closed <details>) is not laid out and
	// uses no font: nothing to see, nothing missing.
	if len(fonts) == 0 {
		return "", nil
	}
	if glyphs == 0 {
		return fmt.Sprintf("%q is drawn with no glyphs (fonts %v)", text, names), nil
	}
	var missing []string
	for _, r := range text {
		if unicode.IsSpace(r) || unicode.Is(unicode.Cc, r) || unicode.In(r, unicode.Variation_Selector, unicode.Join_Control) {
			continue
		}
		if !slices.ContainsFunc(tables, func(tab *unicode.RangeTable) bool { return unicode.Is(tab, r) }) {
			missing = append(missing, fmt.Sprintf("U+%04X %q", r, r))
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%q: no glyph for %s in the fonts that draw it (%v): shown as boxes", text, strings.Join(slices.Compact(missing), ", "), names), nil
	}
	return "", nil
}

// charset returns the characters of the installed font of that
// PostScript name.
func (fc fontCoverage) charset(postscript string) (*unicode.RangeTable, error) {
	if tab, ok := fc[postscript]; ok {
		return tab, nil
	}
	out, err := exec.Command("fc-list", ":postscriptname="+postscript, "charset").Output()
	if err != nil {
		return nil, fmt.Errorf("fc-list for the font %s: %w (apt-get install fontconfig)", postscript, err)
	}
	tab := &unicode.RangeTable{}
	// "charset=20-7e a0-17f ...", a line per file of that name.
	for _, line := range strings.Split(string(out), "\n") {
		_, ranges, ok := strings.Cut(strings.TrimSpace(line), "charset=")
		if !ok {
			continue
		}
		for _, rg := range strings.Fields(ranges) {
			lo, hi, _ := strings.Cut(rg, "-")
			if hi == "" {
				hi = lo
			}
			l, err1 := strconv.ParseUint(lo, 16, 32)
			h, err2 := strconv.ParseUint(hi, 16, 32)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("fc-list for the font %s: charset %q: %w", postscript, rg, err)
			}
			tab.R32 = append(tab.R32, unicode.Range32{Lo: uint32(l), Hi: uint32(h), Stride: 1})
		}
	}
	if len(tab.R32) == 0 {
		return nil, fmt.Errorf("fontconfig does not know the font %s that Chromium drew with", postscript)
	}
	fc[postscript] = tab
	return tab, nil
}

// The glyph check fails for a script no installed font has (Adlam), and
// for one character of it among Japanese, and passes Japanese.
func TestMissingGlyphsInBrowser(t *testing.T) {
	chromium := browserOrSkip(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="ja"><head><title>𞤀</title></head>`+
			`<body style='font-family: "Noto Sans CJK JP", sans-serif'><p id="ja">確認済みにする — 保全中 ABC 123</p>`+
			`<p id="adlam">𞤀𞤁𞤂</p><p id="mixed">確認 𞤀 済み</p><p style="display: none">𞤀 hidden</p></body></html>`)
	}))
	defer srv.Close()
	userData, err := os.MkdirTemp("", "mamoru-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(userData)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(userData))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	c, cancelRun := context.WithTimeout(ctx, 30*time.Second)
	defer cancelRun()
	if err := chromedp.Do(c, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("mixed"))); err != nil {
		t.Fatal(err)
	}
	problems, err := missingGlyphs(c, fontCoverage{})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(problems, "\n")
	if len(problems) != 2 || !strings.Contains(problems[0], `"𞤀𞤁𞤂": no glyph for U+1E900 '𞤀', U+1E901 '𞤁', U+1E902 '𞤂' in`) ||
		!strings.Contains(problems[1], `"確認 𞤀 済み": no glyph for U+1E900 '𞤀' in`) {
		t.Errorf("problems found:\n%s\nwant the Adlam paragraph and the mixed one, and neither the Japanese nor the hidden text", joined)
	}
}
