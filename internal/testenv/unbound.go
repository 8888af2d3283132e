package testenv

import (
	"fmt"
	"testing"
)

// Unbound starts Unbound on 127.0.0.1 as a caching resolver for zone, with
// the authoritative server at 127.0.0.1:authPort as its stub, sending EDNS
// Client Subnet to it and caching answers by the returned scope (its
// subnetcache module). It returns the resolver's address; the process is
// killed in t.Cleanup.
func Unbound(t testing.TB, zone string, authPort int) string {
	t.Helper()
	return startUnbound(t, zone, authPort, "subnetcache iterator",
		"  send-client-subnet: 127.0.0.1\n  max-client-subnet-ipv4: 24\n")
}

// UnboundValidating starts Unbound on 127.0.0.1 as a validating resolver
// for zone, with the authoritative server at 127.0.0.1:authPort as its
// stub and anchors (DNSKEY or DS records in zone-file syntax; several act
// like a DS set with several keys) as the zone's trust anchors, so its
// answers are secure (AD) only when they validate.
func UnboundValidating(t testing.TB, zone string, authPort int, anchors ...string) string {
	t.Helper()
	return startUnbound(t, zone, authPort, "validator iterator", trustAnchors(anchors))
}

// trustAnchors is the server-section lines naming anchors as trusted.
func trustAnchors(anchors []string) string {
	extra := "  val-log-level: 2\n"
	for _, a := range anchors {
		extra += fmt.Sprintf("  trust-anchor: \"%s\"\n", a)
	}
	return extra
}

func startUnbound(t testing.TB, zone string, authPort int, modules, extra string) string {
	t.Helper()
	return startUnboundStub(t, zone, modules, extra, fmt.Sprintf("127.0.0.1:%d", authPort))
}

// tld is the last label: Unbound serves reserved names such as "test." as
// local zones unless told otherwise.
func tld(zone string) string {
	for i := len(zone) - 2; i >= 0; i-- {
		if zone[i] == '.' {
			return zone[i+1:]
		}
	}
	return zone
}
