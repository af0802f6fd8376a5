// Package phc reads, writes and checks argon2id password hashes in the PHC
// string format:
//
//	$argon2id$v=19$m=65536,t=2,p=1$<salt>$<key>
//
// with salt and key in unpadded standard base64. Parse bounds every
// parameter, so a hash from a configuration file cannot make a check take
// unbounded memory or time.
package phc

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrMalformed is wrapped by every error of Parse.
var ErrMalformed = errors.New("not an argon2id hash like $argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>")

// Bounds Parse enforces.
const (
	MaxMemoryKiB = 1 << 20 // 1 GiB
	MaxTime      = 64
	MinSaltLen   = 8
	MaxSaltLen   = 64
	MinKeyLen    = 16
	MaxKeyLen    = 64
)

// Hash is one argon2id hash and the parameters it was made with.
type Hash struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	Salt      []byte
	Key       []byte
}

// New hashes password with a fresh copy of salt and the parameters of p
// (p's Key only gives the key's length).
func New(password string, salt []byte, p Hash) Hash {
	p.Salt = append([]byte(nil), salt...)
	p.Key = argon2.IDKey([]byte(password), p.Salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(p.Key)))
	return p
}

// Verify reports whether password is the one h was made from, comparing
// the keys in constant time. It costs one argon2id derivation whatever
// the password.
func (h Hash) Verify(password string) bool {
	k := argon2.IDKey([]byte(password), h.Salt, h.Time, h.MemoryKiB, h.Threads, uint32(len(h.Key)))
	return subtle.ConstantTimeCompare(k, h.Key) == 1
}

// String is h in the PHC string format.
func (h Hash) String() string {
	b := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.MemoryKiB, h.Time, h.Threads, b.EncodeToString(h.Salt), b.EncodeToString(h.Key))
}

// Parse reads a hash in the PHC string format. Its errors wrap
// ErrMalformed and say what is wrong.
func Parse(s string) (Hash, error) {
	bad := func(format string, args ...any) (Hash, error) {
		return Hash{}, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return bad("want 5 fields after '$'")
	}
	if f[1] != "argon2id" {
		return bad("the algorithm must be argon2id (got %q)", f[1])
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("the version must be v=%d (got %q)", argon2.Version, f[2])
	}
	var h Hash
	params := strings.Split(f[3], ",")
	if len(params) != 3 {
		return bad("want the parameters m=…,t=…,p=… (got %q)", f[3])
	}
	for i, want := range []string{"m", "t", "p"} {
		k, v, _ := strings.Cut(params[i], "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if k != want || err != nil || v != strconv.FormatUint(n, 10) {
			return bad("want the parameters m=…,t=…,p=… as whole numbers (got %q)", f[3])
		}
		switch want {
		case "m":
			h.MemoryKiB = uint32(n)
		case "t":
			h.Time = uint32(n)
		case "p":
			if n > 255 {
				return bad("p must be between 1 and 255 (got %d)", n)
			}
			h.Threads = uint8(n)
		}
	}
	switch {
	case h.Threads < 1:
		return bad("p must be between 1 and 255 (got %d)", h.Threads)
	case h.Time < 1 || h.Time > MaxTime:
		return bad("t must be between 1 and %d (got %d)", MaxTime, h.Time)
	case h.MemoryKiB < 8*uint32(h.Threads) || h.MemoryKiB > MaxMemoryKiB:
		return bad("m must be between 8×p and %d KiB (got %d)", MaxMemoryKiB, h.MemoryKiB)
	}
	var ok bool
	if h.Salt, ok = decode(f[4]); !ok || len(h.Salt) < MinSaltLen || len(h.Salt) > MaxSaltLen {
		return bad("the salt must be %d to %d bytes in unpadded base64", MinSaltLen, MaxSaltLen)
	}
	if h.Key, ok = decode(f[5]); !ok || len(h.Key) < MinKeyLen || len(h.Key) > MaxKeyLen {
		return bad("the hash must be %d to %d bytes in unpadded base64", MinKeyLen, MaxKeyLen)
	}
	return h, nil
}

// decode reads unpadded standard base64 written one way only: the
// decoder itself skips newlines, which a hash never holds.
func decode(s string) ([]byte, bool) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	return b, err == nil && base64.RawStdEncoding.EncodeToString(b) == s
}
