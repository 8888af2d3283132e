package dns

import (
	"fmt"
	"log/slog"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeDNS is the query path without sockets: a priority profile
// answered over "UDP", with and without a (never reached) rate limit.
//
//	go test -run '^$' -bench ServeDNS ./internal/dns/
func BenchmarkServeDNS(b *testing.B) {
	for _, rl := range []string{"", "rate_limit: {responses_per_second: 1000000}\n"} {
		b.Run(fmt.Sprintf("rrl=%v", rl != ""), func(b *testing.B) {
			c, err := ParseConfig([]byte(fmt.Sprintf(logicConfig, "") + rl))
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(c, Options{Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			m := new(dns.Msg)
			m.SetQuestion("app.example.test.", dns.TypeA)
			w := newRecorder(true, "127.0.0.1")
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, m)
			}
		})
	}
}

// BenchmarkServeDNSSigned is the same query against a signed zone, with
// the DO bit (the answer's RRSIG comes from the signature cache) and
// without; both include packing the reply, which signatures make larger.
//
//	go test -run '^$' -bench ServeDNSSigned ./internal/dns/
func BenchmarkServeDNSSigned(b *testing.B) {
	c, err := ParseConfig([]byte(fmt.Sprintf(logicConfig, "") + "dnssec: {key_dir: " + b.TempDir() + "}\n"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(c, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, do := range []bool{false, true} {
		b.Run(fmt.Sprintf("do=%v", do), func(b *testing.B) {
			m := new(dns.Msg)
			m.SetQuestion("app.example.test.", dns.TypeA)
			m.SetEdns0(1232, do)
			w := newRecorder(true, "127.0.0.1")
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, m)
				if _, err := w.msg.Pack(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServeUDP is the whole UDP path through a started server's
// sockets (the client's syscalls included): a plain query, which the wire
// fast path answers, and the same query with an EDNS cookie, which goes
// through miekg/dns and ServeDNS.
//
//	go test -run '^$' -bench ServeUDP -cpuprofile cpu.out ./internal/dns/
func BenchmarkServeUDP(b *testing.B) {
	c, err := ParseConfig([]byte(fmt.Sprintf(logicConfig, "")))
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(c, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, general := range []bool{false, true} {
		b.Run(fmt.Sprintf("general=%v", general), func(b *testing.B) {
			m := new(dns.Msg)
			m.SetQuestion("app.example.test.", dns.TypeA)
			if general {
				m.SetEdns0(1232, false)
				o := m.IsEdns0()
				o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
			}
			q, err := m.Pack()
			if err != nil {
				b.Fatal(err)
			}
			conn, err := net.Dial("udp", s.DNSAddr())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			buf := make([]byte, 1500)
			for b.Loop() {
				if _, err := conn.Write(q); err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
