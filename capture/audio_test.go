package capture

import (
	"slices"
	"testing"
	"time"
)

// The PCM tap sees every whole block, sample for sample, with the media
// time its frame gets, before the block is encoded.
func TestBlocksTapPCM(t *testing.T) {
	const rate, block = 48000, 960
	tests := []struct {
		name     string
		channels int
		chunk    int // samples per channel handed to add at a time
	}{
		{"mono, a block at a time", 1, block},
		{"stereo, 10 ms callbacks", 2, 480},
		{"stereo, uneven chunks", 2, 701},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type event struct {
				tap bool // the tap, or the frame written
				t   time.Duration
				pcm []int16
			}
			var events []event
			b, err := newBlocks(rate, tt.channels, block, nil, func(f Frame) error {
				events = append(events, event{t: f.Time})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			b.onPCM = func(at time.Duration, pcm []int16) {
				events = append(events, event{tap: true, t: at, pcm: slices.Clone(pcm)})
			}
			// Three and a half blocks of samples, each its own index.
			in := make([]int16, block*tt.channels*7/2)
			for i := range in {
				in[i] = int16(i)
			}
			for i := 0; i < len(in); i += tt.chunk * tt.channels {
				chunk := in[i:min(i+tt.chunk*tt.channels, len(in))]
				at := time.Duration(i/tt.channels) * time.Second / rate
				if err := b.add(at, chunk); err != nil {
					t.Fatal(err)
				}
			}
			if len(events) != 6 {
				t.Fatalf("%d taps and frames for three whole blocks, want 6: %+v", len(events), events)
			}
			for k := range 3 {
				tap, frame := events[2*k], events[2*k+1]
				if !tap.tap || frame.tap {
					t.Fatalf("block %d: the tap did not come before the frame", k)
				}
				if tap.t != frame.t {
					t.Errorf("block %d: tapped at %v, framed at %v", k, tap.t, frame.t)
				}
				if want := in[k*block*tt.channels : (k+1)*block*tt.channels]; !slices.Equal(tap.pcm, want) {
					t.Errorf("block %d: the tap saw samples %d..%d, want %d..%d", k, tap.pcm[0], tap.pcm[len(tap.pcm)-1], want[0], want[len(want)-1])
				}
			}
		})
	}
}
