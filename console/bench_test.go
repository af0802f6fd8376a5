//go:build linux

package console

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/custody"
	"mamoru/signing"
)

// BenchmarkInbox10000 plants 10,000 incidents (4 stores of 5 devices, 500
// each, every one a clip, a signed manifest and its signature: 30,000
// objects) and 15,000 records of their chain of custody (each viewed, every
// other one reviewed) in a real MinIO on loopback, and times the inbox's first page
// (50 incidents, newest first, with the unreviewed count of every store):
//
//   - cold: a console just started, which lists the bucket's keys and the
//     chain of custody's and reads the page's 50 manifests;
//   - warm: the same console again, within its listing's 10 s;
//   - clips-ls: what a manager had before, 'mamoru clips ls', which reads
//     every manifest in the bucket (bucket.Clips.List).
func BenchmarkInbox10000(b *testing.B) {
	const stores, devices, per = 4, 5, 500
	srv := s3test.Start(b, s3test.Options{})
	srv.Bucket("clips")
	client, err := bucket.NewClient(srv.Storage("clips"))
	if err != nil {
		b.Fatal(err)
	}
	kr := plantMany(b, srv.Root(), stores, devices, per)
	clips := bucket.Clips{Client: client.Client, Bucket: "clips", Prefix: "mamoru", Keyring: kr}

	firstPage := func(b *testing.B, s *Server) {
		rec := httptest.NewRecorder()
		s.inbox(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != http.StatusOK || bytes.Count(rec.Body.Bytes(), []byte("<tr data-name=")) != 50 {
			b.Fatalf("inbox: %d, %d rows\n%.2000s", rec.Code, bytes.Count(rec.Body.Bytes(), []byte("<tr data-name=")), rec.Body.String())
		}
		if want := fmt.Sprintf(`data-store="shop-1">%d<`, devices*per/2); !bytes.Contains(rec.Body.Bytes(), []byte(want)) {
			b.Fatalf("inbox: no %s: the unreviewed count is wrong", want)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			s, err := New(Options{Clips: clips, Zone: time.UTC})
			if err != nil {
				b.Fatal(err)
			}
			firstPage(b, s)
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
	})
	b.Run("warm", func(b *testing.B) {
		s, err := New(Options{Clips: clips, Zone: time.UTC})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		firstPage(b, s)
		for b.Loop() {
			firstPage(b, s)
		}
	})
	b.Run("clips-ls", func(b *testing.B) {
		for b.Loop() {
			es, err := clips.List(context.Background(), bucket.Filter{})
			if err != nil || len(es) != stores*devices*per {
				b.Fatalf("List: %d incidents, %v", len(es), err)
			}
		}
	})
}

// plantMany writes stores×devices×per signed incidents under "mamoru/",
// 32 objects at a time, and returns the keyring that verifies them.
func plantMany(b *testing.B, c *minio.Client, stores, devices, per int) (kr signing.Keyring) {
	b.Helper()
	type object struct {
		key  string
		data []byte
	}
	objects := make(chan object, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards failed
	var failed error
	for range 32 {
		wg.Go(func() {
			for o := range objects {
				if _, err := c.PutObject(context.Background(), "clips", o.key, bytes.NewReader(o.data), int64(len(o.data)), minio.PutObjectOptions{}); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		})
	}
	clip := bytes.Repeat([]byte("clip"), 256)
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	for s := range stores {
		for d := range devices {
			store, device := fmt.Sprintf("shop-%d", s+1), fmt.Sprintf("counter-%d", d+1)
			pub, priv, _ := ed25519.GenerateKey(nil)
			kr = append(kr, signing.KeyringEntry{Store: store, Device: device, Key: pub})
			for i := range per {
				press := start.Add(time.Duration(i) * 15 * time.Hour).Add(time.Duration(s*devices+d) * time.Minute)
				in := makeIncident(store, device, press, i+1, clip, priv)
				for k, b := range in.objects {
					objects <- object{k, b}
				}
				// Every incident viewed once, every other one reviewed.
				for _, action := range []custody.Action{custody.View, custody.Review}[:1+i%2] {
					r := custody.Record{Time: press.Add(time.Hour), Action: action, Actor: "bench", Incident: store + "/" + device + "/" + in.m.Incident}
					b, _ := json.Marshal(r)
					key := path.Join("mamoru", custody.Dir, store, device, in.m.Incident, fmt.Sprintf("%s-%s-%d.json", r.Time.Format(time.RFC3339), action, i))
					objects <- object{key, b}
				}
			}
		}
	}
	close(objects)
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	return kr
}
