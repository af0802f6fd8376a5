package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// siteConfig is a device's configuration naming every kind of key file at
// its device path: storage keys, a signing key, a webhook's secret, an
// ntfy token, a mail password and a CA shared by two targets.
const siteConfig = minimal + `signing_key_file = "/etc/mamoru/signing.key"
[storage]
endpoint = "s3.example.com"
bucket = "clips"
access_key_file = "/etc/mamoru/s3-access-key"
secret_key_file = "/etc/mamoru/s3-secret-key"
[[alerts.target]]
kind = "webhook"
label = "本部"
url = "https://hooks.example.com/T0/B0/tok3n"
secret_file = "/etc/mamoru/webhook.secret"
ca_file = "/etc/mamoru/nas-ca.pem"
[[alerts.target]]
kind = "ntfy"
label = "店長のスマホ"
topic = "shop1-Zq8rT2kd7VwX"
token_file = "/etc/mamoru/ntfy.token"
[[alerts.target]]
kind = "email"
label = "本部のメール"
url = "smtps://nas.local:465"
username = "mamoru"
password_file = "/etc/mamoru/smtp.password"
ca_file = "/etc/mamoru/nas-ca.pem"
from = "mamoru@shop.example.jp"
to = ["manager@shop.example.jp"]
`

// lineWith is the 1-based line of src that holds s.
func lineWith(t *testing.T, src, s string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("no line holds %q", s)
	return 0
}

