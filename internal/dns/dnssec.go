package dns

import (
	"crypto"
	"fmt"
	"os"
	"path/filepath"
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
		k, created, err := loadOrCreateKey(t.sec, origin, z.soa.Hdr.Ttl)
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

// keyFiles are the files of a zone's key: <zone>.key (the DNSKEY in zone
// file syntax) and <zone>.private (BIND private-key format); "next" names
// the key published ahead of a rollover.
func keyFiles(dir, origin, which string) (pub, priv string) {
	base := filepath.Join(dir, strings.TrimSuffix(origin, ".")+which)
	return base + ".key", base + ".private"
}

func loadOrCreateKey(sec *secConf, origin string, ttl uint32) (*zoneKey, bool, error) {
	pubPath, privPath := keyFiles(sec.keyDir, origin, "")
	k, err := readKey(pubPath, privPath)
	created := false
	if os.IsNotExist(err) {
		k, err = createKey(sec, origin, ttl)
		created = true
	}
	if err != nil {
		return nil, false, err
	}
	for _, which := range []string{".next", ".old"} {
		pub, _ := keyFiles(sec.keyDir, origin, which)
		x, err := readPub(pub)
		if err == nil {
			k.extra = append(k.extra, x)
		} else if !os.IsNotExist(err) {
			return nil, false, err
		}
	}
	if !strings.EqualFold(k.pub.Hdr.Name, origin) {
		return nil, false, fmt.Errorf("%s holds a key of %s", pubPath, k.pub.Hdr.Name)
	}
	return k, created, nil
}

func readPub(pubPath string) (*dns.DNSKEY, error) {
	b, err := os.ReadFile(pubPath)
	if err != nil {
		return nil, err
	}
	rr, err := dns.NewRR(string(b))
	pub, ok := rr.(*dns.DNSKEY)
	if err != nil || !ok {
		return nil, fmt.Errorf("%s: not a DNSKEY record: %v", pubPath, err)
	}
	return pub, nil
}

func readKey(pubPath, privPath string) (*zoneKey, error) {
	pub, err := readPub(pubPath)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(privPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	priv, err := pub.ReadPrivateKey(f, privPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", privPath, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key cannot sign", privPath)
	}
	return &zoneKey{pub: pub, priv: signer}, nil
}

// createKey generates a key and stores it (0600) before it is used, so a
// restart signs with the same key the registrar's DS names.
func createKey(sec *secConf, origin string, ttl uint32) (*zoneKey, error) {
	k, err := generateKey(origin, sec.alg, ttl)
	if err != nil {
		return nil, err
	}
	if err := writeKey(sec.keyDir, origin, "", k); err != nil {
		return nil, err
	}
	return k, nil
}

func generateKey(origin string, alg uint8, ttl uint32) (*zoneKey, error) {
	pub := &dns.DNSKEY{Hdr: hdr(origin, dns.TypeDNSKEY, ttl), Flags: 257, Protocol: 3, Algorithm: alg}
	priv, err := pub.Generate(256) // P-256; Ed25519 keys have one size
	if err != nil {
		return nil, err
	}
	return &zoneKey{pub: pub, priv: priv.(crypto.Signer)}, nil
}

func writeKey(dir, origin, which string, k *zoneKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pubPath, privPath := keyFiles(dir, origin, which)
	if err := createFileAtomic(privPath, []byte(k.pub.PrivateKeyString(k.priv))); err != nil {
		return err
	}
	return createFileAtomic(pubPath, []byte(k.pub.String()+"\n"))
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
// in lower case (a signature holds for every case of it) and its wire form.
func rrsetID(b []byte, rrset []dns.RR) []byte {
	var wire [512]byte
	for _, rr := range rrset {
		b = append(b, strings.ToLower(rr.Header().Name)...)
		b = append(b, 0)
		n, err := dns.PackRR(rr, wire[:], 0, nil, false)
		if err != nil {
			b = append(b, rr.String()...) // larger than a buffer: rare, slower
		} else {
			b = append(b, wire[:n]...)
		}
	}
	return b
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

// DS returns the DS records (SHA-256) of the zones' keys, for the registrar:
// the active key's, then the next and the old key's while a rollover is
// under way.
func DS(cfg *Config) ([]*dns.DS, error) {
	t, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	if t.sec == nil {
		return nil, fmt.Errorf("%w: no dnssec section", ErrConfig)
	}
	var out []*dns.DS
	for _, origin := range sortedZones(t) {
		k, _, err := loadOrCreateKey(t.sec, origin, t.zones[origin].soa.Hdr.Ttl)
		if err != nil {
			return nil, err
		}
		out = append(out, k.pub.ToDS(dns.SHA256))
		for _, x := range k.extra {
			out = append(out, x.ToDS(dns.SHA256))
		}
	}
	return out, nil
}

// NextKey creates the next key of every zone (a no-op where one exists):
// the first step of a rollover. It is published from the next reload.
func NextKey(cfg *Config) ([]*dns.DS, error) {
	t, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	if t.sec == nil {
		return nil, fmt.Errorf("%w: no dnssec section", ErrConfig)
	}
	var out []*dns.DS
	for _, origin := range sortedZones(t) {
		pubPath, privPath := keyFiles(t.sec.keyDir, origin, ".next")
		k, err := readKey(pubPath, privPath)
		if os.IsNotExist(err) {
			if k, err = generateKey(origin, t.sec.alg, t.zones[origin].soa.Hdr.Ttl); err == nil {
				err = writeKey(t.sec.keyDir, origin, ".next", k)
			}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, k.pub.ToDS(dns.SHA256))
	}
	return out, nil
}

func sortedZones(t *table) []string {
	var out []string
	for o := range t.zones {
		out = append(out, o)
	}
	slices.SortFunc(out, compareNames)
	return out
}
