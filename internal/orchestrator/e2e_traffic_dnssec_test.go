package orchestrator

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/testenv"
)

// The cluster's servers sign with one shared key, as docs/dns.md tells
// the operator to deploy it: `haven dns ds` makes it on the first server,
// its files are copied to the others' key_dir, and customers resolve
// through a validating Unbound trusting only the DS that command printed.

// errInsecure: a customer got an answer that is not secure (no AD bit) or
// that the validator found bogus; never retried, always a failure.
var errInsecure = errors.New("answer not secure")

func keyDir(p *dnsProc) string { return filepath.Join(p.dir, "keys") }

// shareKey makes the zone's key with `haven dns ds` on the first server
// and copies its files to every other server's key_dir.
func shareKey(t *testing.T, ps []*dnsProc) {
	t.Helper()
	ds := dsOf(t, ps[0])
	for _, p := range ps {
		p.ds = ds
	}
	files, err := os.ReadDir(keyDir(ps[0]))
	if err != nil || len(files) == 0 {
		t.Fatalf("haven dns ds made no key in %s: %v", keyDir(ps[0]), err)
	}
	for _, p := range ps[1:] {
		if err := os.MkdirAll(keyDir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(keyDir(ps[0]), f.Name()))
			if err == nil {
				err = os.WriteFile(filepath.Join(keyDir(p), f.Name()), b, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// dsOf is what `haven dns ds` prints for p's config: the DS to publish.
func dsOf(t *testing.T, p *dnsProc) []string {
	t.Helper()
	out, err := exec.Command(p.bin, "dns", "ds", "--config", p.config).Output()
	if err != nil {
		t.Fatalf("haven dns ds --config %s: %v", p.config, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// validatingResolver is the customers' resolver: Unbound with a stub zone
// listing every server, trusting the DS all of them print (they must print
// the same). Every answer it gives from here to the end of the test is
// watched: an insecure or bogus one fails the test.
func validatingResolver(t *testing.T, ps []*dnsProc) string {
	t.Helper()
	ds := dsOf(t, ps[0])
	var addrs []string
	for _, p := range ps {
		if got := dsOf(t, p); !slices.Equal(got, ds) {
			t.Fatalf("%s prints DS %v, %s prints %v: the servers do not share the key", p.name, got, ps[0].name, ds)
		}
		addrs = append(addrs, p.dnsAddr())
	}
	resolver := testenv.UnboundStubValidating(t, trafficZone, ds, addrs...)
	watchSecure(t, resolver)
	signedAnswers(t, ps...)
	return resolver
}

// signedAnswers asks each server directly and checks its answer's RRSIG
// against the key the published DS names. Unbound alone would not see a
// server signing with another key: it takes a bogus answer for a broken
// server and asks the next one.
func signedAnswers(t *testing.T, ps ...*dnsProc) {
	t.Helper()
	for _, p := range ps {
		if err := signedByDS(p); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
}

func signedByDS(p *dnsProc) error {
	keys, _, err := askSigned(p.dnsAddr(), trafficZone, mdns.TypeDNSKEY)
	if err != nil {
		return err
	}
	var key *mdns.DNSKEY
	for _, rr := range keys {
		if k, ok := rr.(*mdns.DNSKEY); ok && slices.Contains(p.ds, k.ToDS(mdns.SHA256).String()) {
			key = k
		}
	}
	if key == nil {
		return fmt.Errorf("publishes no key the DS %v names: %v", p.ds, keys)
	}
	rrs, sigs, err := askSigned(p.dnsAddr(), trafficProfile, mdns.TypeA)
	if err != nil {
		return err
	}
	for _, sig := range sigs {
		if sig.KeyTag == key.KeyTag() {
			if err := sig.Verify(key, rrs); err != nil {
				return fmt.Errorf("the A RRSIG does not verify with the shared key: %w", err)
			}
			return nil
		}
	}
	return fmt.Errorf("the A answer %v has no RRSIG by the shared key (tag %d): %v", rrs, key.KeyTag(), sigs)
}

// askSigned asks addr with DO set; it returns the answer's records of
// qtype and its RRSIGs.
func askSigned(addr, name string, qtype uint16) ([]mdns.RR, []*mdns.RRSIG, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	m.SetEdns0(1232, true)
	r, _, err := (&mdns.Client{Timeout: time.Second}).Exchange(m, addr)
	if err != nil {
		return nil, nil, err
	}
	var rrs []mdns.RR
	var sigs []*mdns.RRSIG
	for _, rr := range r.Answer {
		if sig, ok := rr.(*mdns.RRSIG); ok {
			sigs = append(sigs, sig)
		} else if rr.Header().Rrtype == qtype {
			rrs = append(rrs, rr)
		}
	}
	if len(rrs) == 0 {
		return nil, nil, fmt.Errorf("no %s answer for %s (rcode %s)", mdns.TypeToString[qtype], name, mdns.RcodeToString[r.Rcode])
	}
	return rrs, sigs, nil
}

// watchSecure asks the resolver every 100 ms until the test ends and fails
// it if any answer was insecure or bogus, or none was secure.
func watchSecure(t *testing.T, resolver string) {
	stop, done := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var secure int
	var bad []string
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			got, err := askServer(resolver, true)
			mu.Lock()
			if errors.Is(err, errInsecure) {
				bad = append(bad, err.Error())
			} else if err == nil && len(got) > 0 {
				secure++
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		if len(bad) > 0 {
			t.Errorf("customers got %d answers that are not secure (and %d secure), first: %s", len(bad), secure, bad[0])
		}
		if secure == 0 {
			t.Error("the watcher saw no secure answer at all")
		}
	})
}

// checkSecure turns a resolver's reply into errInsecure when it is not
// secure: an answer without the AD bit, or a SERVFAIL whose Extended DNS
// Error says validation failed (a SERVFAIL without one is a server that
// did not answer, which the caller may retry).
func checkSecure(r *mdns.Msg) error {
	if r.Rcode == mdns.RcodeSuccess && !r.AuthenticatedData {
		return fmt.Errorf("%w: AD unset on %v", errInsecure, r.Answer)
	}
	if opt := r.IsEdns0(); opt != nil && r.Rcode == mdns.RcodeServerFailure {
		for _, o := range opt.Option {
			if e, ok := o.(*mdns.EDNS0_EDE); ok && dnssecFailure(e.InfoCode) {
				return fmt.Errorf("%w: bogus: %s", errInsecure, e.String())
			}
		}
	}
	return nil
}

// dnssecFailure: the Extended DNS Errors a validator gives for a bogus
// answer (RFC 8914 codes 1, 2 and 5 to 12).
func dnssecFailure(code uint16) bool {
	switch code {
	case mdns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm, mdns.ExtendedErrorCodeUnsupportedDSDigestType:
		return true
	}
	return code >= mdns.ExtendedErrorCodeDNSSECIndeterminate && code <= mdns.ExtendedErrorCodeNSECMissing
}
