package bucket

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/bucket/s3test"
	"mamoru/outbox"
	"mamoru/signing"
)

// incidentSpec is one incident as a device (or someone with a device's
// key) puts it in the bucket.
type incidentSpec struct {
	store, device, id string
	pressed           time.Time
	signer            ed25519.PrivateKey // nil: no manifest.sig
	legacy            bool               // a version 1 manifest, naming no object
	edit              func(*outbox.Manifest)
	at                string // the directory below the prefix, if not the manifest's own
	bucket            string // "clips" if ""
	// opts, if set, are the options each object is written with (its lock).
	opts func(name string) minio.PutObjectOptions
}

// putIncident writes clip, manifest and signature under prefix "mamoru"
// and returns the directory below the prefix.
func putIncident(t *testing.T, root *minio.Client, s incidentSpec) string {
	t.Helper()
	clip := []byte("clip of " + s.store + "/" + s.device + "/" + s.id)
	sum := sha256.Sum256(clip)
	m := outbox.Manifest{Version: outbox.ManifestVersion, Store: s.store, Device: s.device, Incident: s.id, State: outbox.StateComplete,
		PressTime: s.pressed, ClipStart: s.pressed.Add(-5 * time.Second), Clip: outbox.ClipDigest{File: outbox.ClipFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(clip))}}
	m.Object = outbox.ObjectKey(m, tokyo)
	if s.legacy {
		m.Version, m.Object = 1, ""
	}
	at := outbox.ObjectKey(m, tokyo)
	if s.edit != nil {
		s.edit(&m)
	}
	if s.at != "" {
		at = s.at
	}
	raw, _ := json.MarshalIndent(m, "", "  ")
	objects := map[string][]byte{outbox.ClipFile: clip, outbox.ManifestFile: raw}
	if s.signer != nil {
		objects[outbox.SignatureFile] = sigBy(s.signer, raw)
	}
	if s.bucket == "" {
		s.bucket = "clips"
	}
	for name, b := range objects {
		var opts minio.PutObjectOptions
		if s.opts != nil {
			opts = s.opts(name)
		}
		if _, err := root.PutObject(t.Context(), s.bucket, path.Join("mamoru", at, name), bytes.NewReader(b), int64(len(b)), opts); err != nil {
			t.Fatal(err)
		}
	}
	return at
}

