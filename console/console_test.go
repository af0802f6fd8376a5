//go:build linux

package console

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/capture/cliptest"
	"mamoru/config"
	"mamoru/console/access"
	"mamoru/custody"
	"mamoru/handover"
	"mamoru/outbox"
	"mamoru/signing"
)

// incident is the objects of one incident as a device uploads them.
type incident struct {
	m       outbox.Manifest
	objects map[string][]byte // by key, the prefix "mamoru/" included
}

// dir is the incident's folder in the bucket.
func (in incident) dir() string { return path.Join("mamoru", in.m.Object) }

// makeIncident is the n-th incident of store/device, pressed at press,
// its manifest signed by priv (unsigned if priv is nil).
func makeIncident(store, device string, press time.Time, n int, clip []byte, priv ed25519.PrivateKey) incident {
	return makeIncidentWith(store, device, press, n, clip, priv, nil)
}

// makeIncidentWith is makeIncident with its manifest changed by edit
// before it is signed.
func makeIncidentWith(store, device string, press time.Time, n int, clip []byte, priv ed25519.PrivateKey, edit func(*outbox.Manifest)) incident {
	sum := sha256.Sum256(clip)
	m := outbox.Manifest{Version: outbox.ManifestVersion, Store: store, Device: device, Incident: fmt.Sprintf("%s-%06d", press.Format("20060102-150405"), n),
		State: outbox.StateComplete, PressTime: press, Presses: []outbox.Press{{Time: press, Source: "button"}}, ClipStart: press.Add(-30 * time.Second),
		ClipEnd: press.Add(30 * time.Second), DurationSeconds: 60, Clip: outbox.ClipDigest{File: outbox.ClipFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(clip))}, ClockSynced: true}
	m.Object = outbox.ObjectKey(m, time.UTC)
	if edit != nil {
		edit(&m)
	}
	raw, _ := json.MarshalIndent(m, "", "  ")
	in := incident{m: m, objects: map[string][]byte{}}
	in.objects[path.Join(in.dir(), outbox.ClipFile)] = clip
	in.objects[path.Join(in.dir(), outbox.ManifestFile)] = raw
	if priv != nil {
		in.objects[path.Join(in.dir(), outbox.SignatureFile)] = []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, raw)))
	}
	return in
}

func put(t testing.TB, c *minio.Client, key string, b []byte) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), "clips", key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (in incident) put(t testing.TB, c *minio.Client) {
	for k, b := range in.objects {
		put(t, c, k, b)
	}
}

// rig is a console in front of a real MinIO.
type rig struct {
	t      *testing.T
	srv    *s3test.Server
	root   *minio.Client
	clips  bucket.Clips
	server *Server
	web    *httptest.Server
	client *http.Client
}

