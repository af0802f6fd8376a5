package uploader

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/outbox"
)

// clipBytes is a 60 s clip of 720p30 at 2.5 Mbit/s with 48 kHz mono FLAC.
const clipBytes = 60*2_500_000/8 + 60*48_000*2/2

// BenchmarkUploadThroughput uploads the same 60 s clip to the same MinIO
// with mamoru's uploader and with `rclone copyto`, turn about, and reports
// both rates and their ratio.
func BenchmarkUploadThroughput(b *testing.B) {
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		b.Fatal("rclone is not installed (apt-get install rclone; .ci/install-deps does)")
	}
	srv := s3test.Start(b, s3test.Options{})
	srv.Bucket("clips")
	st := srv.Storage("clips")
	st.PartSizeMB = 8
	c, err := bucket.NewClient(st)
	if err != nil {
		b.Fatal(err)
	}
	u := &Uploader{Storage: st, Location: tokyo, Log: slog.New(slog.DiscardHandler), Client: c}
	box := b.TempDir()
	var mamoru, rc time.Duration
	for i := 0; b.Loop(); i++ {
		m := makeIncident(b, box, fmt.Sprintf("20261123-120000-%06d", i+1), clipBytes)
		dir := filepath.Join(box, m.Incident)
		// rclone first, from a copy, since mamoru deletes what it ships.
		src := filepath.Join(b.TempDir(), "clip.mp4")
		data, _ := os.ReadFile(filepath.Join(dir, outbox.ClipFile))
		os.WriteFile(src, data, 0o644)
		cmd := exec.Command(rclone, "copyto", src, fmt.Sprintf(":s3:clips/rclone/%d/clip.mp4", i))
		cmd.Env = append(environWithout("AWS_CA_BUNDLE"), "RCLONE_S3_PROVIDER=Minio", "RCLONE_S3_ENDPOINT=http://"+srv.Endpoint,
			"RCLONE_S3_ACCESS_KEY_ID="+s3test.RootUser, "RCLONE_S3_SECRET_ACCESS_KEY="+s3test.RootPassword, "RCLONE_CONFIG=/dev/null")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("rclone: %v\n%s", err, out)
		}
		rc += time.Since(start)
		start = time.Now()
		if err := u.ship(b.Context(), outbox.Incident{Dir: dir, Manifest: m}, nil); err != nil {
			b.Fatal(err)
		}
		mamoru += time.Since(start)
	}
	mb := float64(clipBytes) * float64(b.N) / 1e6
	b.ReportMetric(mb/mamoru.Seconds(), "mamoru-MB/s")
	b.ReportMetric(mb/rc.Seconds(), "rclone-MB/s")
	b.ReportMetric(rc.Seconds()/mamoru.Seconds(), "mamoru/rclone-speed")
}

// BenchmarkResumeAfterCut stops the server when half the clip's parts are
// stored, starts it again, and reports how many parts' worth of bytes the
// server accepted beyond the clip itself: at most one part may be sent
// twice.
func BenchmarkResumeAfterCut(b *testing.B) {
	srv := s3test.Start(b, s3test.Options{})
	srv.Bucket("clips")
	box := b.TempDir()
	var resent, cuts float64
	for i := 0; b.Loop(); i++ {
		px := newProxy(b, srv.Endpoint)
		const parts = 8
		m := makeIncident(b, box, fmt.Sprintf("20261123-120000-%06d", i+1), parts*5<<20)
		var once sync.Once
		px.after = func(part int) error {
			if part == parts/2 {
				once.Do(func() {
					srv.Stop()
					go func() { time.Sleep(300 * time.Millisecond); srv.Start() }()
				})
			}
			return nil
		}
		st := srv.Storage("clips")
		st.Endpoint = strings.TrimPrefix(px.URL, "http://")
		u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo, Log: slog.New(slog.DiscardHandler)}
		u.Backoff.Min, u.Backoff.Max = 50*time.Millisecond, 200*time.Millisecond
		runUntil(b, u, func() bool { return u.Status().Shipped == 1 })
		accepted, _ := px.counts()
		total := int64(0)
		for _, n := range accepted {
			total += n
		}
		resent += float64(total-m.Clip.Size) / float64(5<<20)
		cuts++
		time.Sleep(500 * time.Millisecond) // let the server finish restarting
	}
	b.ReportMetric(resent/cuts, "parts-resent/cut")
}

// environWithout is the environment without the variable name (a CA bundle
// setting, say, that would make rclone's AWS SDK refuse a plain-http server).
func environWithout(name string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	return env
}
