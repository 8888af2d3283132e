package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	havendns "github.com/haven-dr/haven/internal/dns"
)

// TestDNSCommandSIGHUP runs `haven dns` in-process, reloads it with a real
// SIGHUP, and checks that a broken file is refused while the old one serves.
func TestDNSCommandSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dns.yaml")
	cfg := "listen: 127.0.0.1:0\nzones:\n  - name: example.test\n    records:\n      - {name: www, type: A, value: 127.0.0.9}\n"
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *havendns.Server, 1)
	done := make(chan error, 1)
	go func() {
		done <- runDNS(ctx, path, slog.Default(), func(s *havendns.Server) { ready <- s })
	}()
	var s *havendns.Server
	select {
	case s = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	write(strings.Replace(cfg, "127.0.0.9", "bogus", 1))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond) // let the refused reload happen; the answer must not change
	if got := lookupA(t, s.DNSAddr()); got != "127.0.0.9" {
		t.Fatalf("after bad reload: %q", got)
	}
	write(strings.Replace(cfg, "127.0.0.9", "127.0.0.10", 1))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for lookupA(t, s.DNSAddr()) != "127.0.0.10" {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDNSCommandRejectsBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dns.yaml")
	os.WriteFile(path, []byte("listen: 127.0.0.1:0\nzones: [{name: example.test}]\nprofiles: [{name: x.example.test, routing: nope, endpoints: [{name: a, target: 192.0.2.1}]}]\n"), 0o600)
	err := runDNS(context.Background(), path, slog.Default(), nil)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "line 3: profiles[0].routing") {
		t.Fatalf("err = %v (exit %d)", err, exitCode(err))
	}
}

func lookupA(t *testing.T, server string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	r, err := dns.Exchange(m, server)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 {
		return ""
	}
	return r.Answer[0].(*dns.A).A.String()
}

// startDNS runs `haven dns` in-process until the test ends or stop is called.
func startDNS(t *testing.T, path string) (s *havendns.Server, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *havendns.Server, 1)
	done := make(chan error, 1)
	go func() {
		done <- runDNS(ctx, path, slog.Default(), func(s *havendns.Server) { ready <- s })
	}()
	select {
	case s = <-ready:
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return s, stop
}

func runCLI(args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func lookupApp(t *testing.T, server string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("app.example.test.", dns.TypeA)
	r, err := dns.Exchange(m, server)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 {
		return fmt.Sprint(r.Answer)
	}
	return r.Answer[0].(*dns.A).A.String()
}

// TestDNSSetSurvivesRestartAndSIGHUP: `haven dns set` with the token file
// the server created disables the primary; the real command restarted, then
// reloaded with SIGHUP, still answers the recovery, and `haven dns status`
// shows the override beside the config's value.
func TestDNSSetSurvivesRestartAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dns.yaml")
	os.WriteFile(path, []byte(`listen: 127.0.0.1:0
api: 127.0.0.1:0
zones: [{name: example.test}]
profiles:
  - name: app.example.test
    endpoints:
      - {name: primary, target: 127.0.0.1, priority: 1}
      - {name: recovery, target: 127.0.0.2, priority: 2}
`), 0o600)
	tokenFile := filepath.Join(dir, "dns.api-token")
	s, stop := startDNS(t, path)
	if _, err := runCLI("dns", "set", "app.example.test", "primary", "--disable", "--api", s.APIAddr()); exitCode(err) != exitUsage {
		t.Fatalf("set without a token: %v", err)
	}
	wrong := filepath.Join(dir, "wrong-token")
	os.WriteFile(wrong, []byte(strings.Repeat("w", 32)), 0o600)
	if _, err := runCLI("dns", "status", "--api", s.APIAddr(), "--token-file", wrong); !errors.Is(err, havendns.ErrUnauthorized) {
		t.Fatalf("status with a wrong token: %v", err)
	}
	if out, err := runCLI("dns", "set", "app.example.test", "primary", "--disable", "--api", s.APIAddr(), "--token-file", tokenFile); err != nil {
		t.Fatalf("set: %v\n%s", err, out)
	}
	if got := lookupApp(t, s.DNSAddr()); got != "127.0.0.2" {
		t.Fatalf("after set: %s", got)
	}
	stop()

	s, _ = startDNS(t, path)
	if got := lookupApp(t, s.DNSAddr()); got != "127.0.0.2" {
		t.Fatalf("after restart: %s", got)
	}
	// A reload that can be seen: the new file adds a record.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(b, []byte("zones: [{name: example.test}]"),
		[]byte("zones: [{name: example.test, records: [{name: www, type: A, value: 127.0.0.9}]}]"), 1), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for lookupA(t, s.DNSAddr()) != "127.0.0.9" {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := runCLI("dns", "status", "--api", s.APIAddr(), "--token-file", tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var ps []havendns.ProfileStatus
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ep := ps[0].Endpoints[0]
	if ep.Name != "primary" || ep.Enabled || !ep.Config.Enabled || ep.Override == nil || *ep.Override.Enabled {
		t.Fatalf("status: %s", out)
	}
	if got := lookupApp(t, s.DNSAddr()); got != "127.0.0.2" {
		t.Fatalf("after SIGHUP: %s", got)
	}
}
