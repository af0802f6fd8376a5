// Package cliptest judges clips with the tools a viewer of the clip would use:
// ffprobe and ffmpeg from FFmpeg, and the <video> element of Chromium and of
// Firefox. It is for tests, the way net/http/httptest is: each helper takes
// the test, runs the real tool on a file and returns what the tool saw,
// failing the test (never skipping it) when a tool is missing or cannot be
// run.
//
// The helpers need ffprobe and ffmpeg (Debian package ffmpeg) and, for Play,
// chromium (Debian package chromium) on the PATH; to play in Firefox,
// firefox-esr and pulseaudio (Debian packages firefox-esr, pulseaudio).
package cliptest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Info is what ffprobe reports about a file. A value ffprobe does not report
// is zero.
type Info struct {
	Duration float64 // seconds
	Size     int64   // bytes
	Streams  []Stream
}

// Stream is what ffprobe reports about one stream of a file. A value ffprobe
// does not report, or that does not apply to the stream's type, is zero.
type Stream struct {
	Index     int
	CodecType string // "video", "audio", "subtitle", "data" or "attachment"
	CodecName string // "h264", "flac", "aac", ...

	Width, Height int // video only
	// FrameRate is the video stream's frame rate as FFmpeg reads it
	// (r_frame_rate): stated by the clip, or else guessed. FFmpeg also
	// uses it to retime frames when decoding.
	FrameRate float64

	SampleRate int // audio only, in Hz
	Channels   int // audio only

	Duration float64 // seconds
	Packets  int     // packets ffprobe read from the stream
}

// Stream returns the first stream of codecType ("video", "audio", ...) and
// whether there is one.
func (i Info) Stream(codecType string) (Stream, bool) {
	for _, s := range i.Streams {
		if s.CodecType == codecType {
			return s, true
		}
	}
	return Stream{}, false
}

// Probe runs ffprobe -show_streams -show_format -count_packets on the file at
// path and returns what it reports. It fails the test if ffprobe cannot read
// the file.
func Probe(t testing.TB, path string) Info {
	t.Helper()
	info, err := probe(t.Context(), path)
	if err != nil {
		t.Fatalf("cliptest: %v", err)
	}
	return info
}

func probe(ctx context.Context, path string) (Info, error) {
	var out struct {
		Format struct {
			Duration number `json:"duration"`
			Size     number `json:"size"`
		} `json:"format"`
		Streams []struct {
			Index         number `json:"index"`
			CodecType     string `json:"codec_type"`
			CodecName     string `json:"codec_name"`
			Width         number `json:"width"`
			RFrameRate    string `json:"r_frame_rate"`
			Height        number `json:"height"`
			SampleRate    number `json:"sample_rate"`
			Channels      number `json:"channels"`
			Duration      number `json:"duration"`
			NbReadPackets number `json:"nb_read_packets"`
		} `json:"streams"`
	}
	err := ffprobe(ctx, &out, "-show_streams", "-show_format", "-count_packets", path)
	if err != nil {
		return Info{}, err
	}
	info := Info{
		Duration: float64(out.Format.Duration),
		Size:     int64(out.Format.Size),
	}
	for _, s := range out.Streams {
		info.Streams = append(info.Streams, Stream{
			Index:      int(s.Index),
			CodecType:  s.CodecType,
			CodecName:  s.CodecName,
			Width:      int(s.Width),
			FrameRate:  ratio(s.RFrameRate),
			Height:     int(s.Height),
			SampleRate: int(s.SampleRate),
			Channels:   int(s.Channels),
			Duration:   float64(s.Duration),
			Packets:    int(s.NbReadPackets),
		})
	}
	return info, nil
}

// Packet is one packet as ffprobe reports it.
type Packet struct {
	PTS float64 // presentation time, seconds
	// Duration is in seconds, zero when ffprobe does not know it: FFmpeg 5.1
	// reports none for FLAC in a fragmented MP4.
	Duration float64
	Key      bool // a key frame (ffprobe flag K)
	Size     int  // bytes
}

// streamSpecifiers maps a codec type to ffprobe's stream specifier for it.
var streamSpecifiers = map[string]string{
	"video":      "v",
	"audio":      "a",
	"subtitle":   "s",
	"data":       "d",
	"attachment": "t",
}

