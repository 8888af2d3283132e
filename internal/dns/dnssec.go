package dns

import (
	"crypto"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Signature lifetimes: a signature is made valid from an hour ago (clock
// skew) for two weeks and made anew once less than a week is left, so a
// secondary that stops hearing from the primary keeps a valid zone for at
// least the SOA expire (one week).
const (
	sigValidity = 14 * 24 * time.Hour
	sigRefresh  = 7 * 24 * time.Hour
	sigBackdate = time.Hour
	sigCacheMax = 100000
)

// zoneKey is one zone's signing key (a combined signing key, flags 257).
type zoneKey struct {
	pub  *dns.DNSKEY
	tag  uint16
	priv crypto.Signer
	// published, not signing: the next and the previous key of a rollover
	extra []*dns.DNSKEY
}

// signer signs RRsets online and keeps the signatures, so an answer that
// repeats (a profile's answer between two health changes) is signed once.
type signer struct {
	keys  map[string]*zoneKey // by zone origin
	mu    sync.RWMutex
	cache map[string]*dns.RRSIG
}

// attachDNSSEC loads (or, the first time, creates) the key of every zone
// and publishes the DNSKEY RRset at the apex of the freshly compiled table.
func (s *Server) attachDNSSEC(t *table) error {
	if t.sec == nil {
		return nil
	}
	sg := &signer{keys: map[string]*zoneKey{}, cache: map[string]*dns.RRSIG{}}
	for origin, z := range t.zones {
		k, created, err := loadOrCreateKey(t.sec, origin, z.soa.Hdr.Ttl, !sharesKey(t))
		if err != nil {
			return fmt.Errorf("dnssec key of %s: %w", origin, err)
		}
		if created {
			s.log.Warn("dnssec key created: publish its DS at the registrar (haven dns ds)", "zone", origin)
		}
		k.tag = k.pub.KeyTag()
		sg.keys[origin] = k
		apex := z.names[origin]
		apex.rrs = append(apex.rrs, k.pub)
		for _, x := range k.extra {
			apex.rrs = append(apex.rrs, x)
		}
		s.log.Info("dnssec signing", "zone", origin, "key_tag", k.pub.KeyTag(), "ds", k.pub.ToDS(dns.SHA256).String(), "published_keys", 1+len(k.extra))
	}
	t.signer = sg
	return nil
}

// sharesKey: servers of a cluster must sign with one key (the DNSKEY RRset
// and the registrar's DS are the same whichever server a validator asks),
// so a clustered server never makes a key of its own; the operator makes
// it once with `haven dns ds` and copies it to every server.
func sharesKey(t *table) bool {
	return t.cluster != nil && len(t.cluster.peers) > 0
}

// sign returns the signature of one RRset, from the cache when the same
// RRset was signed recently enough.
func (sg *signer) sign(origin string, rrset []dns.RR, now time.Time) (*dns.RRSIG, error) {
	k := sg.keys[origin]
	if k == nil {
		return nil, fmt.Errorf("no key for %s", origin)
	}
	var buf [512]byte
	id := rrsetID(buf[:0], rrset)
	sg.mu.RLock()
	sig := sg.cache[string(id)] // no allocation for the lookup
	sg.mu.RUnlock()
	if sig != nil && time.Unix(int64(sig.Expiration), 0).Sub(now) > sigRefresh {
		return sig, nil
	}
	h := rrset[0].Header()
	sig = &dns.RRSIG{
		Hdr:        dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: h.Ttl},
		KeyTag:     k.tag,
		SignerName: origin,
		Algorithm:  k.pub.Algorithm,
		Inception:  uint32(now.Add(-sigBackdate).Unix()),
		Expiration: uint32(now.Add(sigValidity).Unix()),
	}
	if err := sig.Sign(k.priv, rrset); err != nil {
		return nil, err
	}
	sg.mu.Lock()
	if len(sg.cache) >= sigCacheMax {
		clear(sg.cache) // random names (black lies) must not grow it without bound
	}
	sg.cache[string(id)] = sig
	sg.mu.Unlock()
	return sig, nil
}

// rrsetID identifies an RRset for the signature cache: each record's owner
// in lower case (a signature holds for every case of it) and the set's wire
// form. It is packed as a message, which leaves the records untouched:
// dns.PackRR writes their Rdlength, a data race between queries sharing a
// zone's records.
func rrsetID(b []byte, rrset []dns.RR) []byte {
	for _, rr := range rrset {
		b = append(b, strings.ToLower(rr.Header().Name)...)
		b = append(b, 0)
	}
	var wire [1024]byte
	m := dns.Msg{Answer: rrset}
	p, err := m.PackBuffer(wire[:])
	if err != nil {
		for _, rr := range rrset {
			b = append(b, rr.String()...)
		}
		return b
	}
	return append(b, p...)
}

// signSection returns the records with an RRSIG after each RRset; records
// of one RRset need not be adjacent.
func (sg *signer) signSection(origin string, rrs []dns.RR, now time.Time) ([]dns.RR, error) {
	if len(rrs) == 0 {
		return rrs, nil
	}
	if oneSet(rrs) { // the usual answer: no grouping needed
		sig, err := sg.sign(origin, rrs, now)
		if err != nil {
			return nil, err
		}
		return append(rrs[:len(rrs):len(rrs)], sig), nil
	}
	var sets [][]dns.RR
	for _, rr := range rrs {
		i := slices.IndexFunc(sets, func(s []dns.RR) bool { return sameSet(s[0], rr) })
		if i < 0 {
			sets = append(sets, []dns.RR{rr})
		} else {
			sets[i] = append(sets[i], rr)
		}
	}
	out := make([]dns.RR, 0, len(rrs)+len(sets))
	for _, set := range sets {
		if set[0].Header().Rrtype == dns.TypeRRSIG {
			continue
		}
		sig, err := sg.sign(origin, set, now)
		if err != nil {
			return nil, err
		}
		out = append(append(out, set...), sig)
	}
	return out, nil
}

func oneSet(rrs []dns.RR) bool {
	for _, rr := range rrs[1:] {
		if !sameSet(rrs[0], rr) {
			return false
		}
	}
	return rrs[0].Header().Rrtype != dns.TypeRRSIG
}

func sameSet(a, b dns.RR) bool {
	return a.Header().Rrtype == b.Header().Rrtype && strings.EqualFold(a.Header().Name, b.Header().Name)
}
