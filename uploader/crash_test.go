package uploader

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mamoru/backoff"
	"mamoru/bucket"
	"mamoru/bucket/s3test"
	"mamoru/config"
	"mamoru/outbox"
)

// TestUploaderChild is the uploader process TestCrashes kills. It does
// nothing unless run by TestCrashes.
func TestUploaderChild(t *testing.T) {
	box := os.Getenv("MAMORU_CHILD_OUTBOX")
	if box == "" {
		t.Skip("run by TestCrashes only")
	}
	kbps, _ := strconv.Atoi(os.Getenv("MAMORU_CHILD_KBPS"))
	st := config.Storage{
		Endpoint: os.Getenv("MAMORU_CHILD_ENDPOINT"), Bucket: "clips", PartSizeMB: 5, MaxBandwidthKbps: kbps,
		AccessKey: s3test.RootUser, SecretKey: s3test.RootPassword,
	}
	u := &Uploader{Outbox: outbox.Outbox{Dir: box}, Storage: st, Location: tokyo,
		Log:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Backoff: backoff.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Done when the outbox is empty.
		for {
			time.Sleep(50 * time.Millisecond)
			if in, _, _ := u.Outbox.List(); len(in) == 0 {
				cancel()
				return
			}
		}
	}()
	if err := u.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCrashes kills the uploader with SIGKILL at random moments, 50 times,
// while new incidents keep arriving. Every incident must end up in the
// bucket once: every version of its objects is the manifest's content.
func TestCrashes(t *testing.T) {
	kills := 50
	if testing.Short() {
		kills = 10
	}
	srv := s3test.Start(t, s3test.Options{})
	srv.Bucket("clips")
	root := srv.Root()
	// Versioning keeps every write, so a second, different upload of an
	// incident could not hide.
	if err := root.EnableVersioning(t.Context(), "clips"); err != nil {
		t.Fatal(err)
	}
	box := t.TempDir()
	var made []outbox.Manifest
	add := func() {
		n := len(made) + 1
		size := 256<<10 + rand.IntN(8<<20)
		made = append(made, makeIncident(t, box, fmt.Sprintf("20261123-%06d-%06d", 100000+n, n), size))
	}
	for range 4 {
		add()
	}
	child := func() *exec.Cmd {
		// Under make test-arm64 this binary runs in qemu-user, and so must
		// its child: there is no binfmt to do it for us.
		argv := append(strings.Fields(os.Getenv("MAMORU_TEST_EXEC")), os.Args[0], "-test.run=^TestUploaderChild$", "-test.v")
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "MAMORU_CHILD_OUTBOX="+box, "MAMORU_CHILD_ENDPOINT="+srv.Endpoint,
			"MAMORU_CHILD_KBPS=80000") // 10 MB/s: a clip takes long enough to be cut
		return cmd
	}
	finishedEarly := 0
	for i := range kills {
		if i%2 == 1 {
			add()
		}
		cmd := child()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rand.IntN(600)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err == nil {
			finishedEarly++ // the outbox was empty before the kill
		}
	}
	cmd := child()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the last uploader failed: %v\n%s", err, out)
	}

	versions := 0
	for _, m := range made {
		dir := bucket.ObjectDir("", m, tokyo)
		for _, name := range []string{outbox.ClipFile, outbox.ManifestFile} {
			object := path.Join(dir, name)
			n := 0
			for o := range root.ListObjects(t.Context(), "clips", minio.ListObjectsOptions{Prefix: object, WithVersions: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				if o.Key != object || o.IsDeleteMarker {
					continue
				}
				n++
				if name == outbox.ClipFile {
					if got := objectSHA256(t, root, "clips", object, minio.GetObjectOptions{VersionID: o.VersionID}); got != m.Clip.SHA256 {
						t.Errorf("%s version %s has SHA-256 %s, the manifest says %s", object, o.VersionID, got, m.Clip.SHA256)
					}
				}
			}
			if n == 0 {
				t.Errorf("%s is not in the bucket", object)
			}
			versions += n
		}
	}
	if left, _, _ := (outbox.Outbox{Dir: box}).List(); len(left) != 0 {
		t.Errorf("%d incidents left in the box", len(left))
	}
	t.Logf("%d kills (%d after the box had emptied), %d incidents, all in the bucket and intact; %d object versions for %d objects",
		kills, finishedEarly, len(made), versions, 2*len(made))
}
