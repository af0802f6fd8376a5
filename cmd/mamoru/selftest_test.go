package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// mamoru selftest on the simulated counter: the installer answers on
// stdin, the table says what passed, and the exit status is 1 exactly when
// a check failed.
func TestSelftestCommand(t *testing.T) {
	cfg, _ := validConfigFile(t)
	result := regexp.MustCompile(`(?m)^(indicator|button|microphone|camera|clock|storage)\s+(PASS|FAIL|SKIP)\b`)
	for _, tc := range []struct {
		name, stdin string
		want        map[string]string // check -> result
	}{
		// Saw it blink; the next line is the press.
		{"the installer saw it blink", "y\n\n", map[string]string{"indicator": "PASS", "button": "PASS", "microphone": "PASS", "camera": "PASS", "storage": "SKIP"}},
		{"the installer did not", "n\n\n", map[string]string{"indicator": "FAIL", "button": "PASS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), []string{"selftest", "--config", cfg}, strings.NewReader(tc.stdin), &out, &errOut)
			got := map[string]string{}
			failed := 0
			for _, m := range result.FindAllStringSubmatch(out.String(), -1) {
				got[m[1]] = m[2]
				if m[2] == "FAIL" {
					failed++
				}
			}
			if len(got) != 6 {
				t.Fatalf("the table has %d of the 6 checks:\n%s%s", len(got), out.String(), errOut.String())
			}
			for check, want := range tc.want {
				if got[check] != want {
					t.Errorf("%s: %s, want %s", check, got[check], want)
				}
			}
			// The clock passes only where NTP has set it, so the exit
			// status is judged against the table.
			if wantCode := min(failed, 1); code != wantCode || (failed > 0) != strings.Contains(out.String(), "FAILED: the device is not ready") {
				t.Errorf("exit %d with %d failed checks; want %d, and the summary to say so:\n%s", code, failed, wantCode, out.String())
			}
		})
	}
}
