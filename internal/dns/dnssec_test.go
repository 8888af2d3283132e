package dns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSignedAnswers checks the signed replies themselves against the key:
// every RRset of the answer and authority sections has an RRSIG that
// verifies, a missing name is NODATA with an NSEC at the name (black lie),
// NODATA's NSEC lists the name's types but not the asked one, a chased
// CNAME's two RRsets are signed apart, and without DO nothing is added.
func TestSignedAnswers(t *testing.T) {
	s := newTestServer(t, fmt.Sprintf(logicConfig, "")+"dnssec: {key_dir: "+t.TempDir()+"}\n")
	key := s.table.Load().signer.keys["example.test."].pub
	for _, tc := range []struct {
		name    string
		qtype   uint16
		answers int // RRsets in the answer
		nsecHas []uint16
		nsecNot uint16
	}{
		{"app.example.test.", dns.TypeA, 1, nil, 0},
		{"alias.example.test.", dns.TypeA, 2, nil, 0},
		{"example.test.", dns.TypeDNSKEY, 1, nil, 0},
		{"nothere.example.test.", dns.TypeA, 0, []uint16{dns.TypeNSEC, dns.TypeRRSIG}, dns.TypeA},
		{"www.example.test.", dns.TypeAAAA, 0, []uint16{dns.TypeA, dns.TypeTXT}, dns.TypeAAAA},
		{"sub.example.test.", dns.TypeA, 0, []uint16{dns.TypeNSEC}, dns.TypeA}, // empty non-terminal
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		m.SetEdns0(1232, true)
		w := newRecorder(false, "127.0.0.1")
		s.ServeDNS(w, m)
		r := w.msg
		if r.Rcode != dns.RcodeSuccess || !r.IsEdns0().Do() {
			t.Fatalf("%s: rcode %s, DO %v", tc.name, dns.RcodeToString[r.Rcode], r.IsEdns0().Do())
		}
		if n := verifySection(t, key, r.Answer); n != tc.answers {
			t.Errorf("%s: %d signed RRsets in the answer, want %d:\n%v", tc.name, n, tc.answers, r)
		}
		verifySection(t, key, r.Ns)
		if tc.answers > 0 {
			continue
		}
		var nsec *dns.NSEC
		for _, rr := range r.Ns {
			if n, ok := rr.(*dns.NSEC); ok {
				nsec = n
			}
		}
		if nsec == nil || nsec.Hdr.Name != tc.name || nsec.NextDomain != `\000.`+tc.name {
			t.Fatalf("%s: NSEC %v", tc.name, nsec)
		}
		for _, ty := range tc.nsecHas {
			if !slices.Contains(nsec.TypeBitMap, ty) {
				t.Errorf("%s: NSEC lacks %s: %v", tc.name, dns.TypeToString[ty], nsec)
			}
		}
		if slices.Contains(nsec.TypeBitMap, tc.nsecNot) {
			t.Errorf("%s: NSEC claims the asked type: %v", tc.name, nsec)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion("nothere.example.test.", dns.TypeA)
	w := newRecorder(false, "127.0.0.1")
	s.ServeDNS(w, m)
	if w.msg.Rcode != dns.RcodeNameError || len(w.msg.Ns) != 1 {
		t.Fatalf("without DO: %v", w.msg)
	}
}

// verifySection checks that every RRset has one RRSIG that verifies with
// key, and returns the number of RRsets.
func verifySection(t *testing.T, key *dns.DNSKEY, rrs []dns.RR) int {
	t.Helper()
	sets := map[string][]dns.RR{}
	sigs := map[string]*dns.RRSIG{}
	var order []string
	for _, rr := range rrs {
		if sig, ok := rr.(*dns.RRSIG); ok {
			sigs[sig.Hdr.Name+dns.TypeToString[sig.TypeCovered]] = sig
			continue
		}
		k := rr.Header().Name + dns.TypeToString[rr.Header().Rrtype]
		if sets[k] == nil {
			order = append(order, k)
		}
		sets[k] = append(sets[k], rr)
	}
	for _, k := range order {
		sig := sigs[k]
		if sig == nil {
			t.Errorf("%s is not signed", k)
			continue
		}
		if err := sig.Verify(key, sets[k]); err != nil || !sig.ValidityPeriod(time.Now()) {
			t.Errorf("%s: signature does not verify: %v", k, err)
		}
	}
	return len(order)
}

// TestClusterSharesOneKey: a server with peers never makes a key of its
// own (a second key would make its answers bogus to validators trusting
// the registrar's DS); it refuses to start and leaves key_dir empty. The
// key `haven dns ds` makes, copied to another server's key_dir, is the one
// that server publishes and signs with.
func TestClusterSharesOneKey(t *testing.T) {
	conf := func(dir string) string {
		return fmt.Sprintf(logicConfig, "") + "dnssec: {key_dir: " + dir + "}\n" +
			"cluster: {name: a, peers: [{name: b, api: 'http://127.0.0.1:1'}]}\n"
	}
	empty := t.TempDir()
	if _, err := New(mustParse(t, conf(empty)), Options{}); !errors.Is(err, ErrNoSharedKey) {
		t.Fatalf("clustered server without a key: %v, want ErrNoSharedKey", err)
	}
	if left, _ := os.ReadDir(empty); len(left) != 0 {
		t.Fatalf("the refused start left %d files in key_dir", len(left))
	}
	made := t.TempDir()
	ds, err := DS(mustParse(t, conf(made)))
	if err != nil || len(ds) != 1 {
		t.Fatalf("haven dns ds: %v %v", ds, err)
	}
	copyDir(t, made, empty)
	s := newTestServer(t, conf(empty))
	pub := s.table.Load().signer.keys["example.test."].pub
	if got := pub.ToDS(dns.SHA256); got.Digest != ds[0].Digest {
		t.Fatalf("the server signs with %s, the DS printed is %s", got, ds[0])
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	es, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(to, e.Name()), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
