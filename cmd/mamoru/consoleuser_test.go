package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mamoru/config"
	"mamoru/console/access/phc"
)

// managerFile is a manager's configuration with comments and other tables
// that adduser must leave as they are.
const managerFile = `# The shop's manager configuration.
[device]
timezone = "Asia/Tokyo"     # only to show times in

[storage]
endpoint = "s3.example.com"
bucket = "mamoru-clips"

[[keyring]]
store = "shibuya-1"
device = "counter-1"
public_key = "mamoru-ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="

[console]
listen = "127.0.0.1:8750"   # this PC only

[alerts]
console_url = "https://console.example.com"`

var managerEnv = []string{config.EnvAccessKey + "=a", config.EnvSecretKey + "=s"}

func addUser(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = consoleAddUser(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func consoleConfigFile(t *testing.T, src string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manager.toml")
	if err := os.WriteFile(path, []byte(src), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkUsers loads path as the console does and checks its users: each
// name with its role and the password its hash verifies.
func checkUsers(t *testing.T, path string, want ...[3]string) {
	t.Helper()
	mc, err := config.LoadManager(path, managerEnv)
	if err != nil {
		t.Fatalf("the file does not load any more: %v", err)
	}
	if len(mc.Console.Users) != len(want) {
		t.Fatalf("users %+v; want %v", mc.Console.Users, want)
	}
	for i, u := range mc.Console.Users {
		h, err := phc.Parse(u.PasswordHash)
		if u.Name != want[i][0] || u.Role != want[i][1] || err != nil || !h.Verify(want[i][2]) {
			t.Errorf("user %d = %+v (%v); want %s, %s, with password %q", i+1, u, err, want[i][0], want[i][1], want[i][2])
		}
	}
}

func TestConsoleAddUser(t *testing.T) {
	path := consoleConfigFile(t, managerFile, 0o640)
	code, out, errOut := addUser(t, "first password\n", "sato", "--role", "manager", "--config", path, "--password-stdin")
	if code != 0 || !strings.Contains(out, "added sato (manager) to "+path) || !strings.Contains(out, "restart") {
		t.Fatalf("adduser = %d, %q, %q; want it to say it added sato and that a running console must restart", code, out, errOut)
	}
	checkUsers(t, path, [3]string{"sato", "manager", "first password"})
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), managerFile+"\n") {
		t.Errorf("the file's own lines changed:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v after adduser; want 0640 kept", fi.Mode().Perm())
	}

	// A second user (no newline after the password: the last line of a
	// script's stdin), then a new password and role for the first.
	if code, _, errOut := addUser(t, "viewer password", "--config", path, "tanaka", "--role=viewer", "--password-stdin"); code != 0 {
		t.Fatalf("adding tanaka = %d, %s", code, errOut)
	}
	before, _ := os.ReadFile(path)
	code, out, errOut = addUser(t, "second password\n", "sato", "--role", "viewer", "--config", path, "--password-stdin")
	if code != 0 || !strings.Contains(out, "password changed for sato, and role manager → viewer") {
		t.Fatalf("adduser of sato again = %d, %q, %q; want the password and role changed", code, out, errOut)
	}
	checkUsers(t, path, [3]string{"sato", "viewer", "second password"}, [3]string{"tanaka", "viewer", "viewer password"})
	after, _ := os.ReadFile(path)
	if changed := diffLines(string(before), string(after)); len(changed) != 2 ||
		!strings.HasPrefix(changed[0], `role = "viewer"`) || !strings.HasPrefix(changed[1], `password_hash = "$argon2id$`) {
		t.Errorf("changed lines %q; want only sato's role and password_hash", changed)
	}

	code, out, _ = addUser(t, "third password\n", "tanaka", "--config", path, "--password-stdin")
	if code != 0 || !strings.Contains(out, "password changed for tanaka in") {
		t.Errorf("adduser of tanaka without --role = %d, %q; want the password changed, the role kept", code, out)
	}
	checkUsers(t, path, [3]string{"sato", "viewer", "second password"}, [3]string{"tanaka", "viewer", "third password"})
}

// diffLines returns the lines of b that differ from a's, which must have
// as many lines.
func diffLines(a, b string) []string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(al) != len(bl) {
		return []string{"line counts differ"}
	}
	var out []string
	for i := range al {
		if al[i] != bl[i] {
			out = append(out, bl[i])
		}
	}
	return out
}

func TestConsoleAddUserRefuses(t *testing.T) {
	withSato := managerFile + "\n[[console.user]]\nname = \"sato\"\nrole = \"manager\"\npassword_hash = \"" +
		phc.New("pw", []byte("saltsaltsalt"), phc.Hash{MemoryKiB: 64, Time: 1, Threads: 1, Key: make([]byte, 32)}).String() + "\"\n"
	for _, tc := range []struct {
		name  string
		src   string // the file; "" for none
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"no name", managerFile, "long enough pw\n", []string{"--role", "viewer", "--password-stdin"}, 2, "give one NAME"},
		{"two names", managerFile, "long enough pw\n", []string{"a", "b", "--role", "viewer", "--password-stdin"}, 2, "give one NAME (got 2)"},
		{"a name with a space", managerFile, "long enough pw\n", []string{"sato san", "--role", "viewer", "--password-stdin"}, 2, `"sato san" is not a user name`},
		{"a name with a quote", managerFile, "long enough pw\n", []string{`sato"`, "--role", "viewer", "--password-stdin"}, 2, "is not a user name"},
		{"unknown role", managerFile, "long enough pw\n", []string{"sato", "--role", "admin", "--password-stdin"}, 2, `--role must be "viewer" or "manager" (got "admin")`},
		{"no role for a new user", managerFile, "long enough pw\n", []string{"sato", "--password-stdin"}, 2, "--role viewer or --role manager is required"},
		{"no config", "", "long enough pw\n", []string{"sato", "--role", "viewer", "--password-stdin"}, 2, "does not exist"},
		{"a broken config", managerFile + "\n[console]\nlisten = 8750\n", "long enough pw\n", []string{"sato", "--role", "viewer", "--password-stdin"}, 2, "fix them first"},
		{"a name in another case", withSato, "long enough pw\n", []string{"Sato", "--role", "viewer", "--password-stdin"}, 2, `"Sato" is already a user, spelt "sato"`},
		{"a short password", managerFile, "123456789\n", []string{"sato", "--role", "viewer", "--password-stdin"}, 1, "at least 10 characters (got 9)"},
		{"no password", managerFile, "", []string{"sato", "--role", "viewer", "--password-stdin"}, 1, "no password on stdin"},
		{"no terminal", managerFile, "long enough pw\n", []string{"sato", "--role", "viewer"}, 1, "give --password-stdin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "manager.toml")
			if tc.src != "" {
				path = consoleConfigFile(t, tc.src, 0o600)
			}
			code, out, errOut := addUser(t, tc.stdin, append(tc.args, "--config", path)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("adduser = %d, %q, %q; want %d saying %q", code, out, errOut, tc.code, tc.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.src {
				t.Errorf("the file changed:\n%s", b)
			}
		})
	}
}

// replaceUser changes the role and hash of the one user asked, whatever
// the spacing, comments or tables around it, and refuses a table it
// cannot read as key = value lines.
func TestReplaceUser(t *testing.T) {
	src := "[[console.user]]\nname = \"a\"\nrole = \"viewer\"\npassword_hash = \"old-a\"\n\n" +
		"[[console.user]] # the second\n  name = \"b\"\r\n  \"role\"=\"viewer\"\r\n  password_hash = \"old-b\" # set 2026-11-01\r\n[alerts]\nrole = \"x\"\n"
	got, err := replaceUser([]byte(src), 1, "manager", "new-b")
	want := "[[console.user]]\nname = \"a\"\nrole = \"viewer\"\npassword_hash = \"old-a\"\n\n" +
		"[[console.user]] # the second\n  name = \"b\"\r\n  role = \"manager\"\r\n  password_hash = \"new-b\"\r\n[alerts]\nrole = \"x\"\n"
	if err != nil || string(got) != want {
		t.Errorf("replaceUser = %v\n%q\nwant\n%q", err, got, want)
	}
	if _, err := replaceUser([]byte("console.user = [{name = \"a\", role = \"viewer\", password_hash = \"h\"}]\n"), 0, "manager", "h2"); err == nil || !strings.Contains(err.Error(), "change them by hand") {
		t.Errorf("replaceUser of an inline table = %v; want a refusal saying to edit by hand", err)
	}
}
