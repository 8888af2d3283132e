package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
