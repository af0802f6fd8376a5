package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"mamoru/bucket"
	"mamoru/config"
	"mamoru/console"
	"mamoru/console/access"
	"mamoru/handover"
)

const consoleHelp = `Usage: mamoru console --config FILE [--listen ADDR] [--no-browser]
       mamoru console adduser NAME --role viewer|manager --config FILE

Serves the managers' console: every incident in the bucket of FILE's
[storage] table, newest first, to review, play, keep (legal hold), share,
hand over and delete, and the devices' health. It keeps nothing of its
own: reviews and every view, share, hold and deletion are records in the
bucket, so several consoles may serve the same shops.

By default it listens on 127.0.0.1:8750 (console.listen), this machine
only, and opens the browser. To serve a team, --listen on the LAN's
address needs users ('mamoru console adduser') and TLS: console.tls_cert
and console.tls_key, or a certificate made beside FILE on first start,
whose fingerprint it prints for the managers to compare.`

func cmdConsole(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "adduser" {
		return consoleAddUser(ctx, args[1:], stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nOptions:\n", consoleHelp)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "the manager's configuration `file`: [storage], [[keyring]], [console]")
	listen := fs.String("listen", "", "the `address` to serve on (default console.listen, else "+config.DefaultConsoleListen+")")
	noBrowser := fs.Bool("no-browser", false, "do not open the browser")
	if _, err := parseArgs(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	mc, client, ok := loadBucket(*cfgPath, stderr)
	if !ok {
		return 2
	}
	addr := mc.Console.Listen
	if *listen != "" {
		addr = *listen
	}
	if addr == "" {
		addr = config.DefaultConsoleListen
	}
	loopback := config.Loopback(addr)
	if !loopback && len(mc.Console.Users) == 0 {
		// Said before a certificate is made for a console that will not
		// start.
		fmt.Fprintf(stderr, "mamoru console: %v; %s is reachable from the network\n", access.ErrNeedsUsers, addr)
		return 2
	}

	// TLS: the pair configured, else, off this machine, one made beside
	// the configuration.
	var tlsConfig *tls.Config
	certFile, keyFile := mc.Console.TLSCert, mc.Console.TLSKey
	if certFile == "" && !loopback && *cfgPath != "" {
		dir := filepath.Dir(*cfgPath)
		certFile, keyFile = filepath.Join(dir, "console-tls.crt"), filepath.Join(dir, "console-tls.key")
	}
	if certFile != "" {
		host, _, _ := net.SplitHostPort(addr)
		hosts := []string{"localhost", "127.0.0.1"}
		if host != "" {
			hosts = append(hosts, host)
		}
		if name, err := os.Hostname(); err == nil {
			hosts = append(hosts, name)
		}
		cert, fp, created, err := access.LoadOrCreateCert(certFile, keyFile, hosts)
		if err != nil {
			fmt.Fprintf(stderr, "mamoru console: %v\n", err)
			return 2
		}
		if created {
			fmt.Fprintf(stdout, "made a TLS certificate for %v: %s\n", hosts, certFile)
		}
		fmt.Fprintf(stdout, "TLS certificate fingerprint (SHA-256), to compare with what the browser shows:\n  %s\n", fp)
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	// Listen first: the guard checks Host against the port really bound
	// (--listen 127.0.0.1:0 picks one).
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "mamoru console: listen on %s: %v (another console running? --listen picks another port)\n", addr, err)
		return 1
	}
	defer ln.Close()
	guard, err := access.New(access.Options{Users: mc.Console.Users, Local: access.User{Name: actor() + " (local)", Role: access.Manager}, Addr: ln.Addr().String(), TLS: tlsConfig != nil})
	if err != nil {
		fmt.Fprintf(stderr, "mamoru console: %v\n", err)
		return 2
	}
	zone, err := time.LoadLocation(mc.Location)
	if err != nil {
		zone = time.Local
	}
	clips := bucket.Clips{Client: client.Client, Bucket: mc.Storage.Bucket, Prefix: mc.Storage.Prefix, Keyring: mc.Keyring}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := console.New(console.Options{Clips: clips, Zone: zone, Log: log,
		Handover: func(ctx context.Context, e bucket.Entry, by, from, dir string) (string, error) {
			p, _, err := handover.Make(ctx, clips, clips.RefOf(e), handover.MakeOptions{Dir: dir, By: by, From: from, Zone: zone, WriteReport: handover.WriteReport, Now: time.Now})
			return p, err
		}})
	if err != nil {
		fmt.Fprintf(stderr, "mamoru console: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	guard.Routes(mux)
	srv.Register(mux)

	scheme := "http"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s/", scheme, ln.Addr())
	if host, port, _ := net.SplitHostPort(ln.Addr().String()); net.ParseIP(host).IsUnspecified() {
		// Listening on every address: name the machine as the team
		// reaches it.
		if name, err := os.Hostname(); err == nil {
			url = fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(name, port))
		}
	}
	if loopback {
		// Host is checked against this name on loopback.
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		url = fmt.Sprintf("%s://127.0.0.1:%s/", scheme, port)
	}
	fmt.Fprintf(stdout, "mamoru console: %s\n", url)
	if len(mc.Console.Users) == 0 {
		fmt.Fprintln(stdout, "no users: this machine only, every request is its user's")
	}

	hs := &http.Server{Handler: console.Secure(guard.Handler(mux)), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Warm(ctx); err != nil && ctx.Err() == nil {
			log.Warn("console: first listing of the bucket", "err", err)
		}
	}()
	if !*noBrowser {
		if err := openBrowser(url); err != nil {
			fmt.Fprintf(stdout, "open %s in a browser (%v)\n", url, err)
		}
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "mamoru console: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(shut)
	return 0
}

// openBrowser opens url in the desktop's browser.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	case "darwin":
		cmd = exec.Command("open", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
