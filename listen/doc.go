// Package listen notices a raised voice at the counter from the microphone's
// PCM alone. It measures loudness and voice activity; it is not speech
// recognition, it does not know what was said or who said it, and it is not
// "AI".
//
// Three parts, each usable alone:
//
//   - Meter measures loudness per ITU-R BS.1770-4 as EBU R 128 applies it
//     (EBU Tech 3341 "EBU mode"): K-weighting, mean square per channel,
//     loudness = -0.691 + 10·log10(Σ G·z) in LUFS, momentary over 400 ms and
//     short-term over 3 s, both updated every 100 ms. A mono recorder is one
//     channel of weight 1.0, so a 1 kHz sine at -23 dBFS reads -26.0 LUFS in
//     mono and -23.0 LUFS when it is in both channels of a stereo pair:
//     BS.1770 sums channel powers, and one channel has half the power of
//     two. Integrated (gated) loudness and loudness range are not
//     implemented; a detector needs neither.
//   - VAD decides per 20 ms frame whether the frame looks like voice: at
//     least 40% of its energy in the 300–3400 Hz speech band, no more than
//     9000 zero crossings a second, louder than -60 dBFS, and frame levels
//     that rise and fall at syllable rate; voice is held 300 ms after the
//     last voiced frame. It is cheap and simple. It takes speech-band sound
//     that swells and fades like syllables for voice (music with vocals, a
//     radio or television, rhythmic clatter), misses whispers, and goes deaf
//     under loud low-frequency noise: mains hum within about 10 dB of the
//     talk's peaks hides calm talk, and a hum 18 dB under a shout's peaks
//     hides the shout (see TestDetectorUnderHum).
//   - Detector feeds both, learns the counter's normal voiced short-term
//     loudness for each hour of the day (Baseline), and reports a Detection
//     when voiced short-term loudness stays at or above the baseline plus
//     Config.RaiseDB (15 dB) for Config.Sustain (1 s), ending with 6 dB of
//     hysteresis, then waits Config.Cooldown (60 s) before another.
//
// Because short-term loudness is a 3 s average, a shout's length and level
// trade against each other: a voice 18 dB over the baseline for d seconds
// of a 3 s window reads 10·log10((d·10^1.8 + 3 - d)/3) dB over it, so with
// the defaults a +18 dB shout must last about 1.5 s to be reported, a 1 s
// one (+13.4 dB) is not, and a sustained one is confirmed about 2.2 s after
// it begins (measured on synthetic talk). On espeak-ng speech over shop
// music and pink noise (corpus_test.go; the figures are in
// bench/README.md), every passage scaled 18 dB over calm talk, 1.7–10 s
// long, was confirmed 1.5–2.95 s after it began, no passage 12 dB over
// was, and no calm talk was reported in 11 hours of it. Music louder than
// the talk by 6 dB hides the talk from the VAD, and the baseline learns
// the music instead.
//
// What it cannot tell apart: a customer leaning close to the microphone from
// one raising their voice (level at the microphone is all it has); a loud but
// calm talker from an angry one; a raised voice far from the microphone from
// a calm one nearby; a loud radio with a presenter from a person. A
// Detection says "a voice louder than is usual here at this hour", nothing
// more; what to make of it is for people.
//
// Time comes from the caller: every block carries the time of its first
// sample, and every time in a Detection is derived from those. The package
// reads no clock. After construction nothing allocates per block; memory is
// fixed at construction.
//
// A Meter, VAD or Detector belongs to one goroutine, which feeds it; only
// Detector.Levels and Detector.Baseline may be called from another.
package listen
