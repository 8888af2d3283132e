package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	havendns "github.com/haven-dr/haven/internal/dns"
)

// TestDNSDSCommand: `haven dns ds` creates the zone key once and prints the
// DS of the DNSKEY the server then serves; --next-key adds a second DS.
func TestDNSDSCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dns.yaml")
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:0\ndnssec: {}\nzones: [{name: example.test}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) []string {
		t.Helper()
		c := newDNSDSCmd()
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetArgs(append([]string{"--config", path}, args...))
		if err := c.Execute(); err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	first := run()
	if len(first) != 1 || run()[0] != first[0] {
		t.Fatalf("ds not stable: %v", first)
	}
	cfg, err := havendns.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := havendns.New(cfg, havendns.Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeDNSKEY)
	r, err := dns.Exchange(m, s.DNSAddr())
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("DNSKEY: %v %v", r, err)
	}
	if ds := r.Answer[0].(*dns.DNSKEY).ToDS(dns.SHA256).String(); ds != first[0] {
		t.Fatalf("served key's DS %s, printed %s", ds, first[0])
	}
	if both := run("--next-key"); len(both) != 2 || both[0] != first[0] {
		t.Fatalf("with --next-key: %v", both)
	}
}