// newRig starts MinIO with a versioned bucket "clips" and a console over
// it for users (none: this machine's manager only).
func newRig(t *testing.T, kr signing.Keyring, users []config.ConsoleUser) *rig {
	t.Helper()
	srv := s3test.Start(t, s3test.Options{})
	root := srv.Root()
	if err := root.MakeBucket(context.Background(), "clips", minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	c, err := bucket.NewClient(srv.Storage("clips"))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, srv: srv, root: root, clips: bucket.Clips{Client: c.Client, Bucket: "clips", Prefix: "mamoru", Keyring: kr}}
	r.server, err = New(Options{Clips: r.clips, Zone: time.UTC, Handover: func(ctx context.Context, e bucket.Entry, by, from, dir string) (string, error) {
		p, _, err := handover.Make(ctx, r.clips, r.clips.RefOf(e), handover.MakeOptions{Dir: dir, By: by, From: from, Zone: time.UTC})
		return p, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.server.Close)
	r.web = httptest.NewUnstartedServer(nil)
	guard, err := access.New(access.Options{Users: users, Local: access.User{Name: "tester", Role: access.Manager}, Addr: r.web.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	guard.Routes(mux)
	r.server.Register(mux)
	r.web.Config.Handler = Secure(guard.Handler(mux))
	r.web.Start()
	t.Cleanup(r.web.Close)
	jar, _ := cookiejar.New(nil)
	r.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return r
}

// get fetches a path of the console, and fails the test unless it
// answers want.
func (r *rig) get(p string, want int) []byte {
	r.t.Helper()
	resp, err := r.client.Get(r.web.URL + p)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		r.t.Fatalf("GET %s: %d, want %d\n%s", p, resp.StatusCode, want, b)
	}
	return b
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// post sends a form to the console with the CSRF token of page (if not
// ""), and fails the test unless it answers want.
func (r *rig) post(p, page string, form url.Values, want int) []byte {
	r.t.Helper()
	if page != "" {
		m := csrfMeta.FindSubmatch(r.get(page, http.StatusOK))
		if m == nil {
			r.t.Fatalf("%s has no CSRF token", page)
		}
		form.Set("csrf", string(m[1]))
	}
	req, _ := http.NewRequest("POST", r.web.URL+p, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", r.web.URL)
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		r.t.Fatalf("POST %s: %d, want %d\n%s", p, resp.StatusCode, want, b)
	}
	return b
}

// row is GET /api/incidents/name.
func (r *rig) row(name string) Row {
	r.t.Helper()
	var row Row
	if err := json.Unmarshal(r.get("/api/incidents/"+name, http.StatusOK), &row); err != nil {
		r.t.Fatal(err)
	}
	return row
}

// TestVerificationStates plants one incident of each kind a bucket may
// hold and checks the word the console gives each, on the incident's API
// and in the inbox once its check is done: nothing but the untouched,
// signed one is verified.
func TestVerificationStates(t *testing.T) {
	_, good, _ := ed25519.GenerateKey(nil)
	_, stranger, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: good.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	at := func(min int) time.Time { return time.Date(2026, 11, 30, 10, min, 0, 0, time.UTC) }
	clip := []byte("a clip, as a device recorded it")

	verified := makeIncident("shop-1", "counter-1", at(1), 1, clip, good)
	tampered := makeIncident("shop-1", "counter-1", at(2), 2, clip, good)
	unsigned := makeIncident("shop-2", "counter-1", at(3), 1, clip, nil)
	unsignedKnown := makeIncident("shop-1", "counter-1", at(4), 3, clip, nil)
	unknown := makeIncident("shop-2", "counter-2", at(5), 1, clip, stranger)
	invalid := makeIncident("shop-1", "counter-1", at(6), 4, clip, stranger)
	legacy := func() incident {
		in := makeIncident("shop-1", "counter-1", at(7), 5, clip, good)
		m := in.m
		m.Object, m.Version = "", 1
		raw, _ := json.MarshalIndent(m, "", "  ")
		in.objects[path.Join(in.dir(), outbox.ManifestFile)] = raw
		in.objects[path.Join(in.dir(), outbox.SignatureFile)] = []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(good, raw)))
		return in
	}()
	for _, in := range []incident{verified, tampered, unsigned, unsignedKnown, unknown, invalid, legacy} {
		in.put(t, r.root)
	}
	// Tampered: the clip written over after its upload.
	put(t, r.root, path.Join(tampered.dir(), outbox.ClipFile), []byte("another clip"))
	// Misplaced: the verified incident's objects copied into another day.
	moved := "mamoru/shop-1/counter-1/2026/11/29/" + verified.m.Incident
	for k, b := range verified.objects {
		put(t, r.root, moved+"/"+path.Base(k), b)
	}

	cases := []struct {
		name string
		want State
	}{
		{"shop-1/counter-1/" + verified.m.Incident + "?day=2026/11/30", Verified},
		{"shop-1/counter-1/" + verified.m.Incident + "?day=2026/11/29", Misplaced},
		{"shop-1/counter-1/" + tampered.m.Incident, Tampered},
		{"shop-2/counter-1/" + unsigned.m.Incident, Unsigned},
		{"shop-1/counter-1/" + unsignedKnown.m.Incident, Unsigned},
		{"shop-2/counter-2/" + unknown.m.Incident, Unknown},
		{"shop-1/counter-1/" + invalid.m.Incident, Invalid},
		{"shop-1/counter-1/" + legacy.m.Incident, Legacy},
	}
	for _, c := range cases {
		row := r.row(c.name)
		if row.State != c.want || row.Check == nil || row.Check.State != c.want {
			t.Errorf("%s: state %q (%+v), want %q", c.name, row.State, row.Check, c.want)
		}
	}

	// The inbox, once every check is done, agrees; and never says
	// verified of the others.
	var list IncidentList
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := json.Unmarshal(r.get("/api/incidents", http.StatusOK), &list); err != nil {
			t.Fatal(err)
		}
		checking := false
		for _, row := range list.Incidents {
			checking = checking || row.State == Checking
		}
		if !checking || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(list.Incidents) != 8 {
		t.Fatalf("inbox lists %d incidents, want 8: %+v", len(list.Incidents), list.Incidents)
	}
	verifiedRows := 0
	for _, row := range list.Incidents {
		if row.State == Verified {
			verifiedRows++
			if row.Name != "shop-1/counter-1/"+verified.m.Incident || row.Day != "2026/11/30" {
				t.Errorf("inbox: %s (%s) is verified", row.Name, row.Day)
			}
		}
	}
	if verifiedRows != 1 {
		t.Errorf("inbox: %d rows verified, want 1", verifiedRows)
	}
	// Newest first, and every store's unreviewed count.
	if list.Incidents[0].Name != "shop-1/counter-1/"+legacy.m.Incident {
		t.Errorf("inbox starts with %s, want the newest, %s", list.Incidents[0].Name, legacy.m.Incident)
	}
	if got := fmt.Sprint(list.Stores); got != "[{shop-1 6 6} {shop-2 2 2}]" {
		t.Errorf("stores = %s, want shop-1 with 6 unreviewed of 6, shop-2 with 2 of 2", got)
	}
}

// TestReviewKeepRelease marks an incident reviewed, adds a note, keeps it
// and releases it through the console's forms, and checks what the bucket
// holds after each: the records, and the legal hold on every object.
func TestReviewKeepRelease(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	in := makeIncident("shop-1", "counter-1", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), 1, []byte("clip"), key)
	in.put(t, r.root)
	name := "shop-1/counter-1/" + in.m.Incident
	page := "/incidents/" + name
	ctx := context.Background()

	if row := r.row(name); row.Reviewed || row.Kept {
		t.Fatalf("a new incident is %+v", row)
	}
	r.post(page+"/review", page, url.Values{"mark": {"reviewed"}}, http.StatusSeeOther)
	r.post(page+"/review", page, url.Values{"mark": {"note"}, "note": {"お客様が大声で抗議。店長が対応済み。"}}, http.StatusSeeOther)
	if row := r.row(name); !row.Reviewed || row.Notes != 1 {
		t.Errorf("after review and a note: %+v", row)
	}
	if b := string(r.get(page, http.StatusOK)); !strings.Contains(b, "お客様が大声で抗議。店長が対応済み。") || strings.Contains(b, `id="logout"`) {
		t.Error("the note is not on the incident's page, or this machine's user, who never logged in, is offered to log out")
	}

	r.post(page+"/hold", page, url.Values{"hold": {"on"}}, http.StatusSeeOther)
	e, err := r.clips.Read(ctx, in.dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
		st, err := r.root.GetObjectLegalHold(ctx, "clips", path.Join(in.dir(), name), minio.GetObjectLegalHoldOptions{})
		if err != nil || st == nil || *st != minio.LegalHoldEnabled {
			t.Errorf("after keep, %s's legal hold is %v (%v), want ON", name, st, err)
		}
	}
	if row := r.row(name); !row.Kept {
		t.Errorf("after keep, the row is not kept: %+v", row)
	}
	// A kept incident cannot be deleted.
	r.post(page+"/delete", page, url.Values{"reason": {"誤操作"}}, http.StatusConflict)
	if _, err := r.clips.Read(ctx, in.dir()); err != nil {
		t.Fatalf("a kept incident went: %v", err)
	}

	r.post(page+"/hold", page, url.Values{"hold": {"off"}}, http.StatusSeeOther)
	if held, err := r.clips.Held(ctx, e); err != nil || held {
		t.Errorf("after release, held = %v (%v)", held, err)
	}

	// The chain of custody holds every step, by whom and from where.
	log := custody.Log{Client: r.root, Bucket: "clips", Prefix: "mamoru"}
	es, err := log.List(ctx, "shop-1", "counter-1", in.m.Incident)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if e.Action != custody.View {
			got = append(got, string(e.Action))
		}
		if e.Actor != "tester" || e.From != "127.0.0.1" {
			t.Errorf("record %s by %q from %q, want tester from 127.0.0.1", e.Key, e.Actor, e.From)
		}
	}
	if want := "review note hold release"; strings.Join(got, " ") != want {
		t.Errorf("custody records %q, want %q", strings.Join(got, " "), want)
	}
}