func putObject(t *testing.T, root *minio.Client, object string, b []byte) {
	t.Helper()
	if _, err := root.PutObject(t.Context(), "clips", object, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// copyIncident copies an incident's three objects to another directory,
// as someone able to write the bucket might.
func copyIncident(t *testing.T, root *minio.Client, from, to string) {
	t.Helper()
	for _, name := range []string{outbox.ClipFile, outbox.ManifestFile, outbox.SignatureFile} {
		src := minio.CopySrcOptions{Bucket: "clips", Object: path.Join("mamoru", from, name)}
		if _, err := root.CopyObject(t.Context(), minio.CopyDestOptions{Bucket: "clips", Object: path.Join("mamoru", to, name)}, src); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 14, findings 3 and 4: a signature binds a manifest to its device
// and its place, and "verified" means signed by a key the keyring holds
// for that device. Each case is judged by both clips verify
// (VerifyObject) and clips get (Get).
func TestAuthenticity(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()

	oldKey, newKey, counter2 := seeded(11), seeded(12), seeded(13)
	reprovisioned := time.Date(2026, 12, 1, 0, 0, 0, 0, tokyo)
	keyring := signing.Keyring{
		{Store: "shop-1", Device: "counter-1", Key: oldKey.Public().(ed25519.PublicKey)},
		{Store: "shop-1", Device: "counter-1", Key: newKey.Public().(ed25519.PublicKey), NotBefore: reprovisioned},
		{Store: "shop-1", Device: "counter-2", Key: counter2.Public().(ed25519.PublicKey)},
	}
	c := Clips{Client: root, Bucket: "clips", Prefix: "mamoru", Keyring: keyring}
	nov := time.Date(2026, 11, 23, 15, 45, 2, 0, tokyo)
	dec := time.Date(2026, 12, 2, 9, 0, 0, 0, tokyo)

	a := putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000001", pressed: nov, signer: oldKey})
	b := putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000002", pressed: nov, signer: oldKey})
	// Finding 3: A's objects copied over B's folder, and into the folder
	// of another day, where its store, device and id still fit the key.
	copyIncident(t, root, a, b)
	movedDay := "shop-1/counter-1/2026/11/24/20261123-154502-000001"
	copyIncident(t, root, a, movedDay)

	for _, tc := range []struct {
		name    string
		ref     Ref
		want    string // the verdict
		wantErr error
		inErr   string // also in the error
	}{
		{"signed by its device, in its place", ref(a), VerdictVerified, nil, ""},
		{"A copied over B", Ref{Store: "shop-1", Device: "counter-1", ID: "20261123-154502-000002"}, "", ErrMisplaced, "20261123-154502-000001"},
		{"A copied to another day", ref(movedDay), VerdictInvalid, ErrSignatureInvalid, "copied or moved"},
		{"a re-provisioned device's old clip, by its old key", ref(putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000003", pressed: nov, signer: oldKey})), VerdictVerified, nil, ""},
		{"its new clip, by its new key", ref(putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261202-090000-000004", pressed: dec, signer: newKey})), VerdictVerified, nil, ""},
		{"the new key on a clip dated before it", ref(putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000005", pressed: nov, signer: newKey})), VerdictInvalid, ErrSignatureInvalid, "valid from"},
		{"counter-2's key claiming counter-1", ref(putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000006", pressed: nov, signer: counter2})), VerdictInvalid, ErrSignatureInvalid, "signed with the key of shop-1/counter-2"},
		{"counter-2's key claiming a device the keyring lacks", ref(putIncident(t, root, incidentSpec{store: "shop-9", device: "counter-1", id: "20261123-154502-000007", pressed: nov, signer: counter2})), VerdictUnknown, ErrUnknownDevice, "shop-9/counter-1"},
		{"unsigned, of a device the keyring lists", ref(putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000008", pressed: nov})), VerdictUnsigned, ErrUnsigned, ""},
		{"unsigned, of a device the keyring does not list", ref(putIncident(t, root, incidentSpec{store: "shop-3", device: "counter-1", id: "20261123-154502-000009", pressed: nov})), VerdictUnsigned, nil, ""},
		{"legacy: signed before manifests named their place", ref(putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000010", pressed: nov, signer: oldKey, legacy: true})), VerdictLegacy, nil, ""},
		{"version 2 without its object", ref(putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: "20261123-154502-000011", pressed: nov, signer: oldKey, edit: func(m *outbox.Manifest) { m.Object = "" }})), VerdictInvalid, ErrSignatureInvalid, "must name its object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := c.Find(t.Context(), tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.VerifyObject(t.Context(), e)
			check := func(what string, got Authenticity, err error) {
				if got.Verdict != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.inErr)) {
					t.Errorf("%s: verdict %q, error %v; want %q, %v naming %q", what, got.Verdict, err, tc.want, tc.wantErr, tc.inErr)
				}
				if tc.want == VerdictVerified && got.String() != "verified: signed by shop-1/counter-1" {
					t.Errorf("%s says %q", what, got)
				}
			}
			check("VerifyObject", got, err)
			dl := t.TempDir()
			_, got, err = c.Get(t.Context(), e, dl, nil)
			check("Get", got, err)
			if err != nil {
				if left := tree(t, dl); left != "./; " {
					t.Errorf("a refused download left %s", left)
				}
			}
		})
	}

	// Without a keyring entry for its device, a signed clip is not
	// verified, and nothing is downloaded.
	// A and its copy share shop-1/counter-1/<id>: both are listed.
	if _, err := c.Find(t.Context(), Ref{Store: "shop-1", Device: "counter-1", ID: "20261123-154502-000001"}); !errors.Is(err, ErrAmbiguous) ||
		!strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), movedDay) {
		t.Errorf("Find of A's store/device/id with a copy on another day: %v; want both places listed", err)
	}
	bare := Clips{Client: root, Bucket: "clips", Prefix: "mamoru"}
	e, err := bare.Find(t.Context(), ref(a))
	if err != nil {
		t.Fatal(err)
	}
	dl := t.TempDir()
	if _, got, err := bare.Get(t.Context(), e, dl, nil); got.Verdict != VerdictUnknown || !errors.Is(err, ErrUnknownDevice) || tree(t, dl) != "./; " {
		t.Errorf("Get with an empty keyring: %q, %v, left %s; want UNKNOWN DEVICE and nothing", got.Verdict, err, tree(t, dl))
	}
}

func seeded(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// ref names the incident at dir, <store>/<device>/<YYYY>/<MM>/<DD>/<id>,
// by its place.
func ref(dir string) Ref {
	p := strings.Split(dir, "/")
	return Ref{Store: p[0], Device: p[1], Day: strings.Join(p[2:5], "/"), ID: p[5]}
}

// Issue 14, finding 3: incident ids are unique per device only. A second
// device's incident with the same id is never silently chosen: a bare id
// lists both, store/device/id picks the one named.
func TestFindSameIDOnTwoDevices(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()
	c := Clips{Client: root, Bucket: "clips", Prefix: "mamoru"}
	const id = "20261123-154502-000001"
	nov := time.Date(2026, 11, 23, 15, 45, 2, 0, tokyo)
	// Pressed later, so that a newest-first pick would take counter-2's.
	putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: id, pressed: nov})
	putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-2", id: id, pressed: nov.Add(time.Second)})

	_, err := c.Find(t.Context(), Ref{ID: id})
	var amb *AmbiguousError
	if !errors.As(err, &amb) || !errors.Is(err, ErrAmbiguous) || len(amb.Matches) != 2 ||
		!strings.Contains(err.Error(), "shop-1/counter-1/"+id) || !strings.Contains(err.Error(), "shop-1/counter-2/"+id) {
		t.Fatalf("Find of a bare id on two devices: %v; want both listed", err)
	}
	for _, dev := range []string{"counter-1", "counter-2"} {
		e, err := c.Find(t.Context(), Ref{Store: "shop-1", Device: dev, ID: id})
		if err != nil || e.Manifest.Device != dev || c.RefOf(e).String() != "shop-1/"+dev+"/"+id {
			t.Errorf("Find shop-1/%s/%s = %s (%s), %v", dev, id, e.Dir, c.RefOf(e), err)
		}
	}
	if _, err := c.Find(t.Context(), Ref{Store: "shop-2", Device: "counter-1", ID: id}); !errors.Is(err, ErrNoIncident) {
		t.Errorf("Find in another store: %v, want ErrNoIncident", err)
	}
	// A third device's manifest of that id that cannot be read may be the
	// one meant: counter-1's is not chosen over it.
	const id2 = "20261123-154502-000002"
	putIncident(t, root, incidentSpec{store: "shop-1", device: "counter-1", id: id2, pressed: nov})
	putObject(t, root, "mamoru/shop-1/counter-3/2026/11/23/"+id2+"/manifest.json", []byte("{"))
	if _, err := c.Find(t.Context(), Ref{ID: id2}); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "unreadable manifest at shop-1/counter-3/2026/11/23/"+id2) {
		t.Errorf("Find of a bare id with an unreadable match: %v; want both listed", err)
	}
	if e, err := c.Find(t.Context(), Ref{Store: "shop-1", Device: "counter-1", ID: id2}); err != nil || e.Manifest.Device != "counter-1" {
		t.Errorf("Find shop-1/counter-1/%s beside an unreadable one elsewhere: %v", id2, err)
	}
}

// A name is store/device/id or an id, each part well formed.
func TestParseRef(t *testing.T) {
	const id = "20261123-154502-000042"
	for _, tc := range []struct {
		in   string
		want Ref
		err  error
	}{
		{id, Ref{ID: id}, nil},
		{"shop-1/counter-1/" + id, Ref{Store: "shop-1", Device: "counter-1", ID: id}, nil},
		{"shop-1/counter-1/2026/11/23/" + id, Ref{Store: "shop-1", Device: "counter-1", Day: "2026/11/23", ID: id}, nil},
		{"shop-1/counter-1/2026/11/32/" + id, Ref{}, ErrBadRef},
		{"shop-1/counter-1/2026/11/../" + id, Ref{}, ErrBadRef},
		{"shop-1/" + id, Ref{}, ErrBadRef},
		{"../counter-1/" + id, Ref{}, ErrBadRef},
		{"shop-1/counter-1/../" + id, Ref{}, ErrBadRef},
		{"shop-1/counter-1/..", Ref{}, ErrBadID},
		{"/etc", Ref{}, ErrBadRef},
		{"", Ref{}, ErrBadID},
	} {
		got, err := ParseRef(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
