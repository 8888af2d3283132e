package dns

import (
	"slices"
	"strings"
	"testing"
)

// TestTransferConfigErrors: each bad field of the new sections is named
// with its line, and all are reported at once.
func TestTransferConfigErrors(t *testing.T) {
	c := mustParse(t, `zones: [{name: example.test}]
tsig_keys:
  - {name: k1, algorithm: hmac-md5, secret: "c2hvcnQ="}
zone_transfer:
  key: nokey
  allow: [10.0.0.0/33]
  notify: [192.0.2.1]
dnssec: {algorithm: rsasha1}
`)
	_, err := compile(c)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"line 3: tsig_keys[0].algorithm", "line 3: tsig_keys[0].secret",
		"line 5: zone_transfer.key", "line 6: zone_transfer.allow", "line 7: zone_transfer.notify",
		"line 8: dnssec.algorithm", "dnssec.key_dir",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in:\n%v", want, err)
		}
	}
}

// TestCanonicalOrder is RFC 4034 section 6.1's example, shuffled.
func TestCanonicalOrder(t *testing.T) {
	want := []string{"example.", "a.example.", "yljkjljk.a.example.", `Z.a.example.`,
		`zABC.a.EXAMPLE.`, "z.example.", `\001.z.example.`, `*.z.example.`, `\200.z.example.`}
	got := slices.Clone(want)
	slices.Reverse(got)
	got[0], got[4] = got[4], got[0]
	slices.SortStableFunc(got, compareNames)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
}

// TestSteadyAnswerIsDeterministic: a weighted profile's zone-file answer
// does not change from one snapshot to the next (only health may move it).
func TestSteadyAnswerIsDeterministic(t *testing.T) {
	tb, err := compile(mustParse(t, `zones: [{name: example.test}]
profiles:
  - name: w.example.test
    routing: weighted
    endpoints:
      - {name: a, target: 192.0.2.1, weight: 1}
      - {name: b, target: 192.0.2.2, weight: 5}
  - name: m.example.test
    routing: multivalue
    max_answers: 2
    endpoints:
      - {name: a, target: 192.0.2.1}
      - {name: b, target: 192.0.2.2}
      - {name: c, target: 192.0.2.3}
`))
	if err != nil {
		t.Fatal(err)
	}
	z := tb.zones["example.test."]
	first := contentSum(zoneRecords(tb, z))
	for range 50 {
		if contentSum(zoneRecords(tb, z)) != first {
			t.Fatal("zone content changed without a health change")
		}
	}
	var got []string
	for _, rr := range zoneRecords(tb, z) {
		got = append(got, strings.Join(strings.Fields(rr.String()), " "))
	}
	for _, want := range []string{"w.example.test. 60 IN A 192.0.2.2", "m.example.test. 60 IN A 192.0.2.1", "m.example.test. 60 IN A 192.0.2.2"} {
		if !slices.Contains(got, want) {
			t.Errorf("no %q in %v", want, got)
		}
	}
	if slices.Contains(got, "m.example.test. 60 IN A 192.0.2.3") {
		t.Errorf("multivalue beyond max_answers: %v", got)
	}
}