// TestRefusals: a request without the page's CSRF token, a viewer's
// hold, share or deletion, and a deletion without a reason change
// nothing.
func TestRefusals(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	hash, err := access.HashPassword("viewer-password-1")
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, kr, []config.ConsoleUser{{Name: "yamada", Role: "viewer", PasswordHash: hash}})
	in := makeIncident("shop-1", "counter-1", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), 1, []byte("clip"), key)
	in.put(t, r.root)
	page := "/incidents/shop-1/counter-1/" + in.m.Incident

	// No session: the page sends to the login, the API refuses.
	r.get(page, http.StatusSeeOther)
	r.get("/api/incidents", http.StatusUnauthorized)
	r.post("/login", "", url.Values{"name": {"yamada"}, "password": {"viewer-password-1"}}, http.StatusSeeOther)
	if !strings.Contains(string(r.get(page, http.StatusOK)), `id="logout"`) {
		t.Error("a logged-in user is not offered to log out")
	}
	// No other site may frame a page (a button under its own).
	resp, err := r.client.Get(r.web.URL + page)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("the page may be framed: X-Frame-Options %q, CSP %q", resp.Header.Get("X-Frame-Options"), resp.Header.Get("Content-Security-Policy"))
	}

	r.post(page+"/hold", "", url.Values{"hold": {"on"}}, http.StatusForbidden) // no token
	for _, action := range []string{"hold", "share", "delete", "handover", "review"} {
		r.post(page+"/"+action, page, url.Values{"hold": {"on"}, "reason": {"x"}, "mark": {"reviewed"}}, http.StatusForbidden)
	}
	ctx := context.Background()
	e, err := r.clips.Read(ctx, in.dir())
	if err != nil {
		t.Fatal(err)
	}
	if held, err := r.clips.Held(ctx, e); err != nil || held {
		t.Errorf("a viewer's hold: held = %v (%v)", held, err)
	}
	sums, err := custody.Log{Client: r.root, Bucket: "clips", Prefix: "mamoru"}.Summaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := sums["shop-1/counter-1/"+in.m.Incident]; s.Reviewed || s.Held || s.Records != 7 {
		t.Errorf("after the viewer's refused requests the records say %+v, want only the seven views", s)
	}
}

