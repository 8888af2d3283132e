package rig

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/haven-dr/haven/internal/vnet"
)

// ShopName is the shop's DNS name, served by `haven dns`.
const ShopName = "shop.example.test"

// The seed's addresses: production 10.1.0.0/24, recovery 10.2.0.0/24, the
// same host numbers at both sites.
const (
	PrimDB, PrimWeb = "10.1.0.10", "10.1.0.20"
	RecDB, RecWeb   = "10.2.0.10", "10.2.0.20"
)

// ProdNet is the primary site's network.
var ProdNet = vnet.Network{Name: "prod", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}

// dnsConfig is haven dns's config: the shop's priority profile, primary
// first, with an HTTP monitor and TTL 1. Its API listens on
// 127.0.0.1:8053 of the internet's namespace.
func dnsConfig(listen string) string {
	return fmt.Sprintf(`listen: %s
api: 127.0.0.1:8053
zones:
  - name: example.test
profiles:
  - name: %s
    routing: priority
    ttl: 1
    monitor: {protocol: http, port: 80, path: /, interval: 1s, timeout: 500ms, tolerated_failures: 0, required_successes: 1}
    endpoints:
      - {name: primary, target: %s, priority: 1}
      - {name: recovery, target: %s, priority: 2}
`, listen, ShopName, PrimWeb, RecWeb)
}

// Shop is the protection config of the shop: machines db and web, one
// plan whose groups boot db, then web, then move customers by DNS.
type Shop struct {
	AgentURL, AgentToken string // the primary's agent; empty: machines without one
	DBPort               int    // db's health check port
	DBData, WebData      bool   // a data disk (mounted at /data) besides root
	Timeout              string // health checks and DNS actions
	WebBefore, WebAfter  string // more YAML actions of the web group
	DNSToken             string // haven dns's API token file
	Edge                 string // the internet's namespace, where DNS is asked
	Resolve              string // haven dns's address there
}

// YAML is the config for `haven apply`.
func (p Shop) YAML() string {
	var b strings.Builder
	b.WriteString(`# The shop: database first, then web, then customers move by DNS.
sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping:
  recovery: {prod: rec}
  test: {prod: drill}
`)
	if p.AgentURL != "" {
		fmt.Fprintf(&b, "agents:\n  - {name: prim, url: %q, token_file: %s, timeout: 3s}\n", p.AgentURL, p.AgentToken)
	}
	b.WriteString("machines:\n")
	p.machine(&b, "db", PrimDB, RecDB, p.DBData, fmt.Sprintf("{tcp_port: %d}", p.DBPort))
	p.machine(&b, "web", PrimWeb, RecWeb, p.WebData, "{http_port: 80, http_path: /}")
	fmt.Fprintf(&b, `plans:
  - name: shop
    groups:
      - name: database
        machines: [db]
      - name: web
        machines: [web]
`)
	if p.WebBefore != "" {
		fmt.Fprintf(&b, "        before: [%s]\n", p.WebBefore)
	}
	fmt.Fprintf(&b, `        after:
          - {type: dns, profile: %[1]s, endpoint: recovery, directions: [failover], timeout: %[2]s}
          - {type: dns, profile: %[1]s, endpoint: primary, directions: [failback], timeout: %[2]s}
`, ShopName, p.Timeout)
	if p.WebAfter != "" {
		fmt.Fprintf(&b, "          %s\n", p.WebAfter)
	}
	fmt.Fprintf(&b, "traffic: {api: \"http://127.0.0.1:8053\", token_file: %s, netns: %s, resolve: %q}\n", p.DNSToken, p.Edge, p.Resolve)
	return b.String()
}

func (p Shop) machine(b *strings.Builder, name, addr, rec string, data bool, health string) {
	fmt.Fprintf(b, "  - name: %s\n", name)
	if p.AgentURL != "" {
		b.WriteString("    agent: prim\n")
	}
	disks := "[{name: root}]"
	if data {
		disks = "[{name: root}, {name: data, mount: /data}]"
	}
	fmt.Fprintf(b, `    disks: %s
    nics: [{name: eth0, network: prod, address: %s/24, recovery: static, static: %s}]
    health: %s
    health_timeout: %s
`, disks, addr, rec, health, p.Timeout)
}
