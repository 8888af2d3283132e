package dns

import (
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// FuzzRespond feeds arbitrary packets through the query path the way the
// server does (unpack, then ServeDNS over UDP and TCP). The reply must always
// pack and answer the same ID. The seeds run in every `go test`; CI may add
// a short `go test -fuzz=FuzzRespond -fuzztime=15s ./internal/dns/`.
func FuzzRespond(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	wild := "      - {name: '*.wild', type: CNAME, value: www.example.test.}\n"
	s, err := New(mustParseF(f, fmt.Sprintf(logicConfig, bigRecords()+wild)), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return // the server answers FORMERR or drops these itself
		}
		for _, udp := range []bool{true, false} {
			w := newRecorder(udp, "10.1.2.3")
			s.ServeDNS(w, req)
			if w.msg == nil {
				t.Fatal("no reply")
			}
			if _, err := w.msg.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, w.msg)
			}
			if w.msg.Id != req.Id || !w.msg.Response {
				t.Fatalf("bad reply header %v", w.msg.MsgHdr)
			}
		}
	})
}

func mustParseF(f *testing.F, y string) *Config {
	c, err := ParseConfig([]byte(y))
	if err != nil {
		f.Fatal(err)
	}
	return c
}

func fuzzSeeds() [][]byte {
	var out [][]byte
	add := func(name string, t uint16, edit func(*dns.Msg)) {
		m := new(dns.Msg)
		m.SetQuestion(name, t)
		if edit != nil {
			edit(m)
		}
		b, _ := m.Pack()
		out = append(out, b)
	}
	for _, n := range []string{"app.example.test.", "WWW.example.test.", "sn.example.test.", "nest.example.test.",
		"big.example.test.", "alias.example.test.", "a.b.wild.example.test.", "nope.example.test.", "example.org.", "."} {
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeCNAME, dns.TypeTXT} {
			add(n, t, nil)
		}
	}
	add("sn.example.test.", dns.TypeA, func(m *dns.Msg) {
		m.SetEdns0(4096, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
			SourceNetmask: 24, Address: net.ParseIP("10.1.2.0")})
	})
	add("app.example.test.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	add("app.example.test.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate })
	return append(out, []byte{}, []byte{0, 1, 2}, make([]byte, 12))
}
