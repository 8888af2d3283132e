package dns

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/miekg/dns"
)

// keyFiles are the files of a zone's key: <zone>.key (the DNSKEY in zone
// file syntax) and <zone>.private (BIND private-key format); "next" names
// the key published ahead of a rollover.
func keyFiles(dir, origin, which string) (pub, priv string) {
	base := filepath.Join(dir, strings.TrimSuffix(origin, ".")+which)
	return base + ".key", base + ".private"
}

// ErrNoSharedKey: a server of a cluster found no key to sign with.
var ErrNoSharedKey = errors.New("no DNSSEC key in key_dir: the servers of a cluster share one key; " +
	"make it once with `haven dns ds --config <file>` and copy its .key and .private files to every server's key_dir")

// loadOrCreateKey loads the zone's key from the key_dir, or, when there is
// none and create allows it, makes one and stores it.
func loadOrCreateKey(sec *secConf, origin string, ttl uint32, create bool) (*zoneKey, bool, error) {
	pubPath, privPath := keyFiles(sec.keyDir, origin, "")
	k, err := readKey(pubPath, privPath)
	created := false
	if os.IsNotExist(err) && !create {
		return nil, false, fmt.Errorf("%s: %w", pubPath, ErrNoSharedKey)
	}
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
	if err := atomicfile.CreateFile(privPath, []byte(k.pub.PrivateKeyString(k.priv)), 0o600); err != nil {
		return err
	}
	return atomicfile.CreateFile(pubPath, []byte(k.pub.String()+"\n"), 0o600)
}

// DS returns the DS records (SHA-256) of the zones' keys, for the registrar:
// the active key's, then the next and the old key's while a rollover is
// under way.
func DS(cfg *Config) ([]*dns.DS, error) {
	return forZones(cfg, func(sec *secConf, origin string, ttl uint32) ([]*dns.DS, error) {
		k, _, err := loadOrCreateKey(sec, origin, ttl, true)
		if err != nil {
			return nil, err
		}
		out := []*dns.DS{k.pub.ToDS(dns.SHA256)}
		for _, x := range k.extra {
			out = append(out, x.ToDS(dns.SHA256))
		}
		return out, nil
	})
}

// NextKey creates the next key of every zone (a no-op where one exists):
// the first step of a rollover. It is published from the next reload.
func NextKey(cfg *Config) ([]*dns.DS, error) {
	return forZones(cfg, func(sec *secConf, origin string, ttl uint32) ([]*dns.DS, error) {
		pubPath, privPath := keyFiles(sec.keyDir, origin, ".next")
		k, err := readKey(pubPath, privPath)
		if os.IsNotExist(err) {
			if k, err = generateKey(origin, sec.alg, ttl); err == nil {
				err = writeKey(sec.keyDir, origin, ".next", k)
			}
		}
		if err != nil {
			return nil, err
		}
		return []*dns.DS{k.pub.ToDS(dns.SHA256)}, nil
	})
}

// forZones runs f for each zone of a config with a dnssec section, in
// canonical order, and collects the DS records it returns.
func forZones(cfg *Config, f func(sec *secConf, origin string, ttl uint32) ([]*dns.DS, error)) ([]*dns.DS, error) {
	t, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	if t.sec == nil {
		return nil, fmt.Errorf("%w: no dnssec section", ErrConfig)
	}
	var out []*dns.DS
	for _, origin := range sortedZones(t) {
		ds, err := f(t.sec, origin, t.zones[origin].soa.Hdr.Ttl)
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
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
