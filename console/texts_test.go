package console

import (
	"io/fs"
	"regexp"
	"slices"
	"testing"

	"mamoru/custody"
)

// Every word the pages use is in both languages, and every state and
// action has its word: a missing one would show as nothing.
func TestTexts(t *testing.T) {
	for key := range texts[Japanese] {
		if _, ok := texts[English][key]; !ok {
			t.Errorf("%q is in Japanese only", key)
		}
	}
	for key := range texts[English] {
		if _, ok := texts[Japanese][key]; !ok {
			t.Errorf("%q is in English only", key)
		}
	}
	var used []string
	ref := regexp.MustCompile(`\.T\.([A-Za-z_]+)`)
	fs.WalkDir(templateFiles, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(templateFiles, p)
		for _, m := range ref.FindAllSubmatch(b, -1) {
			used = append(used, string(m[1]))
		}
		return nil
	})
	if len(used) < 50 {
		t.Fatalf("found %d words in the templates: the pattern no longer finds them", len(used))
	}
	for _, s := range []State{Tampered, Misplaced, Invalid, Unknown, Unsigned, Failed, Checking, Legacy, Verified} {
		used = append(used, "state_"+string(s), "says_"+string(s))
	}
	for _, a := range []custody.Action{custody.View, custody.Download, custody.Share, custody.Hold, custody.Release, custody.Handover,
		custody.Review, custody.Note, custody.FalsePress, custody.Delete} {
		used = append(used, "act_"+string(a))
	}
	slices.Sort(used)
	for _, key := range slices.Compact(used) {
		if _, ok := texts[Japanese][key]; !ok {
			t.Errorf("the pages use %q, which has no words", key)
		}
	}
}