// The viewing copy is made from the clip in the bucket, plays its sound as
// ALAC, and its download is in the chain of custody.
func TestViewingCopy(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	clipPath, _ := cliptest.Record(t, t.TempDir(), 1, 2)
	clip, err := os.ReadFile(clipPath)
	if err != nil {
		t.Fatal(err)
	}
	in := makeIncident("shop-1", "counter-1", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), 1, clip, key)
	in.put(t, r.root)
	b := r.get("/incidents/shop-1/counter-1/"+in.m.Incident+"/viewing-copy.mp4", http.StatusOK)
	copyPath := filepath.Join(t.TempDir(), "copy.mp4")
	if err := os.WriteFile(copyPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	info := cliptest.Probe(t, copyPath)
	if a, ok := info.Stream("audio"); !ok || a.CodecName != "alac" {
		t.Errorf("the viewing copy's audio is %+v, want ALAC", a)
	}
	if _, ok := info.Stream("video"); !ok {
		t.Error("the viewing copy has no video")
	}
	sums, err := custody.Log{Client: r.root, Bucket: "clips", Prefix: "mamoru"}.Summaries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	es, err := custody.Log{Client: r.root, Bucket: "clips", Prefix: "mamoru"}.List(context.Background(), "shop-1", "counter-1", in.m.Incident)
	if err != nil || len(es) != 1 || es[0].Action != custody.Download {
		t.Errorf("custody after the download: %+v (%v), summary %+v; want one download", es, err, sums)
	}
}

