package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
)

// LoadOptions change where LoadWith reads the key files a configuration
// names. The zero value reads each at its configured path, as the device
// does.
type LoadOptions struct {
	// KeyDir, when not "", holds every file KeyFiles lists under the base
	// name of its configured path (storage.access_key_file =
	// "/etc/mamoru/s3-access-key" is read from KeyDir/s3-access-key), as
	// an installer keeps them beside a site's configuration before they
	// go to the device. Each is still held to its mode and content. The
	// device's signing key is then not read: the device makes its own at
	// first boot.
	KeyDir string
}

// keyPath is where the key file configured at path is read from.
func (o LoadOptions) keyPath(path string) string {
	if o.KeyDir == "" || path == "" {
		return path
	}
	return filepath.Join(o.KeyDir, filepath.Base(path))
}

// LoadWith is LoadWithSecrets with the key files found as opts says. With
// opts.KeyDir, the paths KeyFiles refuses are errors too.
func LoadWith(path string, environ []string, opts LoadOptions) (Config, error) {
	src, err := readConfig(path)
	if err != nil {
		return Config{}, err
	}
	c, errs, decoded := parse(path, src, environ)
	if decoded {
		if opts.KeyDir != "" {
			_, keyErrs := c.keyFiles()
			errs = append(errs, keyErrs...)
		}
		errs = append(errs, c.loadSecrets(environ, opts)...)
	}
	return result(c, errs)
}

// KeyFile is a file a configuration names that must be on the device
// with it for the recorder to start.
type KeyFile struct {
	Key  string // the key that names it, "alerts.target[2].token_file"
	Path string // where the device reads it, as configured
	// Secret is true for a key, password or token, which only its owner
	// may read (mode 0600 or 0400), and false for a certificate authority
	// (a ca_file), which holds no secret.
	Secret bool
}

// KeyFiles lists the files c names that an installer carries to the
// device with it: the storage keys and CA, and each alert target's
// secret, token, password and CA files, each path once. The device's
// signing key is not among them: the device makes its own ('mamoru
// keygen'). An installer keeps each beside the configuration under the
// base name of its path, so KeyFiles refuses, with Errors naming each key
// and its line, a path that is not absolute and clean ("/etc/mamoru/x",
// not "x" or "/etc/mamoru/../x"), one holding a control character, and
// two paths of one base name (the signing key's among them).
func (c Config) KeyFiles() ([]KeyFile, error) {
	files, errs := c.keyFiles()
	if len(errs) > 0 {
		c.origin.place(errs)
		return nil, errs
	}
	return files, nil
}

func (c Config) keyFiles() ([]KeyFile, Errors) {
	var files []KeyFile
	add := func(key, path string, secret bool) {
		if path == "" {
			return
		}
		for i, f := range files {
			if f.Path == path {
				files[i].Secret = f.Secret || secret
				return
			}
		}
		files = append(files, KeyFile{Key: key, Path: path, Secret: secret})
	}
	add("storage.access_key_file", c.Storage.AccessKeyFile, true)
	add("storage.secret_key_file", c.Storage.SecretKeyFile, true)
	add("storage.ca_file", c.Storage.CAFile, false)
	for i, t := range c.Alerts.Targets {
		add(targetKey(i, "secret_file"), t.SecretFile, true)
		add(targetKey(i, "token_file"), t.TokenFile, true)
		add(targetKey(i, "password_file"), t.PasswordFile, true)
		add(targetKey(i, "ca_file"), t.CAFile, false)
	}
	var errs Errors
	byBase := map[string]KeyFile{}
	// The signing key is not carried, but provision leaves it beside the
	// configuration under its base name, and the device makes it at its
	// path: no other file may take either.
	if sk := c.Device.SigningKeyFile; sk != "" {
		byBase[filepath.Base(sk)] = KeyFile{Key: "device.signing_key_file", Path: sk}
	}
	for _, f := range files {
		switch {
		case strings.ContainsFunc(f.Path, unicode.IsControl):
			errs = append(errs, &Error{Key: f.Key, Msg: fmt.Sprintf("holds a control character (%q): the installer's tools read the key files' paths one a line", f.Path)})
			continue
		case !filepath.IsAbs(f.Path) || filepath.Clean(f.Path) != f.Path || f.Path == "/":
			errs = append(errs, &Error{Key: f.Key, Msg: fmt.Sprintf("must be the absolute path of a file, with no '.', '..' or trailing '/' in it, like \"/etc/mamoru/%s\" (got %q): the first boot installs the file at that path", filepath.Base(f.Path), f.Path)})
			continue
		}
		base := filepath.Base(f.Path)
		if other, dup := byBase[base]; dup {
			errs = append(errs, &Error{Key: f.Key, Msg: fmt.Sprintf("%q has the base name %q of '%s' (%q): an installer keeps both beside the configuration under that one name; give one another name", f.Path, base, other.Key, other.Path)})
			continue
		}
		byBase[base] = f
	}
	return files, errs
}
