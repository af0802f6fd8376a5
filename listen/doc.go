// Package listen notices a raised voice at the counter from the microphone's
// PCM alone. It measures loudness and voice activity; it is not speech
// recognition and it does not know what was said or who said it.
//
// Three parts, each usable alone:
//
//   - Meter measures loudness per ITU-R BS.1770-4 as EBU R 128 applies it
//     (EBU Tech 3341 "EBU mode"): K-weighting, mean square per channel,
//     loudness = -0.691 + 10·log10(Σ G·z) in LUFS, momentary over 400 ms and
//     short-term over 3 s, both updated every 100 ms. A mono recorder is one
//     channel of weight 1.0, so a sine at -23 dBFS reads -26.0 LUFS in mono
//     and -23.0 LUFS when it is in both channels of a stereo pair: BS.1770
//     sums channel powers, and one channel has half the power of two.
//     Integrated (gated) loudness and loudness range are not implemented.
//   - VAD decides per 20 ms frame whether the frame looks like voice: most
//     energy in the 300–3400 Hz speech band, few zero crossings, loud enough,
//     and a level that rises and falls at syllable rate, with a 300 ms
//     hangover. It is cheap and simple; it takes other sounds that have
//     speech-band energy modulated like syllables (music with vocals, a radio,
//     a television, some clatter) for voice, and it misses whispered speech.
//   - Detector feeds both, learns the counter's own normal voiced short-term
//     loudness for each hour of the day (Baseline), and reports a Detection
//     when voiced short-term loudness stays at or above the baseline plus
//     Config.RaiseDB for Config.Sustain, with hysteresis and a cooldown.
//
// What it cannot tell apart: a customer leaning close to the microphone from
// one raising their voice (level at the microphone is all it has); a loud but
// calm talker from an angry one; a raised voice far from the microphone from
// a calm one nearby. A Detection says "louder voice than is usual here at
// this hour", and nothing more; what to do with it is for people.
//
// Time comes from the caller: every block carries the time of its first
// sample, and every time in a Detection is derived from those. The package
// reads no clock. After construction no method allocates per block; memory
// is bounded by the sample rate and channel count fixed at construction.
//
// A Meter, VAD or Detector belongs to one goroutine, which feeds it; only
// Detector.Levels and Detector.Baseline may be called from another.
package listen
