package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"mamoru/atomicfile"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"mamoru/config"
	"mamoru/console/access"
)

const consoleAddUserHelp = `Usage: mamoru console adduser NAME --role viewer|manager --config FILE [--password-stdin]

Adds a user who may log in to the managers' console, as a [[console.user]]
table at the end of FILE, or, if NAME is a user already, sets a new
password (and, with --role, a new role) in that user's table, leaving every
other line of FILE as it was. It asks for the password twice without
showing it, or with --password-stdin reads one line from stdin, for
scripts. A password has at least 10 characters. A viewer sees incidents; a
manager may also review, hold, share, hand over and delete them. NAME is 1
to 64 letters, digits, '.', '_', '-' or '@'. A running console reads its
users when it starts: restart it to let the change in.`

// consoleAddUser is 'mamoru console adduser': see consoleAddUserHelp. It
// exits 2 for a mistake in the command or the file, 1 when it cannot
// hash or write.
func consoleAddUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("console adduser", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprintf(stderr, "%s\nOptions:\n", consoleAddUserHelp)
		flags.PrintDefaults()
	}
	path := flags.String("config", "", "the manager's configuration `file` to add the user to")
	role := flags.String("role", "", "`viewer` or manager (needed for a new user; an existing user keeps theirs without it)")
	fromStdin := flags.Bool("password-stdin", false, "read the password from the first line of stdin instead of asking")
	rest, err := parseArgs(flags, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mamoru console adduser: "+format+"\n", a...)
		return 2
	}
	switch {
	case len(rest) != 1:
		return usage("give one NAME (got %d): mamoru console adduser NAME --role viewer|manager --config FILE", len(rest))
	case !config.ValidUserName(rest[0]):
		return usage("%q is not a user name: 1 to 64 letters, digits, '.', '_', '-' or '@'", rest[0])
	case *role != "" && *role != config.RoleViewer && *role != config.RoleManager:
		return usage("--role must be %q or %q (got %q)", config.RoleViewer, config.RoleManager, *role)
	case *path == "":
		return usage("--config FILE is required: the manager's configuration the console reads")
	}
	name := rest[0]
	file, err := filepath.EvalSymlinks(*path)
	if errors.Is(err, fs.ErrNotExist) {
		return usage("%s does not exist: give the manager's configuration file (docs/manager.example.toml shows one)", *path)
	} else if err != nil {
		return usage("%v", err)
	}
	c, err := config.LoadConsole(file)
	if err != nil {
		return usage("the configuration has mistakes; fix them first:\n%v", err)
	}
	existing := -1
	for i, u := range c.Users {
		if u.Name == name {
			existing = i
		} else if strings.EqualFold(u.Name, name) {
			return usage("%q is already a user, spelt %q: a name is one person, whatever its case", name, u.Name)
		}
	}
	if existing < 0 && *role == "" {
		return usage("--role viewer or --role manager is required for a new user")
	}

	pw, err := readPassword(stdin, stderr, name, *fromStdin)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru console adduser: %v\n", err)
		return 1
	}
	hash, err := access.HashPassword(pw)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru console adduser: %v\n", err)
		return 1
	}
	src, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru console adduser: %v\n", err)
		return 1
	}
	var out []byte
	var did string
	if existing < 0 {
		out = appendUser(src, config.ConsoleUser{Name: name, Role: *role, PasswordHash: hash})
		did = fmt.Sprintf("added %s (%s) to %s", name, *role, *path)
	} else {
		newRole := *role
		if newRole == "" {
			newRole = c.Users[existing].Role
		}
		if out, err = replaceUser(src, existing, newRole, hash); err != nil {
			fmt.Fprintf(stderr, "mamoru console adduser: %s: %v\n", *path, err)
			return 1
		}
		did = fmt.Sprintf("password changed for %s", name)
		if newRole != c.Users[existing].Role {
			did += fmt.Sprintf(", and role %s → %s", c.Users[existing].Role, newRole)
		}
		did += " in " + *path
	}
	if ctx.Err() != nil {
		return 1
	}
	if err := rewrite(file, out, func(tmp string) error { return hasUser(tmp, name, hash) }); err != nil {
		fmt.Fprintf(stderr, "mamoru console adduser: %v; %s is unchanged\n", err, *path)
		return 1
	}
	fmt.Fprintln(stdout, did)
	fmt.Fprintln(stdout, "A running 'mamoru console' reads its users when it starts: restart it to let this change in.")
	return 0
}

// readPassword reads the password: one line of stdin if fromStdin, else
// twice from the terminal without echo, prompting on prompt.
func readPassword(stdin io.Reader, prompt io.Writer, name string, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			return "", fmt.Errorf("--password-stdin: no password on stdin")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("stdin is not a terminal to ask for the password on: give --password-stdin to read it from stdin")
	}
	fmt.Fprintf(prompt, "Password for %s (%d characters or more): ", name, access.MinPasswordLen)
	a, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	fmt.Fprint(prompt, "The same password again: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return string(a), nil
}

// appendUser returns src with a [[console.user]] table for u at its end.
func appendUser(src []byte, u config.ConsoleUser) []byte {
	out := append([]byte(nil), src...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return fmt.Appendf(out, "\n[[console.user]]\nname = %q\nrole = %q\npassword_hash = %q\n", u.Name, u.Role, u.PasswordHash)
}

// replaceUser returns src with the role and password_hash lines of its
// n-th (0-based) [[console.user]] table replaced, every other line as it
// was.
func replaceUser(src []byte, n int, role, hash string) ([]byte, error) {
	lines := strings.SplitAfter(string(src), "\n")
	seen, done := -1, map[string]bool{}
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			header, _, _ := strings.Cut(t, "#")
			if strings.TrimSpace(header) == "[[console.user]]" {
				seen++
			} else if seen == n {
				break
			}
			continue
		}
		key, _, ok := strings.Cut(t, "=")
		key = strings.Trim(strings.TrimSpace(key), `"'`)
		if seen != n || !ok || (key != "role" && key != "password_hash") {
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		value := hash
		if key == "role" {
			value = role
		}
		lines[i] = fmt.Sprintf("%s%s = %q%s", indent, key, value, line[len(strings.TrimRight(line, "\r\n")):])
		done[key] = true
	}
	if !done["role"] || !done["password_hash"] {
		return nil, fmt.Errorf("cannot find the role and password_hash lines of console.user[%d] as 'key = value' under its [[console.user]] header: change them by hand", n+1)
	}
	return []byte(strings.Join(lines, "")), nil
}

// hasUser checks that the configuration at path loads and holds the user
// name with hash.
func hasUser(path, name, hash string) error {
	c, err := config.LoadConsole(path)
	if err != nil {
		return fmt.Errorf("the changed file would not load:\n%v", err)
	}
	for _, u := range c.Users {
		if u.Name == name && u.PasswordHash == hash {
			return nil
		}
	}
	return fmt.Errorf("the changed file does not hold %s's new password", name)
}

// rewrite replaces the file at path with data, keeping its mode: through
// a temporary file in the same folder, synced and passed by check before
// it is renamed into place, so path holds the old or the new bytes and
// never ones check refused.
func rewrite(path string, data []byte, check func(tmp string) error) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, atomicfile.Options{Mode: fi.Mode().Perm(), Check: check})
}