// Packets returns every packet of the first stream of codecType ("video",
// "audio", ...) in the file at path, in the order ffprobe reads them. It fails
// the test if ffprobe cannot read the file or the file has no such stream.
func Packets(t testing.TB, path, codecType string) []Packet {
	t.Helper()
	spec, ok := streamSpecifiers[codecType]
	if !ok {
		t.Fatalf("cliptest: Packets: unknown codec type %q (want video, audio, subtitle, data or attachment)", codecType)
	}
	var out struct {
		Streams []struct {
			Index number `json:"index"`
		} `json:"streams"`
		Packets []struct {
			PTSTime      number `json:"pts_time"`
			DurationTime number `json:"duration_time"`
			Flags        string `json:"flags"`
			Size         number `json:"size"`
		} `json:"packets"`
	}
	err := ffprobe(t.Context(), &out, "-select_streams", spec+":0",
		"-show_entries", "packet=pts_time,duration_time,flags,size:stream=index", path)
	if err != nil {
		t.Fatalf("cliptest: %v", err)
	}
	if len(out.Streams) == 0 {
		t.Fatalf("cliptest: %s has no %s stream", path, codecType)
	}
	packets := make([]Packet, 0, len(out.Packets))
	for _, p := range out.Packets {
		packets = append(packets, Packet{
			PTS:      float64(p.PTSTime),
			Duration: float64(p.DurationTime),
			Key:      strings.HasPrefix(p.Flags, "K"),
			Size:     int(p.Size),
		})
	}
	return packets
}

// Interval is the time between two consecutive packets of a stream.
type Interval struct {
	At     float64 // presentation time of the first packet, seconds
	Length float64 // seconds to the next packet
}

// Spacing returns the shortest and the longest interval between consecutive
// packets of the first stream of codecType in the file at path, in
// presentation order. A frame missing shows as a long interval, two frames
// squeezed together (which players, on a grid of the nominal rate, cannot
// show apart) as a short one. A stream of fewer than two packets has no
// intervals, and both are zero.
func Spacing(t testing.TB, path, codecType string) (shortest, longest Interval) {
	t.Helper()
	pk := Packets(t, path, codecType)
	pts := make([]float64, len(pk))
	for i, p := range pk {
		pts[i] = p.PTS
	}
	slices.Sort(pts)
	for i := 1; i < len(pts); i++ {
		iv := Interval{At: pts[i-1], Length: pts[i] - pts[i-1]}
		if i == 1 || iv.Length < shortest.Length {
			shortest = iv
		}
		if i == 1 || iv.Length > longest.Length {
			longest = iv
		}
	}
	return shortest, longest
}

// DecodeErrors decodes every stream of the file at path with
// ffmpeg -v error -i path -f null - and returns what ffmpeg printed; empty
// means the file decoded cleanly. If ffmpeg fails without printing anything,
// the result names its exit status.
//
// This is a strict judge of timing too: FFmpeg 5.1 rounds each video
// timestamp to the grid of the stream's frame rate (r_frame_rate), and
// complains of non-monotonic timestamps in its own output where two frames
// land on one grid point. mamoru's clips state that rate (capture/mp4);
// without it FFmpeg guesses from the first frames' times, and read a 30 fps
// clip whose stamps wandered a few milliseconds as 29.97, on whose grid two
// frames collide every 33 s. Spacing measures the intervals themselves.
func DecodeErrors(t testing.TB, path string) string {
	t.Helper()
	ffmpeg, err := tool("ffmpeg", "ffmpeg")
	if err != nil {
		t.Fatalf("cliptest: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), ffmpeg, "-nostdin", "-v", "error", "-i", path, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("cliptest: run ffmpeg: %v", err)
	}
	if err != nil && stderr.Len() == 0 {
		return "ffmpeg: " + err.Error()
	}
	return stderr.String()
}

// ffprobe runs ffprobe -v error -of json with args and decodes its output
// into v.
func ffprobe(ctx context.Context, v any, args ...string) error {
	bin, err := tool("ffprobe", "ffmpeg")
	if err != nil {
		return err
	}
	args = append([]string{"-v", "error", "-of", "json"}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("ffprobe %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("ffprobe %s: decode output: %w", strings.Join(args, " "), err)
	}
	return nil
}

// tool returns the path of the executable name, or an error that says which
// Debian package provides it.
func tool(name, debianPackage string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed (apt-get install %s): %w", name, debianPackage, err)
	}
	return path, nil
}

// ratio returns the value of a rational as ffprobe writes it ("30000/1001"),
// or zero for "0/0" and anything else it cannot read.
func ratio(s string) float64 {
	num, den, ok := strings.Cut(s, "/")
	n, err1 := strconv.ParseFloat(num, 64)
	d, err2 := strconv.ParseFloat(den, 64)
	if !ok || err1 != nil || err2 != nil || d == 0 {
		return 0
	}
	return n / d
}

// number is a JSON number that may also come quoted, as ffprobe writes most
// of its numbers ("3.000000") and as the player page writes the values JSON
// has no number for ("NaN", "Infinity"). "N/A" and null leave it unchanged.
type number float64

func (n *number) UnmarshalJSON(b []byte) error {
	s := string(b)
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	if s == "null" || s == "N/A" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("number %s: %w", b, err)
	}
	*n = number(f)
	return nil
}

// PCM decodes a file's first audio stream to 48 kHz mono samples.
func PCM(t testing.TB, path string) []float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	s := make([]float64, len(out)/2)
	for i := range s {
		s[i] = float64(int16(binary.LittleEndian.Uint16(out[2*i:])))
	}
	return s
}