// KeyFiles lists what an installer carries to the device, each path once,
// without the signing key, which the device makes; and refuses a path the
// installer's tools cannot carry under its base name, naming key and line.
func TestKeyFiles(t *testing.T) {
	c, err := Parse("m.toml", []byte(siteConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.KeyFiles()
	want := []KeyFile{
		{Key: "storage.access_key_file", Path: "/etc/mamoru/s3-access-key", Secret: true},
		{Key: "storage.secret_key_file", Path: "/etc/mamoru/s3-secret-key", Secret: true},
		{Key: "alerts.target[1].secret_file", Path: "/etc/mamoru/webhook.secret", Secret: true},
		{Key: "alerts.target[1].ca_file", Path: "/etc/mamoru/nas-ca.pem"},
		{Key: "alerts.target[2].token_file", Path: "/etc/mamoru/ntfy.token", Secret: true},
		{Key: "alerts.target[3].password_file", Path: "/etc/mamoru/smtp.password", Secret: true},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("KeyFiles() = %+v, %v\nwant %+v", got, err, want)
	}

	for _, tc := range []struct {
		name, from, to string
		want           string
	}{
		{"relative", `"/etc/mamoru/ntfy.token"`, `"ntfy.token"`,
			`'alerts.target[2].token_file' must be the absolute path of a file, with no '.', '..' or trailing '/' in it, like "/etc/mamoru/ntfy.token" (got "ntfy.token")`},
		{"dot dot", `"/etc/mamoru/ntfy.token"`, `"/etc/mamoru/../shadow"`,
			`'alerts.target[2].token_file' must be the absolute path of a file, with no '.', '..' or trailing '/' in it, like "/etc/mamoru/shadow" (got "/etc/mamoru/../shadow")`},
		{"control character", `"/etc/mamoru/ntfy.token"`, `"/etc/mamoru/ntfy\ntoken"`,
			`'alerts.target[2].token_file' holds a control character ("/etc/mamoru/ntfy\ntoken"): the installer's tools read the key files' paths one a line`},
		{"the signing key's name", `"/etc/mamoru/ntfy.token"`, `"/etc/mamoru/signing.key"`,
			`'alerts.target[2].token_file' "/etc/mamoru/signing.key" has the base name "signing.key" of 'device.signing_key_file' ("/etc/mamoru/signing.key")`},
		{"one base name twice", `"/etc/mamoru/smtp.password"`, `"/etc/mail/ntfy.token"`,
			`'alerts.target[3].password_file' "/etc/mail/ntfy.token" has the base name "ntfy.token" of 'alerts.target[2].token_file' ("/etc/mamoru/ntfy.token")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(siteConfig, tc.from, tc.to, 1)
			c, err := Parse("m.toml", []byte(src), nil)
			if err != nil {
				t.Fatal(err)
			}
			files, err := c.KeyFiles()
			key := strings.SplitN(tc.want, "'", 3)[1] // the key at fault
			wantLine := lineWith(t, src, key[strings.LastIndex(key, ".")+1:]+" = "+tc.to)
			if files != nil || err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("m.toml:%d: %s", wantLine, tc.want)) {
				t.Errorf("KeyFiles() = %+v, %v\nwant the error m.toml:%d: %s", files, err, wantLine, tc.want)
			}
		})
	}
}

// LoadWith with a KeyDir reads every key file from there, by its base
// name, held to the same mode and content as on the device; it does not
// ask for the signing key, which the device makes; and each error names
// the key, its line and the file it looked for.
func TestLoadWithKeyDir(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	site := t.TempDir()
	config := filepath.Join(site, "mamoru.toml")
	good := map[string]string{
		"s3-access-key":   "AKIA\n",
		"s3-secret-key":   "s3cr3t\n",
		"webhook.secret":  "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
		"ntfy.token":      "tk_ntfyt0ken\n",
		"smtp.password":   "pa55word\n",
		"nas-ca.pem":      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
		"unrelated.token": "not named by the configuration",
	}
	write := func(files map[string]string) {
		t.Helper()
		ents, _ := os.ReadDir(site)
		for _, e := range ents {
			os.Remove(filepath.Join(site, e.Name()))
		}
		if err := os.WriteFile(config, []byte(siteConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, text := range files {
			mode := os.FileMode(0o600)
			if strings.HasSuffix(name, ".pem") {
				mode = 0o644
			}
			if err := os.WriteFile(filepath.Join(site, name), []byte(text), mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(good)
	c, err := LoadWith(config, nil, LoadOptions{KeyDir: site})
	if err != nil {
		t.Fatalf("LoadWith(KeyDir) of a complete site: %v", err)
	}
	ts := c.Alerts.Targets
	if c.Storage.AccessKey.Reveal() != "AKIA" || c.Storage.SecretKey.Reveal() != "s3cr3t" || len(ts[0].WebhookKey()) != 24 ||
		ts[1].Token.Reveal() != "tk_ntfyt0ken" || ts[2].Password.Reveal() != "pa55word" || ts[0].RootCAs == nil || ts[2].RootCAs == nil {
		t.Errorf("LoadWith(KeyDir) read access %q, secret %q, webhook key of %d bytes, token %q, password %q, CAs %v %v",
			c.Storage.AccessKey.Reveal(), c.Storage.SecretKey.Reveal(), len(ts[0].WebhookKey()), ts[1].Token.Reveal(), ts[2].Password.Reveal(), ts[0].RootCAs != nil, ts[2].RootCAs != nil)
	}
	if _, err := srv.Certificate().Verify(x509.VerifyOptions{Roots: ts[0].RootCAs, DNSName: "example.com"}); err != nil {
		t.Errorf("the CA read from the key directory does not verify its server: %v", err)
	}
	if c.Device.SigningKey.Valid() {
		t.Error("LoadWith(KeyDir) read a signing key; the device makes its own")
	}
	// Without KeyDir, the same configuration wants its files at their
	// device paths, which this machine does not have.
	if _, err := LoadWithSecrets(config, nil); err == nil || !strings.Contains(err.Error(), "'device.signing_key_file' cannot be read") {
		t.Errorf("LoadWithSecrets of the site's configuration = %v; want the device paths missing", err)
	}

	line := func(s string) int { return lineWith(t, siteConfig, s) }
	for _, tc := range []struct {
		name     string
		change   func(map[string]string)
		loose    string   // a file made readable by others
		want     []string // each error line, in order
		notExist bool
	}{
		{name: "token missing", change: func(m map[string]string) { delete(m, "ntfy.token") }, notExist: true,
			want: []string{fmt.Sprintf("%s:%d: 'alerts.target[2].token_file' cannot be read from %s (the file for /etc/mamoru/ntfy.token on the device): no such file or directory",
				config, line("token_file"), filepath.Join(site, "ntfy.token"))}},
		{name: "storage key and CA missing", change: func(m map[string]string) { delete(m, "s3-secret-key"); delete(m, "nas-ca.pem") }, notExist: true,
			want: []string{
				fmt.Sprintf("%s:%d: 'storage.secret_key_file' cannot be read from %s (the file for /etc/mamoru/s3-secret-key on the device): no such file or directory", config, line("secret_key_file"), filepath.Join(site, "s3-secret-key")),
				fmt.Sprintf("%s:%d: 'alerts.target[1].ca_file' cannot be used: open %s: no such file or directory", config, line("ca_file"), filepath.Join(site, "nas-ca.pem")),
				fmt.Sprintf("%s:%d: 'alerts.target[3].ca_file' cannot be used: open %s: no such file or directory", config, line("smtp.password")+1, filepath.Join(site, "nas-ca.pem")),
			}},
		{name: "password readable by others", loose: "smtp.password",
			want: []string{fmt.Sprintf("%s:%d: 'alerts.target[3].password_file' %s must have mode 0600 or 0400 so only its owner can read it (it has 0644); run: chmod 600 %[3]s",
				config, line("password_file"), filepath.Join(site, "smtp.password"))}},
		{name: "webhook secret not whsec_", change: func(m map[string]string) { m["webhook.secret"] = "hunter2\n" },
			want: []string{fmt.Sprintf("%s:%d: 'alerts.target[1].secret_file' %s must hold a Standard Webhooks secret", config, line("secret_file"), filepath.Join(site, "webhook.secret"))}},
		{name: "token empty", change: func(m map[string]string) { m["ntfy.token"] = "\n" },
			want: []string{fmt.Sprintf("%s:%d: 'alerts.target[2].token_file' %s is empty", config, line("token_file"), filepath.Join(site, "ntfy.token"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range good {
				files[k] = v
			}
			if tc.change != nil {
				tc.change(files)
			}
			write(files)
			if tc.loose != "" {
				os.Chmod(filepath.Join(site, tc.loose), 0o644)
			}
			_, err := LoadWith(config, nil, LoadOptions{KeyDir: site})
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("LoadWith(KeyDir): got\n%v\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d: got\n%s\nwant it to start\n%s", i+1, got[i], tc.want[i])
				}
			}
			if is := errors.Is(err, fs.ErrNotExist); is != tc.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", is, tc.notExist)
			}
		})
	}

	// The paths KeyFiles refuses are refused here too.
	if err := os.WriteFile(config, []byte(strings.Replace(siteConfig, `"/etc/mamoru/smtp.password"`, `"/etc/mail/ntfy.token"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWith(config, nil, LoadOptions{KeyDir: site}); err == nil || !strings.Contains(err.Error(), `has the base name "ntfy.token"`) {
		t.Errorf("LoadWith(KeyDir) with two files of one base name = %v; want it refused", err)
	}
}
