package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mamoru/console/access/phc"
)

// hashOf is a well-formed hash of pw, with parameters cheap enough for a
// test.
func hashOf(pw string) string {
	return phc.New(pw, []byte("saltsaltsalt"), phc.Hash{MemoryKiB: 64, Time: 1, Threads: 1, Key: make([]byte, 32)}).String()
}

// A manager's [console]: the TLS pair found beside the file, the users
// as written, and listen defaulting to this machine only.
func TestConsoleUsers(t *testing.T) {
	h := hashOf("correct horse battery")
	path := writeFile(t, managerStorage+`[console]
listen = "192.168.1.20:8750"
tls_cert = "console-tls.crt"
tls_key = "/etc/mamoru/console-tls.key"

[[console.user]]
name = "sato"
role = "manager"
password_hash = "`+h+`"

[[console.user]] # the part-timer
name = "tanaka@shop-1"
role = "viewer"
password_hash = "`+h+`"
`)
	mc, err := LoadManager(path, []string{EnvAccessKey + "=a", EnvSecretKey + "=s"})
	if err != nil {
		t.Fatal(err)
	}
	want := Console{
		Listen:  "192.168.1.20:8750",
		TLSCert: filepath.Join(filepath.Dir(path), "console-tls.crt"),
		TLSKey:  "/etc/mamoru/console-tls.key",
		Users:   []ConsoleUser{{"sato", RoleManager, h}, {"tanaka@shop-1", RoleViewer, h}},
	}
	if !reflect.DeepEqual(mc.Console, want) {
		t.Errorf("Console = %+v\nwant %+v", mc.Console, want)
	}
	if c, err := LoadConsole(path); err != nil || !reflect.DeepEqual(c, want) {
		t.Errorf("LoadConsole = %+v, %v; want %+v", c, err, want)
	}

	c, err := LoadConsole(writeFile(t, managerStorage))
	if err != nil || !reflect.DeepEqual(c, Console{Listen: DefaultConsoleListen}) {
		t.Errorf("LoadConsole of a file without [console] = %+v, %v; want only the default listen address", c, err)
	}
}

// Every mistake in [console] is named by file, line and key, all at
// once, by LoadConsole and LoadManager alike.
func TestConsoleErrors(t *testing.T) {
	h := hashOf("correct horse battery")
	user := func(name, role, hash string) string {
		return "[[console.user]]\nname = \"" + name + "\"\nrole = \"" + role + "\"\npassword_hash = \"" + hash + "\"\n"
	}
	// managerStorage is 4 lines; the tested part starts on line 5.
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"bad listen", "[console]\nlisten = \"8750\"\n", []string{"m.toml:6: 'console.listen' must be host:port"}},
		{"port out of range", "[console]\nlisten = \":70000\"\n", []string{"m.toml:6: 'console.listen' must be host:port"}},
		{"cert without key", "[console]\ntls_cert = \"c.crt\"\n", []string{"m.toml:6: 'console.tls_cert' and 'console.tls_key' go together"}},
		{"unknown console key", "[console]\nlisten = \"127.0.0.1:1\"\nport = 8750\n", []string{"m.toml:7: 'console.port' is not a known key"}},
		{"unknown user key", user("sato", "manager", h) + user("suzuki", "viewer", h) + "password = \"x\"\n", []string{"m.toml:13: 'console.user[2].password' is not a known key (a [[console.user]] has name, role and password_hash)"}},
		{"bad role", user("sato", "manager", h) + user("suzuki", "admin", h), []string{`m.toml:11: 'console.user[2].role' must be "viewer" or "manager" (got "admin")`}},
		{"bad name", user("sato san", "manager", h), []string{`m.toml:6: 'console.user[1].name' must be 1 to 64 letters`}},
		{"long name", user(strings.Repeat("a", 65), "manager", h), []string{`m.toml:6: 'console.user[1].name' must be 1 to 64`}},
		{"duplicate name", user("sato", "manager", h) + user("Sato", "viewer", h), []string{`m.toml:10: 'console.user[2].name' "Sato" is already the name of console.user[1] (line 6)`}},
		{"malformed hash", user("sato", "manager", "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$abc"), []string{`m.toml:8: 'console.user[1].password_hash' is not an argon2id hash`, "mamoru console adduser sato"}},
		{"no hash", "[[console.user]]\nname = \"sato\"\nrole = \"viewer\"\n", []string{`m.toml:5: 'console.user[1].password_hash' is required`}},
		{"all at once", "[console]\nlisten = \"x\"\n" + user("", "boss", "plain"), []string{
			"m.toml:6: 'console.listen'", "m.toml:8: 'console.user[1].name'", "m.toml:9: 'console.user[1].role'", "m.toml:10: 'console.user[1].password_hash'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, managerStorage+tc.src)
			_, cerr := LoadConsole(path)
			_, merr := LoadManager(path, []string{EnvAccessKey + "=a", EnvSecretKey + "=s"})
			for _, err := range []error{cerr, merr} {
				if err == nil {
					t.Fatalf("loaded; want %q", tc.want)
				}
				for _, w := range tc.want {
					if strings.HasPrefix(w, "m.toml:") {
						w = filepath.Join(filepath.Dir(path), w)
					}
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error:\n%v\nwant it to say %q", err, w)
					}
				}
			}
		})
	}
}

// A device's own file refuses a [console] table as it refuses
// [[keyring]]: the console runs on a manager's machine, and a key the
// device ignored would look like a setting that works.
func TestDeviceRefusesConsole(t *testing.T) {
	_, err := Parse("d.toml", []byte(minimal+"[console]\nlisten = \"127.0.0.1:8750\"\n[[console.user]]\nname = \"sato\"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "d.toml:6: 'console' is not a known key") {
		t.Errorf("Parse of a device's file with [console] = %v; want it refused, naming line 6", err)
	}
}
