package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"mamoru/signing"
)

// keyringFile is one [[keyring]] table as written in a manager's file.
type keyringFile struct {
	Store     string `toml:"store"`
	Device    string `toml:"device"`
	PublicKey string `toml:"public_key"`
	// NotBefore is a TOML offset date-time, or a string holding one.
	NotBefore any `toml:"not_before"`
}

// decodeTable decodes src into v for the table of that name alone: other
// tables are not its business, but an unknown key inside it is an error,
// made by unknown from the key's path and line, since a misspelt key would
// silently leave a default in force. fatal is true when src is not TOML
// at all (errs then says where).
func decodeTable(name string, src []byte, v any, table string, unknown func(key []string, row int) *Error) (errs Errors, fatal bool) {
	dec := toml.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil, false
	}
	var strict *toml.StrictMissingError
	if !errors.As(err, &strict) {
		return decodeErrors(name, err), true
	}
	for _, de := range strict.Errors {
		if k := de.Key(); len(k) > 0 && k[0] == table {
			row, _ := de.Position()
			errs = append(errs, unknown(k, row))
		}
	}
	return errs, false
}

// ValidName reports whether s is a well-formed store or device id: it is
// also a safe single element of an object key or a path.
func ValidName(s string) bool { return idPattern.MatchString(s) }

// LoadKeyring reads only the [[keyring]] tables of the file at path, for
// the commands that check a downloaded clip and need no bucket. Its
// errors are Errors, each naming the file, line and key.
func LoadKeyring(path string) (signing.Keyring, error) {
	src, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	k, errs := parseKeyring(path, src)
	if len(errs) > 0 {
		return nil, errs
	}
	return k, nil
}

// parseKeyring decodes and judges src's [[keyring]] tables. Other tables
// are not its business; an unknown key inside a [[keyring]] table is an
// error, since a misspelt not_before would otherwise widen a key's trust
// without a word.
func parseKeyring(name string, src []byte) (signing.Keyring, Errors) {
	var f struct {
		Keyring []keyringFile `toml:"keyring"`
	}
	errs, fatal := decodeTable(name, src, &f, "keyring", func(k []string, row int) *Error {
		return &Error{File: name, Line: row, Key: strings.Join(k, "."), Msg: "is not a known key (a [[keyring]] entry has store, device, public_key and not_before)"}
	})
	if fatal {
		return nil, errs
	}
	var ring signing.Keyring
	seen := map[string]int{} // public key → its entry's line
	for i, kf := range f.Keyring {
		bad := func(key, format string, args ...any) {
			errs = append(errs, &Error{File: name, Line: lineInArray(src, "keyring", i, key), Key: "keyring." + key, Msg: fmt.Sprintf(format, args...)})
		}
		e := signing.KeyringEntry{Store: kf.Store, Device: kf.Device}
		if !ValidName(kf.Store) {
			bad("store", "must be the device's store, 1 to 64 letters, digits, '.', '_' or '-' (got %q)", kf.Store)
		}
		if !ValidName(kf.Device) {
			bad("device", "must be the device's id, 1 to 64 letters, digits, '.', '_' or '-' (got %q)", kf.Device)
		}
		pub, err := signing.ParsePublicKeyText(kf.PublicKey)
		switch {
		case kf.PublicKey == "":
			bad("public_key", "is required: the device's key as 'mamoru provision' printed it")
		case err != nil:
			bad("public_key", "%v", err)
		default:
			e.Key = pub
			if line, ok := seen[string(pub)]; ok {
				bad("public_key", "is already in the keyring (line %d): one key belongs to one device", line)
			}
			seen[string(pub)] = lineInArray(src, "keyring", i, "public_key")
		}
		switch nb := kf.NotBefore.(type) {
		case nil:
		case time.Time: // go-toml gives an offset date-time as a time.Time
			e.NotBefore = nb
		case string:
			t, err := time.Parse(time.RFC3339, nb)
			if err != nil {
				bad("not_before", "must be a time with its offset, like \"2026-12-01T00:00:00+09:00\" (got %q)", nb)
			}
			e.NotBefore = t
		default:
			bad("not_before", "must be a time with its offset, like 2026-12-01T00:00:00+09:00 (got %v)", nb)
		}
		ring = append(ring, e)
	}
	return ring, errs
}

// lineInArray finds the 1-based line of key in the n-th (0-based)
// [[table]] of src, or of that [[table]] header if the key is not in it,
// or 0.
func lineInArray(src []byte, table string, n int, key string) int {
	header, seen := 0, -1
	for i, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			line, _, _ = strings.Cut(line, "#")
			line = strings.TrimSpace(line)
			if seen == n {
				break
			}
			if strings.HasPrefix(line, "[[") && strings.TrimSpace(strings.Trim(line, "[]")) == table {
				seen++
				if seen == n {
					header = i + 1
				}
			}
			continue
		}
		if k, _, ok := strings.Cut(line, "="); ok && seen == n && strings.TrimSpace(k) == key {
			return i + 1
		}
	}
	return header
}

// arrayIndex is the 0-based index of the [[table]] of src that holds the
// 1-based line, or 0 before the first.
func arrayIndex(src []byte, table string, line int) int {
	n := -1
	for i, l := range strings.Split(string(src), "\n") {
		if i+1 > line {
			break
		}
		l, _, _ = strings.Cut(strings.TrimSpace(l), "#")
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[[") && strings.TrimSpace(strings.Trim(l, "[]")) == table {
			n++
		}
	}
	return max(n, 0)
}
