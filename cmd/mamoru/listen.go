package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"mamoru/config"
	"mamoru/device"
)

const listenHelp = `Usage: mamoru listen --config FILE [--minutes N]

Shows, once a second, the loudness the running recorder hears at the
counter, next to the usual level of voices it has learned for this hour
and the threshold of a raised voice, and every raised voice it hears:
what an installer needs to set [listen] raise_db at the counter. It
reads the recorder's own measurements over its control socket and never
opens the microphone itself; the recorder hears only while it records
(the indicator lit, within the recording hours).

With listening off ([listen] enabled = false) the recorder measures only
while this command runs, and a raised voice it hears is shown here and
nothing else is done: no alert, no audit entry, no incident. With
listening on, what it hears is acted on as [listen] action says, whether
or not this command runs.

Levels are in LUFS (ITU-R BS.1770 loudness: -23 is a broadcast's
average, -70 a silent room): momentary over 400 ms, short-term over 3 s,
and "voice", the short-term loudness of what sounded like voice, which is
what is compared with the usual level.`

func cmdListen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var minutes float64
	cfg, code, ok := commandWithoutSecrets("listen", listenHelp, args, stderr, func(fs *flag.FlagSet) {
		fs.Float64Var(&minutes, "minutes", 3, "how long to show the levels")
	})
	if !ok {
		return code
	}
	if !(minutes > 0 && minutes <= 600) {
		fmt.Fprintf(stderr, "mamoru listen: --minutes must be more than 0 and at most 600 (got %g)\n", minutes)
		return 2
	}
	if !cfg.Audio.Enabled {
		fmt.Fprintln(stderr, "mamoru listen: audio.enabled = false: the recorder captures no sound to listen to")
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(minutes*float64(time.Minute)))
	defer cancel()
	w := &levelWriter{out: stdout, zone: cfg.Location(), seen: map[soundKey]bool{}}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		// Each request keeps the recorder measuring a few seconds more: if
		// this command dies, measuring stops soon after.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		ls, err := device.Listen(rctx, cfg.Device.StateDir, 5*time.Second)
		rcancel()
		switch {
		case ctx.Err() != nil:
			return 0
		case err != nil:
			fmt.Fprintf(stderr, "mamoru listen: %v\n", err)
			return 1
		}
		w.write(ls)
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
		}
	}
}

// levelWriter prints what `mamoru listen` shows: a header when the
// settings or capture change, a line of levels a second, and each raised
// voice once as confirmed and once as ended.
type levelWriter struct {
	out     io.Writer
	zone    *time.Location
	header  string
	lines   int
	last    time.Time
	seen    map[soundKey]bool
	started bool
}

type soundKey struct {
	start time.Time
	ended bool
}

func (w *levelWriter) write(ls device.ListenStatus) {
	threshold := ls.BaselineLUFS + ls.RaiseDB
	header := listenHeader(ls)
	if header != w.header || w.lines%20 == 0 {
		if header != w.header {
			fmt.Fprintln(w.out, header)
			w.header = header
		}
		if ls.Capturing {
			fmt.Fprintf(w.out, "%-8s %9s %10s %6s %6s %9s %6s\n", "time", "momentary", "short-term", "voice", "usual", "threshold", "voiced")
		}
	}
	// Raised voices first: one heard before this command began is not
	// news, unless it is still going on.
	for _, s := range ls.Sounds {
		k := soundKey{s.Start, s.Ended}
		if w.seen[k] {
			continue
		}
		w.seen[k] = true
		if !w.started && s.Ended {
			continue
		}
		fmt.Fprintln(w.out, soundLine(s, ls, w.zone))
	}
	w.started = true
	if !ls.Capturing || ls.Time.IsZero() || !ls.Time.After(w.last) {
		return
	}
	w.last = ls.Time
	w.lines++
	usual := fmt.Sprintf("%6.1f", ls.BaselineLUFS)
	if !ls.Learned {
		usual = fmt.Sprintf("%5.1f?", ls.BaselineLUFS)
	}
	mark := ""
	if ls.Raised {
		mark = "  RAISED"
	}
	fmt.Fprintf(w.out, "%-8s %9s %10s %6s %6s %9.1f %5.0f%%  %s%s\n", ls.Time.In(w.zone).Format("15:04:05"),
		lufsText(ls.Momentary), lufsText(ls.ShortTerm), lufsText(ls.Voiced), usual, threshold, 100*ls.VoicedShare,
		levelBar(ls.Voiced, ls.BaselineLUFS, threshold), mark)
}

// listenHeader says what the recorder does with what it hears.
func listenHeader(ls device.ListenStatus) string {
	rule := fmt.Sprintf("a voice %.1f dB over the usual level for %.1f s is a raised voice (it ends %.1f dB lower)",
		ls.RaiseDB, ls.SustainSeconds, ls.HysteresisDB)
	var b strings.Builder
	switch {
	case !ls.Enabled:
		fmt.Fprintf(&b, "listening is OFF ([listen] enabled = false): measuring while this runs, acting on nothing; %s", rule)
	case ls.Action == config.ListenIncident:
		fmt.Fprintf(&b, "listening is ON: %s; each is alerted (sound.raised) and raises an incident", rule)
	default:
		fmt.Fprintf(&b, "listening is ON: %s; each is alerted (sound.raised)", rule)
	}
	if !ls.Capturing {
		b.WriteString("\nnot recording now (the indicator is off: outside the recording hours, or a fault): nothing is heard")
	}
	return b.String()
}

// soundLine says what one raised voice was and what became of it.
func soundLine(s device.SoundStatus, ls device.ListenStatus, zone *time.Location) string {
	usual := "the usual level"
	if !s.Learned {
		usual = "the default level (not yet learned)"
	}
	what := fmt.Sprintf("RAISED VOICE from %s: %+.1f dB over %s (%.1f LUFS against %.1f)",
		s.Start.In(zone).Format("15:04:05"), s.AboveDB, usual, s.PeakLUFS, s.BaselineLUFS)
	switch {
	case s.Ended:
		return fmt.Sprintf("%s, ended after %.1f s", what, s.Seconds)
	case !s.Acted:
		return what + ": would be alerted (listening is off: nothing sent)"
	case ls.Action == config.ListenIncident:
		return what + ": alerted, incident raised"
	}
	return what + ": alerted"
}

func lufsText(x *float64) string {
	if x == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *x)
}

// levelBar draws the voice's level from 20 dB under the usual level to
// 10 dB over the threshold, the usual level marked '|' and the threshold
// '!'.
func levelBar(voiced *float64, usual, threshold float64) string {
	const width = 30
	lo, hi := usual-20, threshold+10
	at := func(x float64) int { return int(math.Round((x - lo) / (hi - lo) * width)) }
	bar := []rune(strings.Repeat(".", width+1))
	if voiced != nil {
		for i := 0; i <= min(at(*voiced), width); i++ {
			bar[i] = '#'
		}
	}
	bar[at(usual)], bar[at(threshold)] = '|', '!'
	return string(bar)
}
