package config

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"mamoru/console/access/phc"
)

// Console is the [console] table of a manager's file: where `mamoru
// console` listens, its TLS pair and who may log in.
type Console struct {
	// Listen is host:port; DefaultConsoleListen when the file leaves it out.
	Listen string
	// TLSCert and TLSKey are the certificate and key files, resolved
	// against the configuration file's folder; both "" for no TLS.
	TLSCert, TLSKey string
	// Users may log in; none means the console serves this machine only.
	Users []ConsoleUser
}

// ConsoleUser is one [[console.user]] table.
type ConsoleUser struct {
	Name string `toml:"name"`
	// Role is RoleViewer or RoleManager.
	Role string `toml:"role"`
	// PasswordHash is an argon2id hash in the PHC string format, as
	// `mamoru console adduser` writes it.
	PasswordHash string `toml:"password_hash"`
}

// DefaultConsoleListen is where the console listens unless console.listen
// says otherwise: this machine only.
const DefaultConsoleListen = "127.0.0.1:8750"

// The values of console.user's role.
const (
	RoleViewer  = "viewer"  // sees incidents
	RoleManager = "manager" // also reviews, holds, shares, hands over and deletes them
)

var userName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// ValidUserName reports whether s may be a console user's name: 1 to 64
// letters, digits, '.', '_', '-' or '@'.
func ValidUserName(s string) bool { return userName.MatchString(s) }

// consoleFile is the [console] table as written.
type consoleFile struct {
	Listen  string        `toml:"listen"`
	TLSCert string        `toml:"tls_cert"`
	TLSKey  string        `toml:"tls_key"`
	User    []ConsoleUser `toml:"user"`
}

// LoadConsole reads only the [console] table of the file at path, for the
// commands that manage its users and need no bucket. Its errors are
// Errors, each naming the file, line and key.
func LoadConsole(path string) (Console, error) {
	src, err := readConfig(path)
	if err != nil {
		return Console{}, err
	}
	c, errs := parseConsole(path, src)
	if len(errs) > 0 {
		return Console{}, errs
	}
	return c, nil
}

// parseConsole decodes and judges src's [console] table; name is the
// file, whose folder relative TLS paths are resolved against. Other
// tables are not its business; an unknown key inside [console] is an
// error, since a misspelt one would silently leave a default in force.
func parseConsole(name string, src []byte) (Console, Errors) {
	var f struct {
		Console consoleFile `toml:"console"`
	}
	errs, fatal := decodeTable(name, src, &f, "console", func(k []string, row int) *Error {
		key, msg := strings.Join(k, "."), "is not a known key (a [console] table has listen, tls_cert, tls_key and [[console.user]] tables)"
		if len(k) == 3 && k[1] == "user" {
			key = userKey(arrayIndex(src, "console.user", row), k[2])
			msg = "is not a known key (a [[console.user]] has name, role and password_hash)"
		}
		return &Error{File: name, Line: row, Key: key, Msg: msg}
	})
	if fatal {
		return Console{}, errs
	}
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{File: name, Line: lineOf(src, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	c := Console{Listen: f.Console.Listen, Users: f.Console.User}
	if c.Listen == "" {
		c.Listen = DefaultConsoleListen
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil || !validPort(port) {
		bad("console.listen", "must be host:port, like \"127.0.0.1:8750\" or \"192.168.1.20:8750\" (got %q)", c.Listen)
	}
	if (f.Console.TLSCert == "") != (f.Console.TLSKey == "") {
		bad("console.tls_cert", "and 'console.tls_key' go together: set both (the console makes the pair if neither file exists) or neither")
	} else if f.Console.TLSCert != "" {
		c.TLSCert = resolve(name, f.Console.TLSCert)
		c.TLSKey = resolve(name, f.Console.TLSKey)
	}
	seen := map[string]int{} // name, lowercase → its index
	for i, u := range c.Users {
		if !ValidUserName(u.Name) {
			bad(userKey(i, "name"), "must be 1 to 64 letters, digits, '.', '_', '-' or '@' (got %q)", u.Name)
		} else if j, ok := seen[strings.ToLower(u.Name)]; ok {
			bad(userKey(i, "name"), "%q is already the name of console.user[%d] (line %d): a name is one person", u.Name, j+1, lineOf(src, userKey(j, "name")))
		} else {
			seen[strings.ToLower(u.Name)] = i
		}
		if u.Role != RoleViewer && u.Role != RoleManager {
			bad(userKey(i, "role"), "must be %q or %q (got %q)", RoleViewer, RoleManager, u.Role)
		}
		if u.PasswordHash == "" {
			bad(userKey(i, "password_hash"), "is required: set it with 'mamoru console adduser %s'", u.Name)
		} else if _, err := phc.Parse(u.PasswordHash); err != nil {
			bad(userKey(i, "password_hash"), "is %v; set it again with 'mamoru console adduser %s'", err, u.Name)
		}
	}
	return c, errs
}

// userKey names key of the i-th (0-based) [[console.user]] as errors do:
// "console.user[1].role".
func userKey(i int, key string) string { return fmt.Sprintf("console.user[%d].%s", i+1, key) }

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// resolve makes p, a path in the configuration file named name, absolute
// or relative to the working directory, as the file's folder sees it.
func resolve(name, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(name), p)
}
