package dns

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/testenv"
)

// udpAsk sends one query over real UDP to the server and returns the reply.
func udpAsk(t *testing.T, addr string, q []byte) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 65535)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

// generalReply is what ServeDNS sends for q over UDP, packed as miekg does.
func generalReply(t *testing.T, s *Server, q []byte) []byte {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(q); err != nil {
		t.Fatal(err)
	}
	w := newRecorder(true, "127.0.0.1")
	s.ServeDNS(w, m)
	b, err := w.msg.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireCached tells whether the fast path holds a reply for q.
func wireCached(s *Server, q []byte) bool {
	wq, ok := parseWireQuery(q, nil)
	c := s.wire.Load()
	if !ok || !wireEligible(s.table.Load(), wq) || c == nil || c.t != s.table.Load() {
		return false
	}
	e := c.m[string(wq.key)]
	return e != nil && e.ok
}

type wireCase struct {
	name  string
	qtype uint16
	edns  int // UDP size, 0 without OPT
	do    bool
	ecs   bool
	cd    bool
}

func (c wireCase) pack(t *testing.T, id uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(c.name, c.qtype)
	m.Id = id
	m.CheckingDisabled = c.cd
	if c.edns > 0 {
		m.SetEdns0(uint16(c.edns), c.do)
		if c.ecs {
			o := m.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0)})
		}
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWireFastPathMatchesGeneral: over real UDP, every query the fast path
// answers gets the bytes ServeDNS would send (ID and name case included),
// and the ones it must not answer are left to the general path.
func TestWireFastPathMatchesGeneral(t *testing.T) {
	for _, signed := range []bool{false, true} {
		t.Run(fmt.Sprintf("dnssec=%v", signed), func(t *testing.T) {
			y := fmt.Sprintf(logicConfig, bigRecords())
			if signed {
				y += "dnssec: {key_dir: " + t.TempDir() + "}\n"
			}
			s := startServer(t, y)
			var id uint16 = 0x1234
			for _, name := range []string{"app.example.test.", "APP.Example.TEST.", "www.example.test.", "wWw.EXAMPLE.test.",
				"example.test.", "deep.sub.example.test.", "sub.example.test.", "strict.example.test.",
				"big.example.test.", "alias.example.test.", "cn.example.test.", "mv.example.test.",
				"nothere.example.test.", "other.zone."} {
				for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeMX, dns.TypeSOA, dns.TypeNS, dns.TypeANY} {
					for _, edns := range []int{0, 512, 1232, 4096} {
						for _, do := range []bool{false, true} {
							if do && edns == 0 {
								continue
							}
							for _, ecs := range []bool{false, true} {
								if ecs && edns == 0 {
									continue
								}
								c := wireCase{name: name, qtype: qtype, edns: edns, do: do, ecs: ecs, cd: id%3 == 0}
								id += 7919
								q := c.pack(t, id)
								got := udpAsk(t, s.DNSAddr(), q)
								want := generalReply(t, s, q)
								// multivalue shuffles: its bytes differ run to run
								if name != "mv.example.test." && !bytes.Equal(got, want) {
									t.Fatalf("%+v: fast path reply differs\n got %x\nwant %x", c, got, want)
								}
								fast := wireCached(s, q)
								upper := strings.ToLower(name) != name
								mustFast := !ecs && qtype != dns.TypeANY && !(do && signed && upper) &&
									(name == "app.example.test." || name == "APP.Example.TEST." || name == "www.example.test.") &&
									(qtype == dns.TypeA || qtype == dns.TypeAAAA)
								mustSlow := ecs || qtype == dns.TypeANY || (do && signed && upper) ||
									name == "alias.example.test." || name == "cn.example.test." || name == "mv.example.test." ||
									name == "nothere.example.test." || name == "other.zone." ||
									(name == "big.example.test." && qtype == dns.TypeTXT)
								if mustFast && !fast || mustSlow && fast {
									t.Fatalf("%+v: fast path used = %v", c, fast)
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestWireFastPathFollowsHealth: the cached reply of a priority profile
// changes with the very next query after a probe changes an endpoint's
// state, in both directions.
func TestWireFastPathFollowsHealth(t *testing.T) {
	ls, port := testenv.LoopbackListeners(t, "127.0.0.1", "127.0.0.2")
	primary := testenv.NewHTTPEndpoint(t, ls[0], healthHandler())
	testenv.NewHTTPEndpoint(t, ls[1], healthHandler())
	s := startServer(t, fmt.Sprintf(healthProfile, port, "1s", 0, ""))
	q := wireCase{name: "app.example.test.", qtype: dns.TypeA}.pack(t, 1)
	answer := func() string {
		m := new(dns.Msg)
		if err := m.Unpack(udpAsk(t, s.DNSAddr(), q)); err != nil {
			t.Fatal(err)
		}
		if !wireCached(s, q) {
			t.Fatal("query not answered by the fast path")
		}
		return fmt.Sprint(addrsOf(m))
	}
	testenv.Eventually(t, 20*time.Second, "both endpoints Online", func() bool {
		return endpointState(s, "primary") == "Online" && endpointState(s, "recovery") == "Online"
	})
	if got := answer(); got != "[127.0.0.1]" {
		t.Fatalf("healthy: %s", got)
	}
	primary.Stop()
	testenv.Eventually(t, 20*time.Second, "primary Degraded", func() bool { return endpointState(s, "primary") == "Degraded" })
	if got := answer(); got != "[127.0.0.2]" {
		t.Fatalf("right after the primary failed: %s", got)
	}
	primary.Start()
	testenv.Eventually(t, 20*time.Second, "primary Online", func() bool { return endpointState(s, "primary") == "Online" })
	if got := answer(); got != "[127.0.0.1]" {
		t.Fatalf("right after the primary came back: %s", got)
	}
}