// A share link plays the clip from the bucket for the hours chosen, and
// says so in the chain of custody; a deletion needs a reason, takes every
// version of the incident, leaves the inbox without it, and keeps the
// reason in the chain of custody, which outlives it.
func TestShareAndDelete(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	in := makeIncident("shop-1", "counter-1", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), 1, []byte("the clip's bytes"), key)
	in.put(t, r.root)
	name := "shop-1/counter-1/" + in.m.Incident
	page := "/incidents/" + name
	ctx := context.Background()

	body := r.post(page+"/share", page, url.Values{"hours": {"3"}}, http.StatusOK)
	m := regexp.MustCompile(`id="share-link"[^>]*>([^<]+)<`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("the page after sharing shows no link:\n%s", body)
	}
	link := html.UnescapeString(string(m[1]))
	// The page answers a form; its language switch goes to the incident's
	// page, which GET serves.
	if sw := regexp.MustCompile(`href="([^"]*)" id="lang-switch"`).FindSubmatch(body); sw == nil || html.UnescapeString(string(sw[1])) != page+"?lang=en" {
		t.Errorf("the share's answer switches language to %q, want %s?lang=en", sw, page)
	}
	if u, err := url.Parse(link); err != nil || u.Query().Get("X-Amz-Expires") != "10800" {
		t.Errorf("share link %s: want one expiring in 3 h (X-Amz-Expires=10800)", link)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "the clip's bytes" || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Errorf("the share link gave %d %q (%s)", resp.StatusCode, got, resp.Header.Get("Content-Type"))
	}
	r.post(page+"/share", page, url.Values{"hours": {"169"}}, http.StatusBadRequest)

	r.post(page+"/delete", page, url.Values{"reason": {""}}, http.StatusBadRequest)
	r.post(page+"/delete", page, url.Values{"reason": {"ご本人からの削除請求（2026-11-30 受付）"}}, http.StatusSeeOther)
	for o := range r.root.ListObjects(ctx, "clips", minio.ListObjectsOptions{Prefix: in.dir() + "/", Recursive: true, WithVersions: true}) {
		t.Errorf("after deletion the bucket still holds %s (version %s)", o.Key, o.VersionID)
	}
	var list IncidentList
	if err := json.Unmarshal(r.get("/api/incidents", http.StatusOK), &list); err != nil || len(list.Incidents) != 0 {
		t.Errorf("after deletion the inbox lists %+v (%v)", list.Incidents, err)
	}
	r.get(page, http.StatusNotFound)
	es, err := custody.Log{Client: r.root, Bucket: "clips", Prefix: "mamoru"}.List(ctx, "shop-1", "counter-1", in.m.Incident)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		if e.Action != custody.View {
			actions = append(actions, string(e.Action)+":"+e.Detail)
		}
	}
	if len(actions) != 2 || !strings.HasPrefix(actions[0], "share:link valid until ") || actions[1] != "delete:ご本人からの削除請求（2026-11-30 受付）" {
		t.Errorf("custody records %q, want the share and the deletion with its reason", actions)
	}
}

// The hand-over button downloads the package clips package makes, and the
// hand-over is in the chain of custody, by whom and from where.
func TestHandover(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	clipPath, _ := cliptest.Record(t, t.TempDir(), 1, 1)
	clip, err := os.ReadFile(clipPath)
	if err != nil {
		t.Fatal(err)
	}
	in := makeIncident("shop-1", "counter-1", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), 1, clip, key)
	in.put(t, r.root)
	page := "/incidents/shop-1/counter-1/" + in.m.Incident
	b := r.post(page+"/handover", page, url.Values{}, http.StatusOK)
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the hand-over is not a zip: %v", err)
	}
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
	}
	for _, want := range []string{"clip.mp4", "manifest.json", "manifest.sig", "report.html", "SHA256SUMS", "VERIFY.txt"} {
		if !names[want] {
			t.Errorf("the package lacks %s: %v", want, names)
		}
	}
	es, err := custody.Log{Client: r.root, Bucket: "clips", Prefix: "mamoru"}.List(context.Background(), "shop-1", "counter-1", in.m.Incident)
	if err != nil {
		t.Fatal(err)
	}
	handedOver := false
	for _, e := range es {
		handedOver = handedOver || e.Action == custody.Handover && e.Actor == "tester" && e.From == "127.0.0.1"
	}
	if !handedOver {
		t.Errorf("no hand-over by tester from 127.0.0.1 in %+v", es)
	}
}

