//go:build race

package listen

// raceEnabled: the race detector slows the corpus's arithmetic some
// fifteenfold, so TestCorpus hears a shorter corpus under it.
const raceEnabled = true
