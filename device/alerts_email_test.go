//go:build linux

package device

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mamoru/alert"
	"mamoru/alert/smtptest"
	"mamoru/config"
)

// An e-mail target as config describes it reaches a real SMTP server
// through NewAlerts' queue when a press raises an incident, trusting the
// server's certificate as the recorder does, by the system's authorities.
// Go reads those (SSL_CERT_FILE) once per process, so the press is made in
// a child process of this test with the test's CA as SSL_CERT_FILE.
func TestAlertsByEmail(t *testing.T) {
	if addr := os.Getenv("MAMORU_TEST_SMTP"); addr != "" {
		pressToEmail(t, addr)
		return
	}
	ca := smtptest.NewCA(t)
	server := smtptest.Start(t, smtptest.Options{CA: ca, Implicit: true, Users: map[string]string{"mamoru": "pa55word"}})
	// Under make test-arm64 this binary runs in qemu-user, and so must its
	// child: there is no binfmt to do it for us.
	argv := append(strings.Fields(os.Getenv("MAMORU_TEST_EXEC")), os.Args[0], "-test.run=^TestAlertsByEmail$", "-test.count=1", "-test.v")
	child := exec.Command(argv[0], argv[1:]...)
	child.Env = append(os.Environ(), "MAMORU_TEST_SMTP="+server.SMTP, "SSL_CERT_FILE="+ca.File, "SSL_CERT_DIR=")
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("the press in a child process: %v\n%s", err, out)
	}
	got := server.Messages()
	if len(got) != 1 {
		t.Fatalf("the server took %d mails, want 1", len(got))
	}
	if m := got[0]; m.Subject != "カウンター1で通報ボタン 14:02" || m.Username != "mamoru" ||
		!strings.Contains(m.Text, "https://console.example/incidents/shop-1/counter-1/20261130-140205-000042") {
		t.Errorf("the mail: %+v; want the press at カウンター1, logged in, with the console's link", m)
	}
}

// pressToEmail publishes a press to an e-mail target at addr, and returns
// once the target has taken it.
func pressToEmail(t *testing.T, addr string) {
	var cfg config.Config
	cfg.Device.StateDir = t.TempDir()
	cfg.Alerts.Targets = []config.Target{{
		Kind: config.KindEmail, Label: "オーナー", Events: config.DefaultEvents, Language: "ja",
		URL: config.Secret("smtps://" + addr), Username: "mamoru", Password: "pa55word",
		From: "まもる <mamoru@shop.example.jp>", To: []string{"owner@shop.example.jp"},
	}}
	log := slog.New(slog.DiscardHandler)
	d, err := NewAlerts(cfg, nil, nil, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	tokyo := time.FixedZone("JST", 9*3600)
	a := &Alerts{Origin: alert.Origin{Store: "shop-1", Device: "counter-1", Label: "カウンター1", Zone: tokyo, ConsoleURL: "https://console.example"}, Publish: d.Publish}
	a.Show(Event{Kind: EventPress, Result: PressIncident, Incident: "20261130-140205-000042", Source: "button",
		Time: time.Date(2026, 11, 30, 14, 2, 5, 0, tokyo)})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := d.Status().Targets[0]
		if st.Delivered == 1 {
			return
		}
		if st.NeedsFix || time.Now().After(deadline) {
			t.Fatalf("the e-mail target: %+v", st)
		}
	}
}
