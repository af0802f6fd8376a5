package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func keyFile(t *testing.T, mode os.FileMode, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStorageCredentials(t *testing.T) {
	good := keyFile(t, 0o600, "AKIA-device\n")
	secret := keyFile(t, 0o600, "s3cr3t\n")
	loose := keyFile(t, 0o644, "s3cr3t\n")
	storage := func(access, secret string) string {
		return minimal + fmt.Sprintf("[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\naccess_key_file = %q\nsecret_key_file = %q\n", access, secret)
	}
	c, err := Parse("m.toml", []byte(storage(good, secret)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.AccessKey != "" || c.Storage.SecretKey != "" {
		t.Errorf("Parse read the key files; only LoadSecrets may")
	}
	if err := c.LoadSecrets(nil); err != nil {
		t.Fatal(err)
	}
	if c.Storage.AccessKey.Reveal() != "AKIA-device" || c.Storage.SecretKey.Reveal() != "s3cr3t" {
		t.Errorf("keys read as %q, %q", c.Storage.AccessKey.Reveal(), c.Storage.SecretKey.Reveal())
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, "s3cr3t") {
		t.Errorf("printing the configuration shows the secret: %s", s)
	}

	c, err = Parse("m.toml", []byte(storage(good, loose)), nil)
	if err != nil {
		t.Fatalf("Parse of a configuration naming a key file readable by others: %v; want no error until LoadSecrets", err)
	}
	err = c.LoadSecrets(nil)
	if err == nil || !strings.Contains(err.Error(), "m.toml:10: 'storage.secret_key_file'") || !strings.Contains(err.Error(), "mode 0600") {
		t.Errorf("a key file readable by others: %v; want an error naming storage.secret_key_file, its line and mode 0600", err)
	}

	env := []string{EnvAccessKey + "=from-env", EnvSecretKey + "=env-secret"}
	c, err = Parse("m.toml", []byte(minimal+"[storage]\nendpoint = \"s3.example.com:9000\"\nbucket = \"clips\"\n"), env)
	if err == nil {
		err = c.LoadSecrets(env)
	}
	if err != nil || c.Storage.AccessKey.Reveal() != "from-env" || c.Storage.SecretKey.Reveal() != "env-secret" {
		t.Errorf("keys from the environment: %v, %q", err, c.Storage.AccessKey.Reveal())
	}
	c, err = Parse("m.toml", []byte(minimal+"[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\n"), nil)
	if err != nil {
		t.Fatalf("Parse with no keys at all: %v; want no error until LoadSecrets", err)
	}
	if err := c.LoadSecrets(nil); err == nil || !strings.Contains(err.Error(), EnvAccessKey) {
		t.Errorf("no keys at all: %v; want an error naming where keys come from", err)
	}
}

func TestStorageErrors(t *testing.T) {
	env := []string{EnvAccessKey + "=a", EnvSecretKey + "=b"}
	for _, tc := range []struct{ src, want string }{
		{"[storage]\nendpoint = \"https://s3.example.com\"\nbucket = \"clips\"\n", "m.toml:7: 'storage.endpoint' must be host or host:port without a scheme"},
		{"[storage]\nendpoint = \"s3.example.com\"\nbucket = \"Clips_2026\"\n", "m.toml:8: 'storage.bucket' must be an S3 bucket name"},
		{"[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\npart_size_mb = 1\n", "m.toml:9: 'storage.part_size_mb' must be between 5 and 5120 (got 1)"},
		{"[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\nprefix = \"/x/\"\n", "m.toml:9: 'storage.prefix' must not start or end with '/'"},
		{"[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\nprefix = \"shop-*\"\n", "m.toml:9: 'storage.prefix' may hold only letters, digits, '-', '_', '.' and '/' (no IAM wildcard"},
		{"[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\nprefix = \"shop-?\"\n", "m.toml:9: 'storage.prefix' may hold only"},
		{"[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\nprefix = \"${aws:username}\"\n", "m.toml:9: 'storage.prefix' may hold only"},
		{"[storage]\nendpoint = \"127.0.0.1:9000\"\nbucket = \"clips\"\nsecure = false\nca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n",
			"m.toml:10: 'storage.ca_file' is set but 'storage.secure' = false, so it would be ignored"},
		{"[storage]\nendpoint = \"nas.shop.lan:9000\"\nbucket = \"clips\"\nsecure = false\n",
			"m.toml:9: 'storage.secure' = false sends every clip and the bucket's replies in plain HTTP to \"nas.shop.lan:9000\", which is not this machine"},
		// The key an older mamoru read says what to write instead.
		{"[policy]\nretention_days = 30\nobject_lock_days = 7\n", "m.toml:8: 'policy.object_lock_days' is no longer read: each clip is now locked for 'policy.retention_days'; write policy.object_lock = \"compliance\""},
		{"[policy]\nobject_lock = \"strict\"\n", "m.toml:7: 'policy.object_lock' must be \"governance\", \"compliance\" or \"none\" (got \"strict\")"},
		// A lock needs an end; keeping clips for ever has none.
		{"[policy]\nretention_days = 0\n", "m.toml:7: 'policy.retention_days' = 0 (keep) cannot go with 'policy.object_lock' = \"governance\""},
		{"[policy]\nretention_days = 0\nobject_lock = \"compliance\"\n", "m.toml:7: 'policy.retention_days' = 0 (keep) cannot go with 'policy.object_lock' = \"compliance\""},
		{"[policy]\nretention_days = -1\n", "m.toml:7: 'policy.retention_days' must be between 0 (keep) and 36500 (got -1)"},
	} {
		_, err := Parse("m.toml", []byte(minimal+tc.src), env)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}

// Plain HTTP is accepted without a word only to this machine; elsewhere
// it takes an explicit 'storage.allow_plain_http'.
func TestStoragePlainHTTP(t *testing.T) {
	env := []string{EnvAccessKey + "=a", EnvSecretKey + "=b"}
	for _, tc := range []struct {
		endpoint string
		allow    bool
		ok       bool
	}{
		{"127.0.0.1:9000", false, true},
		{"localhost:9000", false, true},
		{"[::1]:9000", false, true},
		{"127.0.0.1", false, true},
		{"192.168.1.20:9000", false, false},
		{"s3.example.com", false, false},
		{"localhost.example.com:9000", false, false},
		{"192.168.1.20:9000", true, true},
	} {
		src := fmt.Sprintf("%s[storage]\nendpoint = %q\nbucket = \"clips\"\nsecure = false\nallow_plain_http = %v\n", minimal, tc.endpoint, tc.allow)
		_, err := Parse("m.toml", []byte(src), env)
		if got := err == nil; got != tc.ok {
			t.Errorf("plain HTTP to %s, allow_plain_http = %v: %v; want accepted = %v", tc.endpoint, tc.allow, err, tc.ok)
		}
	}
	// A manager's configuration is held to the same rule.
	if _, err := LoadManager("", []string{"MAMORU_STORAGE_ENDPOINT=s3.example.com", "MAMORU_STORAGE_BUCKET=clips", "MAMORU_STORAGE_SECURE=false", EnvAccessKey + "=a", EnvSecretKey + "=b"}); err == nil ||
		!strings.Contains(err.Error(), "MAMORU_STORAGE_SECURE: 'storage.secure' = false") {
		t.Errorf("LoadManager, plain HTTP to s3.example.com: %v; want it refused, naming MAMORU_STORAGE_SECURE", err)
	}
}

func TestLoadManager(t *testing.T) {
	// A manager's file may hold only [storage]; keys may come from the environment.
	path := filepath.Join(t.TempDir(), "manager.toml")
	os.WriteFile(path, []byte("[storage]\nendpoint = \"s3.example.com\"\nbucket = \"clips\"\nprefix = \"mamoru\"\n"), 0o644)
	mc, err := LoadManager(path, []string{EnvAccessKey + "=a", EnvSecretKey + "=b"})
	if err != nil || mc.Storage.Bucket != "clips" || mc.Storage.Prefix != "mamoru" || !mc.Storage.Secure || mc.Location != "Asia/Tokyo" {
		t.Errorf("LoadManager = %+v, %v", mc, err)
	}
	// Or everything from the environment.
	mc, err = LoadManager("", []string{"MAMORU_STORAGE_ENDPOINT=s3.example.com", "MAMORU_STORAGE_BUCKET=clips", EnvAccessKey + "=a", EnvSecretKey + "=b"})
	if err != nil || mc.Storage.Endpoint != "s3.example.com" {
		t.Errorf("LoadManager from the environment = %+v, %v", mc, err)
	}
	if _, err := LoadManager("", nil); err == nil || !strings.Contains(err.Error(), "'storage.endpoint' is required") {
		t.Errorf("LoadManager with nothing: %v", err)
	}
}
