package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mamoru/capture"
)

const viewingCopyHelp = `Usage: mamoru clips viewing-copy CLIP.mp4 -o COPY.mp4

Writes the viewing copy of a clip: the same video, byte for byte, and the
same sound, its FLAC re-encoded as ALAC (Apple Lossless), which Windows'
and Apple's own players play where they play no FLAC in MP4. The copy's
audio decodes to exactly the clip's samples, and the same clip always gives
the same copy, byte for byte. Never replaces a file.`

// clipsViewingCopy is 'mamoru clips viewing-copy': it needs no bucket and
// no configuration.
func clipsViewingCopy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("clips viewing-copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, viewingCopyHelp) }
	out := fs.String("o", "", "the copy to write; must not exist")
	rest, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(rest) != 1 || *out == "" {
		fmt.Fprintln(stderr, viewingCopyHelp)
		return 2
	}
	in := rest[0]
	sum, copySum, size, err := writeViewingCopy(in, *out)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru clips viewing-copy: %s\n", errText(err))
		return 1
	}
	fmt.Fprintf(stdout, "%s: viewing copy of %s, %s\n  SHA-256 %s\n  derived from SHA-256 %s\n", printable(*out), printable(in), megabytes(size), copySum, sum)
	return 0
}

// writeViewingCopy writes the viewing copy of the clip in as out, through a
// temporary file in out's directory that is linked to out only when whole
// and synced, so out never holds part of a copy and an existing out is
// never replaced. It returns the SHA-256 of the clip and of the copy, and
// the copy's size.
func writeViewingCopy(in, out string) (sum, copySum string, size int64, err error) {
	src, err := os.Open(in)
	if err != nil {
		return "", "", 0, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return "", "", 0, err
	}
	if !st.Mode().IsRegular() {
		return "", "", 0, fmt.Errorf("%s is not a regular file", in)
	}
	if _, err := os.Lstat(out); err == nil {
		return "", "", 0, fmt.Errorf("%s exists; not replaced", out)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".viewing-copy-*.mp4")
	if err != nil {
		return "", "", 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := capture.ViewingCopy(tmp, src, st.Size()); err != nil {
		return "", "", 0, fmt.Errorf("%s: %w", in, err)
	}
	if sum, _, err = fileSHA256(src); err != nil {
		return "", "", 0, err
	}
	if copySum, size, err = fileSHA256(tmp); err != nil {
		return "", "", 0, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", "", 0, err
	}
	// A hard link fails if out exists, where a rename would replace it.
	if err := os.Link(tmp.Name(), out); err != nil {
		return "", "", 0, err
	}
	// The link and the temporary file's removal last through a power cut
	// once the directory is synced.
	if err := os.Remove(tmp.Name()); err != nil {
		return "", "", 0, err
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return "", "", 0, err
		}
	}
	return sum, copySum, size, nil
}

// fileSHA256 returns the SHA-256 of f's whole content, in hex, and its
// length.
func fileSHA256(f *os.File) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
