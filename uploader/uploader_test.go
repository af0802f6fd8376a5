package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/backoff"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

var tokyo, _ = time.LoadLocation("Asia/Tokyo")

// makeIncident writes an incident directory holding a clip of size random
// bytes and its complete manifest, and returns its manifest.
func makeIncident(t testing.TB, box string, id string, size int) outbox.Manifest {
	t.Helper()
	dir := filepath.Join(box, id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	clip := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), id[len(id)-1]})
	r.Read(clip)
	if err := os.WriteFile(filepath.Join(dir, outbox.ClipFile), clip, 0o640); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(clip)
	press := time.Date(2026, 11, 23, 8, 30, 0, 0, tokyo) // 22 Nov 23:30 UTC: the folder is the Tokyo date
	m := outbox.Manifest{
		Version: 1, Device: "counter-1", Store: "shibuya", Incident: id, State: outbox.StateComplete, Trigger: "button",
		PressTime: press, ClipStart: press.Add(-30 * time.Second), ClipEnd: press.Add(30 * time.Second), DurationSeconds: 60,
		Clip: outbox.ClipDigest{File: outbox.ClipFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(size)}, Software: "test",
	}
	if err := outbox.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// objectSHA256 downloads an object and returns its SHA-256 in hex.
func objectSHA256(t testing.TB, c *minio.Client, bucket, object string, opts minio.GetObjectOptions) string {
	t.Helper()
	o, err := c.GetObject(context.Background(), bucket, object, opts)
	if err != nil {
		t.Fatalf("get %s: %v", object, err)
	}
	defer o.Close()
	h := sha256.New()
	if _, err := io.Copy(h, o); err != nil {
		t.Fatalf("read %s: %v", object, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// runUntil runs u until cond holds or 60 s pass.
func runUntil(t testing.TB, u *Uploader, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("not done after 60 s; status %+v", u.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestShipsOldestFirstAndDeletesOnlyAfterwards(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	box := t.TempDir()
	small := makeIncident(t, box, "20261123-233000-000001", 300<<10)
	big := makeIncident(t, box, "20261123-233100-000002", 12<<20+12345) // three 5 MiB parts
	st := srv.Storage("clips")
	st.Prefix = "mamoru"
	var mu sync.Mutex
	var shipped []string
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t),
		Shipped: func(m outbox.Manifest, _ string) { mu.Lock(); shipped = append(shipped, m.Incident); mu.Unlock() }}
	runUntil(t, u, func() bool { mu.Lock(); defer mu.Unlock(); return len(shipped) == 2 })

	if got, want := strings.Join(shipped, ","), small.Incident+","+big.Incident; got != want {
		t.Errorf("shipped %s, want oldest first: %s", got, want)
	}
	root := srv.Root()
	for _, m := range []outbox.Manifest{small, big} {
		dir := "mamoru/shibuya/counter-1/2026/11/23/" + m.Incident
		if got := objectSHA256(t, root, "clips", dir+"/clip.mp4", minio.GetObjectOptions{}); got != m.Clip.SHA256 {
			t.Errorf("%s: clip in bucket has SHA-256 %s, manifest says %s", m.Incident, got, m.Clip.SHA256)
		}
		info, err := root.StatObject(context.Background(), "clips", dir+"/clip.mp4", minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if info.ContentType != "video/mp4" || info.UserMetadata["Sha256"] != m.Clip.SHA256 {
			t.Errorf("%s: content type %q, sha256 metadata %q", m.Incident, info.ContentType, info.UserMetadata["Sha256"])
		}
		o, err := root.GetObject(context.Background(), "clips", dir+"/manifest.json", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got outbox.Manifest
		if err := json.NewDecoder(o).Decode(&got); err != nil {
			t.Fatalf("%s: manifest in bucket: %v", m.Incident, err)
		}
		o.Close()
		if got.Clip != m.Clip {
			t.Errorf("%s: manifest in bucket has clip %+v, want %+v", m.Incident, got.Clip, m.Clip)
		}
		if _, err := os.Stat(filepath.Join(box, m.Incident)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: local copy still there after upload (%v)", m.Incident, err)
		}
	}
	if s := u.Status(); s.Pending != 0 || s.LastSuccess != big.Incident || s.LastError != "" || s.Shipped != 2 {
		t.Errorf("status %+v", s)
	}
}

// proxy sits between the uploader and MinIO, counting the body bytes of
// each part number and letting a test break requests.
type proxy struct {
	*httptest.Server
	mu       sync.Mutex           // guards the fields below
	requests int                  // every request, of any kind
	bytes    map[int]int64        // body bytes the server accepted, per part number (0: single PUTs)
	sent     map[int]int          // requests per part number, accepted or not
	after    func(part int) error // called after each part's response; an error fails the request
	alter    func(part int, body []byte) []byte
}

func newProxy(t testing.TB, target string) *proxy {
	p := &proxy{bytes: map[int]int64{}, sent: map[int]int{}}
	u, _ := url.Parse("http://" + target)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host // the signature covers the host the client saw
	}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests++
		p.mu.Unlock()
		part, _ := strconv.Atoi(r.URL.Query().Get("partNumber"))
		size := int64(0)
		if r.Method == http.MethodPut && r.URL.Query().Get("uploadId") != "" || r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, outbox.ClipFile) {
			body, _ := io.ReadAll(r.Body)
			p.mu.Lock()
			size = int64(len(body))
			p.sent[part]++
			if p.alter != nil {
				body = p.alter(part, body)
			}
			p.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK {
			p.mu.Lock()
			p.bytes[part] += size
			p.mu.Unlock()
		}
		if r.Method == http.MethodPut && part > 0 {
			p.mu.Lock()
			var err error
			if p.after != nil {
				err = p.after(part)
			}
			p.mu.Unlock()
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(p.Close)
	return p
}

// requestCount is the number of requests the proxy has seen.
func (p *proxy) requestCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

func (p *proxy) counts() (map[int]int64, map[int]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, n := map[int]int64{}, map[int]int{}
	for k, v := range p.bytes {
		b[k] = v
	}
	for k, v := range p.sent {
		n[k] = v
	}
	return b, n
}

func TestServerRefusesACorruptedBody(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	px := newProxy(t, srv.Endpoint)
	box := t.TempDir()
	small := makeIncident(t, box, "20261123-233000-000001", 100<<10)
	big := makeIncident(t, box, "20261123-233100-000002", 11<<20)
	// Flip one byte of the first request of each part (and of the single PUT).
	flipped := map[int]bool{}
	px.alter = func(part int, body []byte) []byte {
		if flipped[part] || len(body) < 1000 {
			return body
		}
		flipped[part] = true
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0x40
		return body
	}
	st := srv.Storage("clips")
	st.Endpoint = strings.TrimPrefix(px.URL, "http://")
	st.Secure = false
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t),
		Backoff: backoff.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}}
	runUntil(t, u, func() bool { return u.Status().Shipped == 2 })
	root := srv.Root()
	for _, m := range []outbox.Manifest{small, big} {
		dir := path.Join("shibuya/counter-1/2026/11/23", m.Incident)
		if got := objectSHA256(t, root, "clips", dir+"/clip.mp4", minio.GetObjectOptions{}); got != m.Clip.SHA256 {
			t.Errorf("%s: the bucket kept a corrupted clip: SHA-256 %s, want %s", m.Incident, got, m.Clip.SHA256)
		}
	}
	_, sent := px.counts()
	for part := range 3 {
		if sent[part] != 2 {
			t.Errorf("part %d sent %d times, want 2 (refused once, then accepted)", part, sent[part])
		}
	}
}

func TestOutageResumesWithoutResendingParts(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	px := newProxy(t, srv.Endpoint)
	box := t.TempDir()
	const size = 4*5<<20 + 777 // five parts of 5 MiB, the last small
	m := makeIncident(t, box, "20261123-233000-000001", size)
	var once sync.Once
	restarted := make(chan struct{})
	px.after = func(part int) error {
		if part == 2 {
			// The server goes away once part 2 is stored, and comes back
			// a second later.
			once.Do(func() {
				srv.Stop()
				go func() { time.Sleep(time.Second); srv.Start(); close(restarted) }()
			})
		}
		return nil
	}
	st := srv.Storage("clips")
	st.Endpoint = strings.TrimPrefix(px.URL, "http://")
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: testLog(t),
		Backoff: backoff.Backoff{Min: 100 * time.Millisecond, Max: 500 * time.Millisecond}}
	runUntil(t, u, func() bool { return u.Status().Shipped == 1 })
	<-restarted

	bytesPer, sent := px.counts()
	total := int64(0)
	for _, n := range bytesPer {
		total += n
	}
	t.Logf("clip %d bytes; the server accepted %d bytes; requests per part %v", size, total, sent)
	if sent[1] != 1 || sent[2] != 1 {
		t.Errorf("parts finished before the outage were sent again: requests per part %v", sent)
	}
	if total > size+5<<20 {
		t.Errorf("the server accepted %d bytes for a %d byte clip: more than one part was sent again", total, size)
	}
	dir := path.Join("shibuya/counter-1/2026/11/23", m.Incident)
	if got := objectSHA256(t, srv.Root(), "clips", dir+"/clip.mp4", minio.GetObjectOptions{}); got != m.Clip.SHA256 {
		t.Errorf("clip in bucket has SHA-256 %s, want %s", got, m.Clip.SHA256)
	}
}
