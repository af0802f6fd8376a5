package flac_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"mamoru/capture/flac"
)

// TestSizeAgainstFFmpeg encodes a second of each sound with this package,
// with github.com/mewkiz/flac (capture's encoder before) and with ffmpeg's
// fastest FLAC ("-compression_level 0", fixed predictors as here), all in
// 20 ms blocks, and logs the bytes per block. This package must be no
// larger than either, give or take a byte a block.
func TestSizeAgainstFFmpeg(t *testing.T) {
	const rate, block, blocks = 48000, 960, 50
	for _, sig := range []signal{
		{"tone", 1, tone}, {"speech", 1, speech}, {"silence", 1, func(int, int) int16 { return 0 }},
		{"noise", 1, noise}, {"square", 1, square},
		{"stereo tone", 2, tone}, {"stereo speech", 2, speech}, {"stereo silence", 2, func(int, int) int16 { return 0 }},
	} {
		own, err := flac.NewEncoder(rate, sig.channels, block)
		if err != nil {
			t.Fatal(err)
		}
		mew, err := newMewkizEncoder(rate, sig.channels, block)
		if err != nil {
			t.Fatal(err)
		}
		var pcm []int16
		var ownBytes, mewBytes int
		for b := range blocks {
			p := sig.block(b, block)
			pcm = append(pcm, p...)
			f, err := own.Encode(p)
			if err != nil {
				t.Fatal(err)
			}
			ownBytes += len(f)
			if f, err = mew.Encode(p); err != nil {
				t.Fatal(err)
			}
			mewBytes += len(f)
		}
		ff := ffmpegFrameBytes(t, pcm, rate, sig.channels, block)
		t.Logf("%-15s bytes a block: own %6.1f  mewkiz %6.1f  ffmpeg -compression_level 0 %6.1f",
			sig.name, float64(ownBytes)/blocks, float64(mewBytes)/blocks, float64(ff)/blocks)
		if ownBytes > ff+blocks || ownBytes > mewBytes+blocks {
			t.Errorf("%s: %d bytes, more than ffmpeg's %d or mewkiz's %d", sig.name, ownBytes, ff, mewBytes)
		}
	}
}

// ffmpegFrameBytes returns the bytes of the frames ffmpeg's FLAC encoder
// writes for pcm at its fastest setting: the stream less its metadata.
func ffmpegFrameBytes(t *testing.T, pcm []int16, rate, channels, block int) int {
	t.Helper()
	in := filepath.Join(t.TempDir(), "in.pcm")
	raw := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	if err := os.WriteFile(in, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(ffmpeg(t), "-v", "error", "-f", "s16le", "-ar", fmt.Sprint(rate), "-ac", fmt.Sprint(channels),
		"-i", in, "-c:a", "flac", "-compression_level", "0", "-frame_size", fmt.Sprint(block), "-f", "flac", "-")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg encode: %v: %s", err, stderr.Bytes())
	}
	if !bytes.HasPrefix(out, []byte("fLaC")) {
		t.Fatal("ffmpeg wrote no FLAC stream")
	}
	p := 4
	for {
		if p+4 > len(out) {
			t.Fatal("ffmpeg's FLAC metadata runs past its end")
		}
		last := out[p]&0x80 != 0
		p += 4 + (int(out[p+1])<<16 | int(out[p+2])<<8 | int(out[p+3]))
		if last {
			return len(out) - p
		}
	}
}
