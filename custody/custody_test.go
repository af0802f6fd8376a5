package custody

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
)

// Records go to the managers' folder, are listed oldest first with the
// bucket's time, an unreadable one shown with its problem, and clips ls
// passes them by.
func TestAddAndList(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	l := Log{Client: srv.Root(), Bucket: "clips", Prefix: "mamoru"}
	const store, device, id = "shop-1", "counter-1", "20261123-154502-000001"
	at := time.Date(2026, 11, 23, 16, 0, 0, 0, time.FixedZone("JST", 9*3600))
	before := time.Now().Add(-time.Second)
	k1, err := l.Add(t.Context(), store, device, id, Record{Time: at, Action: Download, Actor: "sato", Detail: "to ./out"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "mamoru/.custody/shop-1/counter-1/" + id + "/2026-11-23T07:00:00Z-download-"; !strings.HasPrefix(k1, want) || !strings.HasSuffix(k1, ".json") {
		t.Errorf("key %q, want %q<uuid>.json", k1, want)
	}
	time.Sleep(1100 * time.Millisecond) // the bucket's clock counts whole seconds in Last-Modified
	if _, err := l.Add(t.Context(), store, device, id, Record{Time: at, Action: Handover, Actor: "suzuki"}); err != nil {
		t.Fatal(err)
	}
	// Another incident's record is not this one's.
	if _, err := l.Add(t.Context(), store, device, "20261123-154502-000002", Record{Time: at, Action: Share, Actor: "sato"}); err != nil {
		t.Fatal(err)
	}
	bad := l.Folder(store, device, id) + "2026-11-23T08:00:00Z-view-x.json"
	if _, err := srv.Root().PutObject(t.Context(), "clips", bad, bytes.NewReader([]byte("{")), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	es, err := l.List(t.Context(), store, device, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("listed %d records, want 3: %+v", len(es), es)
	}
	if got := es[0]; got.Action != Download || got.Actor != "sato" || got.Detail != "to ./out" || !got.Time.Equal(at) || got.Incident != store+"/"+device+"/"+id || got.Key != k1 || got.Stored.Before(before.Truncate(time.Second)) {
		t.Errorf("first record %+v, want sato's download, stored after %v", got, before)
	}
	if es[1].Action != Handover || !es[1].Stored.After(es[0].Stored) {
		t.Errorf("second record %+v, want the hand-over, stored after the download (%v)", es[1], es[0].Stored)
	}
	var unreadable *Entry
	for i := range es {
		if es[i].Key == bad {
			unreadable = &es[i]
		}
	}
	if unreadable == nil || unreadable.Problem == "" || unreadable.Action != View || !unreadable.Time.Equal(time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("the unreadable record: %+v; want listed with its problem and what its name says", unreadable)
	}

	for _, r := range []Record{
		{Time: at, Action: "erase", Actor: "sato"},
		{Time: at, Action: View, Actor: " "},
		{Time: at, Action: View, Actor: "sato", Detail: strings.Repeat("x", maxDetail+1)},
	} {
		if _, err := l.Add(t.Context(), store, device, id, r); !errors.Is(err, ErrBadRecord) {
			t.Errorf("Add(%+v) = %v, want ErrBadRecord", r, err)
		}
	}

	// clips ls finds no incident in the records.
	es2, err := bucket.Clips{Client: srv.Root(), Bucket: "clips", Prefix: "mamoru"}.List(t.Context(), bucket.Filter{})
	if err != nil || len(es2) != 0 {
		t.Errorf("clips listed %+v, %v; want no incident from custody records", es2, err)
	}
}

// Summaries reads every incident's state from the records' names in one
// listing: reviewed, a false press, held (the later of hold and release),
// deleted, how many notes and records, and the bucket's time of the last.
func TestSummaries(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	l := Log{Client: srv.Root(), Bucket: "clips", Prefix: "mamoru"}
	at := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	add := func(incident string, actions ...Action) {
		t.Helper()
		parts := strings.Split(incident, "/")
		for _, a := range actions {
			at = at.Add(time.Second) // the keys' order is the order written, should the bucket's times tie
			if _, err := l.Add(t.Context(), parts[0], parts[1], parts[2], Record{Time: at, Action: a, Actor: "sato", Detail: "x"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	const (
		reviewed = "shop-1/counter-1/20261123-154502-000001"
		released = "shop-1/counter-1/20261123-154502-000002"
		held     = "shop-1/counter-2/20261123-154502-000001"
		deleted  = "shop-2/counter-1/20261123-154502-000003"
	)
	add(reviewed, View, Review, Note, Note, FalsePress)
	add(released, Hold, Release)
	add(held, Release, Hold, Share)
	add(deleted, Hold, Release, Delete)
	// An object whose name is no record's still counts; one elsewhere in
	// the folder is no incident's.
	for _, key := range []string{"mamoru/.custody/shop-1/counter-1/20261123-154502-000002/notes.txt", "mamoru/.custody/stray.json", "mamoru/shop-1/counter-1/x.json"} {
		if _, err := srv.Root().PutObject(t.Context(), "clips", key, bytes.NewReader([]byte("{")), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	got, err := l.Summaries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Errorf("Summaries has %d incidents, want 4: %+v", len(got), got)
	}
	for _, tc := range []struct {
		incident string
		want     Summary
	}{
		{reviewed, Summary{Reviewed: true, FalsePress: true, Notes: 2, Records: 5}},
		{released, Summary{Records: 3}},
		{held, Summary{Held: true, Records: 3}},
		{deleted, Summary{Deleted: true, Records: 3}},
	} {
		s := got[tc.incident]
		es, err := l.List(t.Context(), strings.Split(tc.incident, "/")[0], strings.Split(tc.incident, "/")[1], strings.Split(tc.incident, "/")[2])
		if err != nil {
			t.Fatal(err)
		}
		if last := es[len(es)-1].Stored; s.Last.Truncate(time.Second) != last.Truncate(time.Second) {
			t.Errorf("%s: Last %v, want the last record's %v", tc.incident, s.Last, last)
		}
		s.Last = time.Time{}
		if s != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.incident, s, tc.want)
		}
	}
}

// A record's name is outside bytes too: any name gives a record, or none,
// and never a made-up action.
func FuzzFromName(f *testing.F) {
	f.Add("2026-11-23T07:00:00Z-download-6f1c.json")
	f.Add("Z-Z-")
	f.Fuzz(func(t *testing.T, name string) {
		if r := fromName(name); r.Action != "" && !r.Action.Valid() {
			t.Errorf("fromName(%q) = action %q", name, r.Action)
		}
	})
}

// Summaries of 10,000 incidents with three records each, on a real MinIO:
// one listing of 30,000 names, no object read.
func BenchmarkSummaries(b *testing.B) {
	srv := s3test.Start(b, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()
	l := Log{Client: root, Bucket: "clips", Prefix: "mamoru"}
	const incidents = 10000
	keys := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for k := range keys {
				if _, err := root.PutObject(b.Context(), "clips", k, bytes.NewReader([]byte("{}")), 2, minio.PutObjectOptions{}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range incidents {
		folder := l.Folder(fmt.Sprintf("shop-%d", i%20), fmt.Sprintf("counter-%d", i%3), fmt.Sprintf("20261123-154502-%06d", i))
		for _, a := range []Action{View, Hold, Review} {
			keys <- folder + "2026-11-23T07:00:00Z-" + string(a) + "-" + strconv.Itoa(i) + ".json"
		}
	}
	close(keys)
	wg.Wait()
	for b.Loop() {
		s, err := l.Summaries(b.Context())
		if err != nil || len(s) != incidents {
			b.Fatalf("Summaries: %d incidents, %v; want %d", len(s), err, incidents)
		}
	}
}
