//go:build linux

package fleet

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mamoru/alert"
	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/clock"
	"mamoru/health"
)

// BenchmarkFleetLs1000 plants 1,000 devices (10 stores of 100) in a real
// MinIO on loopback, each with its health.json and 3 incidents of 3
// objects (10,000 objects in all), and times a scan three ways:
//
//   - delimited: Scan, listing <prefix>/ and <prefix>/<store>/ with a
//     delimiter, reports read 16 at a time;
//   - recursive: what a user would write first, a recursive listing of the
//     whole prefix keeping the health.json keys, the reports read as
//     Scan reads them;
//   - recursive-serial: the same, the reports read one after another.
//
// Each again with 20 ms added before every request ("-20ms"), as a bucket
// in the cloud is from a shop's office.
//
// watch-poll is one poll of fleet watch (a Scan and Observe), whose
// allocations -benchmem reports per poll; heap-growth-B is the live heap
// after the last poll less that after the first, both after a GC: what a
// poll leaves behind.
func BenchmarkFleetLs1000(b *testing.B) {
	const stores, perStore, incidents = 10, 100, 3
	srv := s3test.Start(b, s3test.Options{})
	srv.Bucket("clips")
	client, err := bucket.NewClient(srv.Storage("clips"))
	if err != nil {
		b.Fatal(err)
	}
	plant1000(b, srv.Root(), stores, perStore, incidents)
	bk := Bucket{Client: client, Bucket: "clips", Prefix: "mamoru"}
	ctx := context.Background()

	// The same against a server 20 ms away, as a cloud bucket is from a
	// shop's office: each request waits 20 ms before it is sent.
	far, err := minio.NewCore(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3test.RootUser, s3test.RootPassword, ""),
		Transport: delayed{http.DefaultTransport, 20 * time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	for _, at := range []struct {
		bucket Bucket
		suffix string
	}{{bk, ""}, {Bucket{Client: far, Bucket: "clips", Prefix: "mamoru"}, "-20ms"}} {
		b.Run("delimited"+at.suffix, func(b *testing.B) {
			for b.Loop() {
				if devices, err := at.bucket.Scan(ctx, Options{}); err != nil || len(devices) != stores*perStore {
					b.Fatalf("Scan: %d devices, %v", len(devices), err)
				}
			}
		})
		for _, serial := range []bool{false, true} {
			name := "recursive"
			if serial {
				name = "recursive-serial"
			}
			b.Run(name+at.suffix, func(b *testing.B) {
				for b.Loop() {
					if n := recursiveScan(ctx, at.bucket, serial); n != stores*perStore {
						b.Fatalf("recursive: %d devices", n)
					}
				}
			})
		}
	}
	b.Run("watch-poll", func(b *testing.B) {
		b.ReportAllocs()
		w := NewWatch(clock.Real(), 0)
		poll := func() {
			devices, err := bk.Scan(ctx, Options{})
			if err != nil {
				b.Fatal(err)
			}
			w.Observe(devices, func(alert.Event) bool { return true })
		}
		poll()
		var first, last runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&first)
		for b.Loop() {
			poll()
		}
		runtime.GC()
		runtime.ReadMemStats(&last)
		b.ReportMetric(float64(int64(last.HeapAlloc)-int64(first.HeapAlloc)), "heap-growth-B")
		b.ReportMetric(float64(last.HeapAlloc), "heap-live-B")
	})
}

// delayed is a transport that waits before each request.
type delayed struct {
	rt    http.RoundTripper
	delay time.Duration
}

func (d delayed) RoundTrip(r *http.Request) (*http.Response, error) {
	time.Sleep(d.delay)
	return d.rt.RoundTrip(r)
}

// plant1000 writes the devices' reports and incidents, 32 at a time.
func plant1000(b *testing.B, c *minio.Client, stores, perStore, incidents int) {
	b.Helper()
	var keys []string
	for s := range stores {
		for d := range perStore {
			dir := path.Join("mamoru", fmt.Sprintf("shop-%02d", s), fmt.Sprintf("counter-%03d", d))
			keys = append(keys, path.Join(dir, health.File))
			for i := range incidents {
				inc := path.Join(dir, "2026/11/30", fmt.Sprintf("20261130-1200%02d-%06d", i, i+1))
				keys = append(keys, path.Join(inc, "clip.mp4"), path.Join(inc, "manifest.json"), path.Join(inc, "manifest.sig"))
			}
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var mu sync.Mutex // guards failed
	var failed error
	for _, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			body := []byte("x")
			if path.Base(k) == health.File {
				parts := strings.Split(k, "/")
				r := health.Report{Store: parts[1], Device: parts[2], Label: "カウンター", State: "buffering", RecordingExpected: true,
					Hours: health.Hours{Recording: []string{"mon-fri 09:00-21:00"}, Zone: "Asia/Tokyo"}, Software: "1.0.0", Sent: time.Now()}
				body, _ = r.Marshal()
			}
			if _, err := c.PutObject(context.Background(), "clips", k, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
}

// recursiveScan finds the reports by a recursive listing of the whole
// prefix, and reads them (16 at a time, or one after another); it returns
// how many it read.
func recursiveScan(ctx context.Context, bk Bucket, serial bool) int {
	var devices []Device
	for o := range bk.Client.Client.ListObjects(ctx, bk.Bucket, minio.ListObjectsOptions{Prefix: bk.Prefix + "/", Recursive: true}) {
		if o.Err != nil {
			return -1
		}
		if path.Base(o.Key) == health.File {
			parts := strings.Split(o.Key, "/")
			devices = append(devices, Device{Store: parts[len(parts)-3], Device: parts[len(parts)-2], Key: o.Key})
		}
	}
	o := Options{}.withDefaults()
	if serial {
		o.Concurrency = 1
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.Concurrency)
	for i := range devices {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			bk.read(ctx, &devices[i], o)
		})
	}
	wg.Wait()
	n := 0
	for _, d := range devices {
		if d.Report != nil {
			n++
		}
	}
	return n
}
