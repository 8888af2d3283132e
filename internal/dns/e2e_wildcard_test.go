package dns

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const wildcardConfig = `listen: 127.0.0.1:0
zones:
  - name: example.test
    negative_ttl: 30
    records:
      - {name: '*', type: A, value: 192.0.2.50}
      - {name: '*', type: TXT, value: '"wild"'}
      - {name: www, type: A, value: 192.0.2.9}
      - {name: deep.sub, type: A, value: 192.0.2.1}
      - {name: '*.alias', type: CNAME, value: www.example.test.}
profiles:
  - name: '*.app.example.test'
    endpoints:
      - {name: primary, target: 192.0.2.61, priority: 1}
      - {name: recovery, target: 192.0.2.62, priority: 2}
`

// TestWildcardsWithRealQueries checks RFC 4592 matching through the real
// server: a wildcard answers names that do not exist below its closest
// encloser, under the asked name; existing names and empty non-terminals
// are never covered.
func TestWildcardsWithRealQueries(t *testing.T) {
	s := startServer(t, wildcardConfig)
	c := &dns.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string
	}{
		{"a.example.test.", dns.TypeA, 0, []string{"a.example.test.\t300\tIN\tA\t192.0.2.50"}},
		{"A.B.example.test.", dns.TypeTXT, 0, []string{"a.b.example.test.\t300\tIN\tTXT\t\"wild\""}},
		{"a.example.test.", dns.TypeAAAA, 0, nil},  // NODATA: the wildcard has no AAAA
		{"www.example.test.", dns.TypeTXT, 0, nil}, // exists: no wildcard
		{"sub.example.test.", dns.TypeA, 0, nil},   // empty non-terminal exists
		{"x.sub.example.test.", dns.TypeA, 3, nil}, // closest encloser sub has no *
		{"*.example.test.", dns.TypeA, 0, []string{"*.example.test.\t300\tIN\tA\t192.0.2.50"}},
		{"x.alias.example.test.", dns.TypeA, 0, []string{
			"x.alias.example.test.\t300\tIN\tCNAME\twww.example.test.", "www.example.test.\t300\tIN\tA\t192.0.2.9"}},
		{"eu.app.example.test.", dns.TypeA, 0, []string{"eu.app.example.test.\t60\tIN\tA\t192.0.2.61"}},
		{"app.example.test.", dns.TypeA, 0, nil}, // the profile's parent exists (empty)
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		r, _, err := c.Exchange(m, s.DNSAddr())
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != tc.rcode || !r.Authoritative || !slices.Equal(rrStrings(r.Answer), tc.answer) {
			t.Errorf("%s %s: rcode %s answer %q, want %s %q", tc.name, dns.TypeToString[tc.qtype],
				dns.RcodeToString[r.Rcode], rrStrings(r.Answer), dns.RcodeToString[tc.rcode], tc.answer)
		}
		if len(tc.answer) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Errorf("%s: negative answer without SOA: %v", tc.name, r.Ns)
		}
	}
}

// TestWildcardNotLeftmostRefused: a '*' that RFC 4592 would take literally
// is refused with its line instead of being served as a plain name.
func TestWildcardNotLeftmostRefused(t *testing.T) {
	for _, tc := range []struct{ from, to, field string }{
		{"name: deep.sub,", "name: deep.*,", "zones[0].records[3].name"},
		{"name: www,", "name: 'w*',", "zones[0].records[2].name"},
		{"name: '*.app.example.test'", "name: 'x.*.example.test'", "profiles[0].name"},
	} {
		y := strings.Replace(wildcardConfig, tc.from, tc.to, 1)
		err := parseAndCompile(y)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), "RFC 4592") {
			t.Errorf("%s: err %v, want a ConfigError on %s", tc.to, err, tc.field)
			continue
		}
		if want := lineOf(y, tc.to); ce.Line != want {
			t.Errorf("%s: line %d, want %d", tc.to, ce.Line, want)
		}
	}
}

func lineOf(y, s string) int {
	return strings.Count(y[:strings.Index(y, s)], "\n") + 1
}
