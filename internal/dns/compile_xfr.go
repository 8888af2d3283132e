package dns

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/miekg/dns"
)

type tsigKey struct {
	name, alg, secret string // canonical name and algorithm, base64 secret
}

// xfrConf is a compiled zone_transfer section.
type xfrConf struct {
	key    tsigKey
	allow  []netip.Prefix
	notify []string
}

// secConf is a compiled dnssec section.
type secConf struct {
	alg    uint8
	keyDir string
}

var tsigAlgs = map[string]string{"hmac-sha256": dns.HmacSHA256, "hmac-sha384": dns.HmacSHA384, "hmac-sha512": dns.HmacSHA512}

func compileTransfer(e *errs, t *table, c *Config) {
	t.tsig = map[string]tsigKey{}
	for i, k := range c.TSIGKeys {
		f := fmt.Sprintf("tsig_keys[%d]", i)
		alg, ok := tsigAlgs[strings.ToLower(strings.TrimSuffix(orDefault(k.Algorithm, "hmac-sha256"), "."))]
		if !ok {
			e.add(k.at.lineOf("algorithm"), f+".algorithm", "%q is not hmac-sha256, hmac-sha384 or hmac-sha512", k.Algorithm)
		}
		if raw, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || len(raw) < 16 {
			e.add(k.at.lineOf("secret"), f+".secret", "must be base64 of at least 16 bytes (e.g. keymgr -t name hmac-sha256)")
		}
		name := canonical(k.Name)
		if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "" || t.tsig[name].name != "" {
			e.add(k.at.lineOf("name"), f+".name", "%q is not a domain name or is listed twice", k.Name)
			continue
		}
		t.tsig[name] = tsigKey{name: name, alg: alg, secret: k.Secret}
	}
	x := c.Transfer
	if x == nil {
		return
	}
	t.xfr = &xfrConf{key: t.tsig[canonical(x.Key)], notify: x.Notify}
	if t.xfr.key.name == "" {
		e.add(x.at.lineOf("key"), "zone_transfer.key", "%q is not one of tsig_keys (transfers are always signed)", x.Key)
	}
	for _, a := range x.Allow {
		p, err := parsePrefix(a)
		if err != nil {
			e.add(x.at.lineOf("allow"), "zone_transfer.allow", "%q is not an address or prefix", a)
			continue
		}
		t.xfr.allow = append(t.xfr.allow, p)
	}
	for _, n := range x.Notify {
		if _, _, err := net.SplitHostPort(n); err != nil {
			e.add(x.at.lineOf("notify"), "zone_transfer.notify", "%q is not host:port", n)
		}
	}
}

func compileDNSSEC(e *errs, t *table, c *Config) {
	d := c.DNSSEC
	if d == nil {
		return
	}
	t.sec = &secConf{keyDir: c.path(d.KeyDir)}
	switch strings.ToLower(orDefault(d.Algorithm, "ecdsap256sha256")) {
	case "ecdsap256sha256":
		t.sec.alg = dns.ECDSAP256SHA256
	case "ed25519":
		t.sec.alg = dns.ED25519
	default:
		e.add(d.at.lineOf("algorithm"), "dnssec.algorithm", "%q is not ecdsap256sha256 or ed25519", d.Algorithm)
	}
	if t.sec.keyDir == "" && c.file != "" {
		t.sec.keyDir = strings.TrimSuffix(c.file, filepath.Ext(c.file)) + ".dnssec"
	}
	if t.sec.keyDir == "" {
		e.add(d.at.line, "dnssec.key_dir", "required when the config is not read from a file")
	}
}
