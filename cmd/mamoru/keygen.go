package main

import (
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"time"

	"mamoru/signing"
)

const keygenHelp = `Usage: mamoru keygen --config FILE [--owner USER] [--public-out FILE]

On the device (the first-boot script of 'make image' runs it): makes the
ed25519 signing key that device.signing_key_file names, mode 0600, unless
it exists already, and prints its public key for the managers. Made on the
device, the key never sits on the card's FAT boot partition, where deleting
a file does not erase it. --owner gives the key file to USER (the
recorder's user); --public-out also writes the public key, which holds no
secret, to FILE (the first-boot script puts it on the boot partition as
mamoru-public-key.txt, for the installer to read back).`

func cmdKeygen(args []string, stdout, stderr io.Writer) int {
	var owner, publicOut string
	cfg, code, ok := commandWithoutSecrets("keygen", keygenHelp, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&owner, "owner", "", "give the key file to `USER`")
		fs.StringVar(&publicOut, "public-out", "", "also write the public key to `FILE`")
	})
	if !ok {
		return code
	}
	path := cfg.Device.SigningKeyFile
	if path == "" {
		fmt.Fprintln(stdout, "device.signing_key_file is \"\": this device signs nothing, so no key is made")
		return 0
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "mamoru keygen: 'device.signing_key_file' %v\n", err)
		return 1
	}
	// A key that exists is kept: a first boot that failed after making it
	// runs again, and the managers may already hold its public key.
	made := "made on the device"
	pub, err := signing.NewKey(path)
	if errors.Is(err, fs.ErrExist) && cutShort(path) {
		// Left by a write a power cut interrupted (an older mamoru wrote
		// the key in place): it holds no key, so no public key of it can
		// ever have been printed.
		fmt.Fprintf(stdout, "# %s held no key (a write cut short): replaced with a new one\n", path)
		made = "made on the device, replacing a key file that held no key"
		if err = os.Remove(path); err == nil {
			pub, err = signing.NewKey(path)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		made = "kept: it existed"
		var k signing.Key
		if k, err = signing.ReadKey(path); err != nil {
			return fail(fmt.Errorf("%s: %v", path, err))
		}
		pub = k.Public()
	} else if err != nil {
		return fail(err)
	}
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			return fail(fmt.Errorf("%s: --owner: %v", path, err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(path, uid, gid); err != nil {
			return fail(err)
		}
	}
	text := fmt.Sprintf("# The public key of mamoru device %s/%s (%s).\n# It holds no secret: the managers paste this entry into their configuration's keyring.\n%s",
		cfg.Device.Store, cfg.Device.ID, made, keyringEntry(cfg.Device.Store, cfg.Device.ID, pub, time.Now()))
	if publicOut != "" {
		if err := os.WriteFile(publicOut, []byte(text), 0o644); err != nil {
			fmt.Fprintf(stderr, "mamoru keygen: --public-out: %v\n", err)
			return 1
		}
	}
	fmt.Fprint(stdout, text)
	return 0
}

// cutShort reports whether the key file at path is what a cut write
// leaves: empty, or without a whole PEM block. A file that cannot be read
// is not known to be cut, and is left for ReadKey to refuse.
func cutShort(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	block, _ := pem.Decode(b)
	return block == nil
}
