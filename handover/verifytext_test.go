package handover

import (
	"strings"
	"testing"
)

// VERIFY.txt gives the signature's commands only where there is a
// signature, says UNSIGNED where there is none, and asks for the key
// where the package holds none.
func TestVerifyTextCases(t *testing.T) {
	_, r := contents(t)
	r.Key.Fingerprint = strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name           string
		signed, hasKey bool
		want, not      []string
	}{
		{"signed, with key", true, true, []string{"$ openssl pkeyutl -verify", "$ base64 -d manifest.sig > manifest.sig.bin", r.Key.Fingerprint + "  -", "not signed by the device"}, []string{"UNSIGNED", "\n\n\n"}},
		{"signed, no key", true, false, []string{"$ openssl pkeyutl -verify", "Obtain the device's public key from the shop"}, []string{"UNSIGNED"}},
		{"unsigned", false, false, []string{"UNSIGNED: this package holds no manifest.sig", "$ sha256sum -c SHA256SUMS"}, []string{"$ openssl pkeyutl", "$ base64"}},
	} {
		got := VerifyText(r, tc.signed, tc.hasKey)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: VERIFY.txt lacks %q:\n%s", tc.name, w, got)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(got, n) {
				t.Errorf("%s: VERIFY.txt holds %q:\n%s", tc.name, n, got)
			}
		}
	}
}
