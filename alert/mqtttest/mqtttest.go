// Package mqtttest runs a real MQTT broker for tests, Debian's mosquitto,
// on a free loopback port, with or without logins. It can be stopped and
// started again on the same port, to test outages. It kills only the
// process it started.
//
// Tests that use it are skipped when mosquitto is not installed
// (.ci/install-deps installs it).
package mqtttest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Broker is a mosquitto of the test's own.
type Broker struct {
	Addr string // host:port, on loopback
	// RootCAs holds the certificate of a broker started by StartTLS.
	RootCAs *x509.CertPool

	t     testing.TB
	bin   string
	login bool // Subscribe logs in
	conf  string
	pw    string // the password file, with logins
	cmd   *exec.Cmd
}

// Start starts mosquitto with the logins in users (user → password; none:
// anonymous), and stops it when the test ends. With logins, Subscribe logs
// in as a user of its own, "mqtttest".
func Start(t testing.TB, users map[string]string) *Broker {
	t.Helper()
	return start(t, users, false)
}

// StartTLS is Start with a TLS listener only, whose certificate (for
// 127.0.0.1) is in RootCAs, and in no system's roots.
func StartTLS(t testing.TB, users map[string]string) *Broker {
	t.Helper()
	return start(t, users, true)
}

func start(t testing.TB, users map[string]string, withTLS bool) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto" // not on a user's PATH
		if _, err := os.Stat(bin); err != nil {
			t.Skip("mosquitto is not installed (apt-get install mosquitto)")
		}
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// user root: run by root, mosquitto would drop to the user mosquitto,
	// who cannot read the test's files.
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\nuser root\n", port)
	if len(users) == 0 {
		conf += "allow_anonymous true\n"
	} else {
		pw := filepath.Join(dir, "passwd")
		users = maps.Clone(users)
		users[subscriber] = subscriberPassword
		for u, p := range users {
			args := []string{"-b", pw, u, p}
			if _, err := os.Stat(pw); err != nil {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v: %s", err, out)
			}
		}
		conf += "allow_anonymous false\npassword_file " + pw + "\n"
	}
	b := &Broker{t: t, bin: bin, login: len(users) > 0, conf: filepath.Join(dir, "mosquitto.conf"), Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	if b.login {
		b.pw = filepath.Join(dir, "passwd")
	}
	if withTLS {
		// httptest's certificate is for 127.0.0.1 and signs itself.
		srv := httptest.NewTLSServer(nil)
		cert := srv.TLS.Certificates[0]
		srv.Close()
		key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile := filepath.Join(dir, "broker.crt"), filepath.Join(dir, "broker.key")
		os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
		conf += "certfile " + certFile + "\nkeyfile " + keyFile + "\n"
		b.RootCAs = x509.NewCertPool()
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		b.RootCAs.AddCert(leaf)
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Start runs the broker (again) and waits until it takes connections.
func (b *Broker) Start() {
	b.t.Helper()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	// Real time: the broker is a real process.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", b.Addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %s: %v", b.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SetPassword gives user password on a broker started with logins, as a
// broker's owner changing it would; the broker reads it at its next Start.
func (b *Broker) SetPassword(user, password string) {
	b.t.Helper()
	if b.pw == "" {
		b.t.Fatal("mqtttest: SetPassword on a broker without logins")
	}
	if out, err := exec.Command("mosquitto_passwd", "-b", b.pw, user, password).CombinedOutput(); err != nil {
		b.t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
}

// Stop kills the broker, by its pid only, and waits for it.
func (b *Broker) Stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Kill()
	b.cmd.Wait()
	b.cmd = nil
}

// Message is one message a subscriber took.
type Message struct {
	Topic    string
	Payload  string
	Retained bool
}

// The subscribers' login, when the broker takes logins only.
const subscriber, subscriberPassword = "mqtttest", "mqtttest-password"

// clients numbers the subscribers: a broker drops the older of two
// clients with the same id.
var clients atomic.Int64

// Subscribe connects a client of the test's and returns what it receives
// on filter, retained messages first.
func (b *Broker) Subscribe(filter string) <-chan Message {
	b.t.Helper()
	got := make(chan Message, 256)
	o := paho.NewClientOptions().AddBroker("tcp://" + b.Addr).SetClientID(fmt.Sprintf("mqtttest-%d", clients.Add(1)))
	if b.RootCAs != nil {
		o.Servers = nil
		o.AddBroker("ssl://" + b.Addr).SetTLSConfig(&tls.Config{RootCAs: b.RootCAs})
	}
	if b.login {
		o.SetUsername(subscriber).SetPassword(subscriberPassword)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.t.Fatalf("mqtttest: connect: %v", tok.Error())
	}
	b.t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		got <- Message{m.Topic(), string(m.Payload()), m.Retained()}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.t.Fatalf("mqtttest: subscribe: %v", tok.Error())
	}
	return got
}
