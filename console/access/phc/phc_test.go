package phc

import (
	"errors"
	"strings"
	"testing"
)

// cheap are parameters small enough for tests.
var cheap = Hash{MemoryKiB: 64, Time: 1, Threads: 1, Key: make([]byte, 32)}

func TestRoundTrip(t *testing.T) {
	h := New("correct horse", []byte("saltsaltsalt"), cheap)
	got, err := Parse(h.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != h.String() {
		t.Errorf("Parse(%q).String() = %q", h, got)
	}
	if !got.Verify("correct horse") {
		t.Error("Verify of the right password = false")
	}
	if got.Verify("correct horsf") || got.Verify("") {
		t.Error("Verify of a wrong password = true")
	}
}

func TestParseRefuses(t *testing.T) {
	good := New("pw", []byte("saltsaltsalt"), cheap).String() // $argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$…
	f := strings.Split(good, "$")
	with := func(i int, v string) string {
		g := append([]string(nil), f...)
		g[i] = v
		return strings.Join(g, "$")
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "want 5 fields"},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuuOyHwFEvT1dvqL8WRsBYQe1Gux4QlSHa", "want 5 fields"},
		{"argon2i", with(1, "argon2i"), "must be argon2id"},
		{"old version", with(2, "v=16"), "must be v=19"},
		{"missing p", with(3, "m=64,t=1"), "m=…,t=…,p=…"},
		{"reordered", with(3, "t=1,m=64,p=1"), "m=…,t=…,p=…"},
		{"leading zero", with(3, "m=064,t=1,p=1"), "whole numbers"},
		{"sign", with(3, "m=+64,t=1,p=1"), "whole numbers"},
		{"no threads", with(3, "m=64,t=1,p=0"), "p must be"},
		{"too many threads", with(3, "m=4096,t=1,p=256"), "p must be"},
		{"no passes", with(3, "m=64,t=0,p=1"), "t must be"},
		{"huge memory", with(3, "m=4294967295,t=1,p=1"), "m must be"},
		{"too little memory", with(3, "m=7,t=1,p=1"), "m must be"},
		{"padded salt", with(4, f[4]+"="), "salt"},
		{"short salt", with(4, "c2FsdA"), "salt"},
		{"short key", with(5, "c2FsdA"), "hash must be"},
		{"not base64", with(5, "!!!!"), "hash must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v; want ErrMalformed saying %q", tc.in, err, tc.want)
			}
		})
	}
}

// FuzzParse: Parse never panics, accepts only what it prints back the
// same, and never lets through a parameter beyond its bounds.
func FuzzParse(f *testing.F) {
	f.Add(New("pw", []byte("saltsaltsalt"), cheap).String())
	f.Add("$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43))
	f.Add("$argon2id$v=19$m=1,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := Parse(s)
		if err != nil {
			return
		}
		if h.String() != s {
			t.Fatalf("Parse(%q) accepted it but prints %q", s, h)
		}
		if h.MemoryKiB > MaxMemoryKiB || h.Time > MaxTime || h.Threads == 0 || len(h.Key) < MinKeyLen || len(h.Salt) < MinSaltLen {
			t.Fatalf("Parse(%q) = %+v, beyond its bounds", s, h)
		}
	})
}
