package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mamoru/config"
	"mamoru/signing"
)

const provisionHelp = `Usage: mamoru provision --store S --device D [--out DIR] [--keys-dir DIR] [--state-dir DIR] [--no-key]
                        [--endpoint HOST:PORT --bucket B [--prefix P] [--insecure]]

For installers: writes DIR/mamoru.toml for this device, and generates its
ed25519 signing key in DIR/signing.key (mode 0600). The uploader signs each
manifest with it. It prints the [[keyring]] entry for the managers'
configuration, holding the public key (also in DIR/signing.pub): with it,
'mamoru clips get' and 'clips verify' say "verified: signed by STORE/DEVICE".
Re-provisioning a device makes a new key: add its entry beside the old
one, which still verifies the older clips.
Put the device's storage keys in DIR/s3-access-key and DIR/s3-secret-key
(mode 0600) before starting it, and edit the rest of the file as the site
needs (README.md lists every key). --keys-dir is where those files will be
on the device (default /etc/mamoru); 'make image' copies every key file
the configuration names from beside it there (docs/install.md). For a card made with 'make image', add --no-key: the device makes
its own signing key at first boot ('mamoru keygen') and leaves its public
key in mamoru-public-key.txt on the card's boot partition.`

func cmdProvision(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "%s\nOptions:\n", provisionHelp); fs.PrintDefaults() }
	store := fs.String("store", "", "the store (shop) this device is in")
	dev := fs.String("device", "", "this device's id")
	out := fs.String("out", "/etc/mamoru", "write the configuration and key into `DIR`")
	keysDir := fs.String("keys-dir", "/etc/mamoru", "where the key files will be on the device, as the configuration names them")
	state := fs.String("state-dir", "/var/lib/mamoru", "the device's state directory")
	endpoint := fs.String("endpoint", "", "S3 server host[:port]")
	bucket := fs.String("bucket", "", "S3 bucket")
	prefix := fs.String("prefix", "", "folder in the bucket")
	noKey := fs.Bool("no-key", false, "write no signing key: the device makes its own at first boot (make image)")
	insecure := fs.Bool("insecure", false, "plain http to the S3 server (to another machine, it also sets storage.allow_plain_http)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *store == "" || *dev == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mamoru provision: --store and --device are required")
		return 2
	}
	if (*endpoint == "") != (*bucket == "") {
		fmt.Fprintln(stderr, "mamoru provision: --endpoint and --bucket go together")
		return 2
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru provision: %v\n", err)
		return 2
	}
	conf := filepath.Join(dir, "mamoru.toml")
	key := filepath.Join(dir, "signing.key")
	onDevice := func(name string) string { return filepath.Join(*keysDir, name) }
	for _, p := range []string{conf, key} {
		if _, err := os.Stat(p); err == nil {
			fmt.Fprintf(stderr, "mamoru provision: %s exists; a device is provisioned once (move it away to start again)\n", p)
			return 1
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# mamoru configuration for device %q in store %q, written by mamoru provision.\n", *dev, *store)
	fmt.Fprintf(&b, "# Keys not set here have their defaults; README.md lists every key.\n\n")
	fmt.Fprintf(&b, "[device]\nid = %q\nstore = %q\nstate_dir = %q\nsigning_key_file = %q\n\n", *dev, *store, *state, onDevice("signing.key"))
	fmt.Fprintf(&b, "[hardware]\ndriver = \"gpio\"\n")
	if *endpoint != "" {
		fmt.Fprintf(&b, "\n[storage]\nendpoint = %q\nbucket = %q\nprefix = %q\nsecure = %v\n", *endpoint, *bucket, *prefix, !*insecure)
		if *insecure && !config.Loopback(*endpoint) {
			// --insecure is the installer's explicit choice of plain HTTP.
			fmt.Fprintf(&b, "allow_plain_http = true\n")
		}
		fmt.Fprintf(&b, "access_key_file = %q\nsecret_key_file = %q\n", onDevice("s3-access-key"), onDevice("s3-secret-key"))
	}
	fmt.Fprintf(&b, "\n[policy]\n# recording_hours = [\"mon-fri 09:00-21:00\"]\n# operator_name = \"\"\n# contact = \"\"\n")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "mamoru provision: %v\n", err)
		return 1
	}
	// The values must make a valid configuration before anything is written.
	check := fmt.Sprintf("[device]\nid = %q\nstore = %q\nstate_dir = %q\n", *dev, *store, *state)
	if *endpoint != "" {
		check += fmt.Sprintf("[storage]\nendpoint = %q\nbucket = %q\nprefix = %q\n", *endpoint, *bucket, *prefix)
	}
	// Parse reads no secret: the key files are written later, by hand.
	if _, err := config.Parse("provision", []byte(check), nil); err != nil {
		fmt.Fprintf(stderr, "mamoru provision: %v\n", err)
		return 2
	}
	if *noKey {
		if err := os.WriteFile(conf, []byte(b.String()), 0o640); err != nil {
			fmt.Fprintf(stderr, "mamoru provision: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s; no signing key: %s/%s makes its own at first boot and leaves its public key in mamoru-public-key.txt on the card's boot partition\n", conf, *store, *dev)
		return 0
	}
	pub, err := signing.NewKey(key)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru provision: %v\n", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(dir, "signing.pub"), []byte(pub+"\n"), 0o644); err != nil {
		fmt.Fprintf(stderr, "mamoru provision: %v\n", err)
		return 1
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o640); err != nil {
		fmt.Fprintf(stderr, "mamoru provision: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s (mode 0600)\n\nFor the managers' configuration, the keyring entry of %s/%s:\n\n%s", conf, key, *store, *dev, keyringEntry(*store, *dev, pub, time.Now()))
	return 0
}

// keyringEntry is the [[keyring]] table a manager pastes into their
// configuration for a device's new key. not_before is written commented
// out: set, the key vouches only for clips pressed from then on, which
// is right for a re-provisioned device whose clock NTP has set, and wrong
// for one whose clock may still read 1970 at its first presses.
//
// The key's fingerprint follows as a comment, in the form
// `openssl pkey -pubin -outform DER | sha256sum` prints: a hand-over
// package's reader compares the key it holds with the shop's record of it.
func keyringEntry(store, device, pub string, now time.Time) string {
	s := fmt.Sprintf("[[keyring]]\nstore = %q\ndevice = %q\npublic_key = %q\n# not_before = %q\n", store, device, pub, now.Truncate(time.Second).Format(time.RFC3339))
	if k, err := signing.ParsePublicKeyText(pub); err == nil {
		s += fmt.Sprintf("# fingerprint (SHA-256 of the key's DER; keep it apart from any clip): %s\n", signing.Fingerprint(k))
	}
	return s
}