// Where a copy of an incident sits in another day's folder, the page of
// each acts on that one: a hold asked on the copy's page holds the copy.
func TestActionsOnACopyActOnIt(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	in := makeIncident("shop-1", "counter-1", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), 1, []byte("clip"), key)
	in.put(t, r.root)
	copyDir := "mamoru/shop-1/counter-1/2026/11/29/" + in.m.Incident
	for k, b := range in.objects {
		put(t, r.root, copyDir+"/"+path.Base(k), b)
	}
	page := "/incidents/shop-1/counter-1/" + in.m.Incident + "?day=2026/11/29"
	body := string(r.get(page, http.StatusOK))
	if !strings.Contains(body, `href="/incidents/shop-1/counter-1/`+in.m.Incident+`?day=2026%2F11%2F29&amp;lang=en" id="lang-switch"`) {
		t.Errorf("the copy's page switches language away from the copy:\n%s", body)
	}
	if !strings.Contains(body, `action="/incidents/shop-1/counter-1/`+in.m.Incident+`/hold?day=2026%2F11%2F29"`) {
		t.Fatalf("the copy's page does not name the copy in its forms:\n%s", body)
	}
	r.post("/incidents/shop-1/counter-1/"+in.m.Incident+"/hold?day=2026/11/29", page, url.Values{"hold": {"on"}}, http.StatusSeeOther)
	ctx := context.Background()
	for dir, want := range map[string]bool{copyDir: true, in.dir(): false} {
		e, err := r.clips.Read(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if held, err := r.clips.Held(ctx, e); err != nil || held != want {
			t.Errorf("%s held = %v (%v), want %v", dir, held, err, want)
		}
	}
}

// A check cut short by its asker is not remembered: the next asks again
// and gets the verdict.
func TestCheckCutShortIsNotKept(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	in := makeIncident("shop-1", "counter-1", time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), 1, []byte("clip"), key)
	in.put(t, r.root)
	snap, err := r.server.index.Get(context.Background())
	if err != nil || len(snap.Items) != 1 {
		t.Fatalf("index: %v, %+v", err, snap.Items)
	}
	cut, cancel := context.WithCancel(context.Background())
	cancel()
	if v := r.server.verifier.check(cut, snap.Items[0]); v.State == Verified {
		t.Fatalf("a check with its context ended verified: %+v", v)
	}
	if _, ok := r.server.verifier.known(snap.Items[0]); ok {
		t.Error("a check cut short was kept")
	}
	if v := r.server.verifier.check(context.Background(), snap.Items[0]); v.State != Verified {
		t.Errorf("checked again: %+v, want verified", v)
	}
}

// An incident a raised voice raised says so in words on its page, with
// the detection's figures, in each language.
func TestRaisedVoiceIncident(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	kr := signing.Keyring{{Store: "shop-1", Device: "counter-1", Key: key.Public().(ed25519.PublicKey)}}
	r := newRig(t, kr, nil)
	press := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	in := makeIncidentWith("shop-1", "counter-1", press, 1, []byte("clip"), key, func(m *outbox.Manifest) {
		m.Trigger = config.SoundSource
		m.Presses[0].Source = config.SoundSource
		m.Presses[0].Sound = &outbox.Sound{Start: press.Add(-time.Second), Seconds: 1.1, PeakLUFS: -22.1, BaselineLUFS: -40.3, Learned: true, AboveDB: 18.2, RaiseDB: 15}
	})
	in.put(t, r.root)
	page := "/incidents/shop-1/counter-1/" + in.m.Incident
	for _, tc := range []struct{ lang, trigger, sound string }{
		{"ja", "大きな声の検知（音量のみ）", "ふだんの声より +18.2 dB（-22.1 LUFS、ふだんは -40.3 LUFS・この店で学習）の声が 1.1 秒続いた（基準は +15 dB）"},
		{"en", "raised voice detected (loudness only)", "a voice +18.2 dB over the usual voices for this hour (-22.1 LUFS against -40.3 LUFS, learned here) for 1.1 s (the threshold is +15 dB)"},
	} {
		b := html.UnescapeString(string(r.get(page+"?lang="+tc.lang, http.StatusOK)))
		if !strings.Contains(b, tc.trigger) || !strings.Contains(b, tc.sound) {
			t.Errorf("%s: the page does not say %q and %q", tc.lang, tc.trigger, tc.sound)
		}
	}
}
