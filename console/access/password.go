package access

import (
	"crypto/rand"
	"errors"
	"fmt"
	"unicode/utf8"

	"mamoru/console/access/phc"
)

// MinPasswordLen is the fewest characters HashPassword accepts.
const MinPasswordLen = 10

// ErrPasswordTooShort is wrapped by HashPassword's error for a password
// shorter than MinPasswordLen characters.
var ErrPasswordTooShort = errors.New("access: a password must be at least 10 characters")

// params are the argon2id parameters of HashPassword: 64 MiB, 2 passes,
// 1 lane, a 16-byte salt and a 32-byte key. One check took 72 ms on a
// 2-core 2026 machine: nothing for a person logging in, and the 64 MiB
// make a guessing machine's memory, not its speed, the limit.
var params = phc.Hash{MemoryKiB: 64 << 10, Time: 2, Threads: 1, Key: make([]byte, 32)}

// HashPassword returns an argon2id hash of pw with a fresh random salt,
// in the PHC string format config.ConsoleUser.PasswordHash holds. It
// refuses a password shorter than MinPasswordLen characters.
func HashPassword(pw string) (string, error) {
	if n := utf8.RuneCountInString(pw); n < MinPasswordLen {
		return "", fmt.Errorf("%w (got %d)", ErrPasswordTooShort, n)
	}
	salt := make([]byte, 16)
	rand.Read(salt) // never returns an error
	return phc.New(pw, salt, params).String(), nil
}
