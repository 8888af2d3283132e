package dns

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults, chosen to match Azure Traffic Manager where it has one.
const (
	defaultZoneTTL     = 300
	defaultNegativeTTL = 60
	defaultProfileTTL  = 60
	defaultMaxAnswers  = 8
	defaultInterval    = 30 * time.Second
	maxTimeout         = 10 * time.Second
)

// errs collects configuration problems so one run reports all of them.
type errs []error

func (e *errs) add(line int, field, format string, args ...any) {
	*e = append(*e, &ConfigError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (e errs) err() error { return errors.Join(e...) }

// compile validates a configuration and builds the table it describes. It
// starts nothing: health checkers are attached by the server.
func compile(c *Config) (*table, error) {
	var e errs
	t := &table{zones: map[string]*zone{}, listen: c.Listen, api: c.API}
	checkAddr(&e, c.at, "listen", c.Listen)
	checkAddr(&e, c.at, "api", c.API)
	t.files = compileFiles(&e, c)
	if len(c.Zones) == 0 {
		e.add(c.at.line, "zones", "at least one zone is required")
	}
	for i := range c.Zones {
		compileZone(&e, t, &c.Zones[i], fmt.Sprintf("zones[%d]", i))
	}
	compileProfiles(&e, t, c)
	compileRateLimit(&e, t, c.RateLimit)
	compileTransfer(&e, t, c)
	compileDNSSEC(&e, t, c)
	compileCluster(&e, t, c)
	return t, e.err()
}

func checkAddr(e *errs, p pos, field, v string) {
	if v == "" {
		return
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		e.add(p.lineOf(field), field, "%q is not host:port", v)
	}
}

func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

func dirOf(path string) string { return filepath.Dir(path) }

func compileZone(e *errs, t *table, zc *Zone, field string) {
	if !dns.IsFqdn(dns.Fqdn(zc.Name)) || zc.Name == "" {
		e.add(zc.at.lineOf("name"), field+".name", "%q is not a domain name", zc.Name)
		return
	}
	if _, ok := dns.IsDomainName(zc.Name); !ok || strings.Contains(zc.Name, "*") {
		e.add(zc.at.lineOf("name"), field+".name", "%q is not a domain name", zc.Name)
		return
	}
	origin := canonical(zc.Name)
	if t.zones[origin] != nil {
		e.add(zc.at.lineOf("name"), field+".name", "zone %s is listed twice", origin)
		return
	}
	z := &zone{origin: origin, names: map[string]*node{}}
	t.zones[origin] = z
	ttl := orDefault(zc.TTL, defaultZoneTTL)
	apex := z.addName(origin)
	z.soa = buildSOA(zc, origin, ttl)
	apex.rrs = append(apex.rrs, z.soa)
	nss := zc.NS
	if len(nss) == 0 {
		nss = []string{"ns1." + origin}
	}
	for _, ns := range nss {
		if _, ok := dns.IsDomainName(ns); !ok {
			e.add(zc.at.lineOf("ns"), field+".ns", "%q is not a domain name", ns)
			continue
		}
		apex.rrs = append(apex.rrs, &dns.NS{Hdr: hdr(origin, dns.TypeNS, ttl), Ns: canonical(ns)})
	}
	z.soa.Ns = canonical(nss[0])
	for i := range zc.Records {
		compileRecord(e, z, &zc.Records[i], ttl, fmt.Sprintf("%s.records[%d]", field, i))
	}
}

func buildSOA(zc *Zone, origin string, ttl uint32) *dns.SOA {
	mbox := zc.Mbox
	if mbox == "" {
		mbox = "hostmaster." + origin
	}
	serial := zc.Serial
	if serial == 0 {
		serial = uint32(time.Now().Unix()) // a reload bumps it
	}
	return &dns.SOA{
		Hdr: hdr(origin, dns.TypeSOA, ttl), Mbox: canonical(mbox), Serial: serial,
		Refresh: 3600, Retry: 600, Expire: 604800,
		Minttl: orDefault(zc.NegativeTTL, defaultNegativeTTL),
	}
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// relName turns a record or profile name into a canonical FQDN inside origin.
func relName(name, origin string) (string, bool) {
	switch {
	case name == "@" || name == "":
		return origin, true
	case dns.IsFqdn(name):
		n := canonical(name)
		return n, dns.IsSubDomain(origin, n)
	}
	return canonical(name + "." + origin), true
}
