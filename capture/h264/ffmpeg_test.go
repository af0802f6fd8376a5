package h264

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// encode has ffmpeg's libx264 make an Annex B stream of frames frames of its
// test pattern at size, with an IDR frame every gop frames and the further
// options opts.
func encode(t *testing.T, size string, frames, gop int, opts ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is not installed (apt-get install ffmpeg); the H.264 tests need real streams from it: %v", err)
	}
	g := strconv.Itoa(gop)
	args := []string{"-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=30",
		"-frames:v", strconv.Itoa(frames), "-c:v", "libx264", "-g", g, "-keyint_min", g, "-sc_threshold", "0"}
	args = append(args, opts...)
	args = append(args, "-f", "h264", "-")
	cmd := exec.Command("ffmpeg", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// randomChunks returns at most a random 1 to 8192 bytes per Read.
type randomChunks struct {
	b   []byte
	rng *rand.Rand
}

func (r *randomChunks) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+r.rng.IntN(8192))], r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestFFmpegStreams cuts real encoder output into access units and reads its
// SPS: one access unit per frame ffmpeg made, an IDR frame where the GOP
// says, and the size, profile and format asked for.
func TestFFmpegStreams(t *testing.T) {
	tests := []struct {
		name          string
		size          string
		frames, gop   int
		opts          []string
		profile       uint8
		chroma, depth int
		interlaced    bool
		codedW        int
		codedH        int
		slices        int // per frame
		aud, bFrames  bool
	}{
		{name: "720p Constrained Baseline, as the recorder encodes", size: "1280x720", frames: 60, gop: 30,
			// zerolatency means sliced threads: a slice per thread.
			opts:    []string{"-preset", "ultrafast", "-tune", "zerolatency", "-threads", "3", "-bf", "0", "-pix_fmt", "yuv420p"},
			profile: 66, chroma: 1, depth: 8, codedW: 1280, codedH: 720, slices: 3},
		{name: "360p High", size: "640x360", frames: 45, gop: 30,
			opts:    []string{"-profile:v", "high", "-preset", "fast", "-bf", "0"},
			profile: 100, chroma: 1, depth: 8, codedW: 640, codedH: 368, slices: 1},
		{name: "1366x768 needs cropping", size: "1366x768", frames: 30, gop: 15,
			opts:    []string{"-preset", "ultrafast", "-bf", "0"},
			profile: 66, chroma: 1, depth: 8, codedW: 1376, codedH: 768, slices: 1},
		{name: "four slices a frame", size: "640x360", frames: 20, gop: 10,
			opts:    []string{"-preset", "ultrafast", "-bf", "0", "-slices", "4"},
			profile: 66, chroma: 1, depth: 8, codedW: 640, codedH: 368, slices: 4},
		{name: "access unit delimiters", size: "640x360", frames: 20, gop: 10,
			opts:    []string{"-preset", "ultrafast", "-bf", "0", "-x264-params", "aud=1"},
			profile: 66, chroma: 1, depth: 8, codedW: 640, codedH: 368, slices: 1, aud: true},
		{name: "B-frames", size: "640x360", frames: 40, gop: 20,
			opts:    []string{"-preset", "medium", "-bf", "2"},
			profile: 100, chroma: 1, depth: 8, codedW: 640, codedH: 368, slices: 1, bFrames: true},
		{name: "4:2:2 10-bit", size: "1366x768", frames: 10, gop: 5,
			opts:    []string{"-preset", "ultrafast", "-bf", "0", "-pix_fmt", "yuv422p10le"},
			profile: 122, chroma: 2, depth: 10, codedW: 1376, codedH: 768, slices: 1},
		{name: "4:4:4", size: "1366x768", frames: 10, gop: 5,
			opts:    []string{"-preset", "ultrafast", "-bf", "0", "-pix_fmt", "yuv444p"},
			profile: 244, chroma: 3, depth: 8, codedW: 1376, codedH: 768, slices: 1},
		{name: "monochrome", size: "1366x766", frames: 10, gop: 5,
			opts:    []string{"-preset", "ultrafast", "-bf", "0", "-pix_fmt", "gray"},
			profile: 100, chroma: 0, depth: 8, codedW: 1376, codedH: 768, slices: 1},
		{name: "interlaced 1080", size: "1920x1080", frames: 10, gop: 5,
			opts:    []string{"-preset", "ultrafast", "-bf", "0", "-flags", "+ildct+ilme"},
			profile: 77, chroma: 1, depth: 8, interlaced: true, codedW: 1920, codedH: 1088, slices: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stream := encode(t, tt.size, tt.frames, tt.gop, tt.opts...)
			rng := rand.New(rand.NewPCG(uint64(len(stream)), 1))
			got := parseAll(NewParser(&randomChunks{b: stream, rng: rng}), 10*tt.frames)
			if got.err != io.EOF {
				t.Fatalf("parsing ended with %v, want io.EOF", got.err)
			}
			if len(got.aus) != tt.frames {
				t.Fatalf("%d access units, want the %d frames ffmpeg made", len(got.aus), tt.frames)
			}
			var all [][]byte
			for _, au := range got.aus {
				all = append(all, au.nalus...)
			}
			if !equalNALs(all, splitNALs(stream)) {
				t.Errorf("the access units' NAL units differ from the stream's")
			}

			wantW, wantH, _ := strings.Cut(tt.size, "x")
			idrs, bs := 0, 0
			for i, au := range got.aus {
				if au.idr {
					idrs++
					if !tt.bFrames && i%tt.gop != 0 {
						t.Errorf("access unit %d is an IDR frame; want one every %d", i, tt.gop)
					}
					if au.sps == nil || au.pps == nil {
						t.Fatalf("IDR access unit %d has SPS %x and PPS %x, want both", i, au.sps, au.pps)
					}
					sps, err := ParseSPS(au.sps)
					if err != nil {
						t.Fatalf("access unit %d: %v", i, err)
					}
					if w, h := strconv.Itoa(sps.Width), strconv.Itoa(sps.Height); w != wantW || h != wantH {
						t.Errorf("SPS size is %sx%s, want %s", w, h, tt.size)
					}
					if sps.CodedWidth != tt.codedW || sps.CodedHeight != tt.codedH {
						t.Errorf("SPS coded size is %dx%d, want %dx%d", sps.CodedWidth, sps.CodedHeight, tt.codedW, tt.codedH)
					}
					if sps.ProfileIDC != tt.profile || sps.ChromaFormatIDC != tt.chroma || sps.BitDepthLuma != tt.depth ||
						sps.FrameMbsOnly == tt.interlaced {
						t.Errorf("SPS has profile_idc %d, chroma_format_idc %d, bit depth %d, frame_mbs_only %v; want %d, %d, %d, %v",
							sps.ProfileIDC, sps.ChromaFormatIDC, sps.BitDepthLuma, sps.FrameMbsOnly, tt.profile, tt.chroma, tt.depth, !tt.interlaced)
					}
					if sps.NumUnitsInTick == 0 || sps.TimeScale != 2*30*sps.NumUnitsInTick {
						t.Errorf("SPS timing is %d/%d, want 30 frames a second", sps.NumUnitsInTick, sps.TimeScale)
					}
					if !sps.BitstreamRestriction || (sps.MaxNumReorderFrames > 0) != tt.bFrames {
						t.Errorf("SPS bitstream restriction %v with %d reorder frames; B-frames: %v",
							sps.BitstreamRestriction, sps.MaxNumReorderFrames, tt.bFrames)
					}
				}
				if au.b {
					bs++
				}
				slices := 0
				for _, nal := range au.nalus {
					if typ := nal[0] & 0x1f; typ == NALSlice || typ == NALIDR {
						slices++
					}
				}
				if slices != tt.slices {
					t.Errorf("access unit %d has %d slices, want %d", i, slices, tt.slices)
				}
				if first := au.nalus[0][0] & 0x1f; (first == NALAUD) != tt.aud {
					t.Errorf("access unit %d starts with NAL unit type %d; delimiters: %v", i, first, tt.aud)
				}
				if !au.nalusWellFormed {
					t.Errorf("access unit %d has an empty NAL unit, trailing zeros or a start code inside", i)
				}
			}
			if want := (tt.frames + tt.gop - 1) / tt.gop; idrs != want {
				t.Errorf("%d IDR frames, want %d", idrs, want)
			}
			if (bs > 0) != tt.bFrames {
				t.Errorf("%d access units have B slices; B-frames: %v", bs, tt.bFrames)
			}
		})
	}
}
