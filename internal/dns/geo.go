package dns

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// geoMap maps client subnets to region names, longest prefix first. The file
// format is one "CIDR REGION" pair per line; '#' starts a comment.
type geoMap struct {
	entries []geoEntry
}

type geoEntry struct {
	prefix netip.Prefix
	region string
}

// worldRegion is the catch-all region, as in Traffic Manager.
const worldRegion = "WORLD"

func loadGeo(path string) (*geoMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	g := &geoMap{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(strings.SplitN(sc.Text(), "#", 2)[0])
		if len(fields) == 0 {
			continue
		}
		p, err := parsePrefix(fields[0])
		if len(fields) != 2 || err != nil {
			return nil, fmt.Errorf("%s line %d: want \"CIDR REGION\"", path, line)
		}
		g.entries = append(g.entries, geoEntry{p, fields[1]})
	}
	slices.SortStableFunc(g.entries, func(a, b geoEntry) int { return b.prefix.Bits() - a.prefix.Bits() })
	return g, sc.Err()
}

// region returns the region of a client address (WORLD when no prefix
// matches) and the ECS scope of that decision: the matched prefix length,
// or longer where a more specific prefix of another region lies close to
// the client.
func (g *geoMap) region(a netip.Addr) (string, int) {
	if g == nil {
		return worldRegion, 0
	}
	region, bits := worldRegion, -1
	for _, e := range g.entries {
		if e.prefix.Contains(a) {
			region, bits = e.region, e.prefix.Bits()
			break
		}
	}
	scope := max(bits, 0)
	for _, e := range g.entries {
		if e.prefix.Bits() <= bits {
			break // sorted longest first
		}
		if !strings.EqualFold(e.region, region) {
			scope = max(scope, excludeScope(a, bits, []netip.Prefix{e.prefix}))
		}
	}
	return region, scope
}
