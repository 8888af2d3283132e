package demo

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/demo/rig"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/vnet"
)

// ShopName is the shop's DNS name, served by `haven dns`.
const ShopName = rig.ShopName

// The customers sit on 10.9.0.0/30 behind the "internet", whose end of
// that link is where haven dns answers.
const (
	primWeb, primDB = rig.PrimWeb, rig.PrimDB
	recWeb          = rig.RecWeb
	resolverAddr    = "127.0.0.2:53" // Unbound, in the customers' namespace
	dnsAddr         = "10.9.0.1:53"  // haven dns, in the internet's namespace
)

var (
	// The customers' link: inet 10.9.0.1, customers 10.9.0.2.
	custNet  = netip.MustParsePrefix("10.9.0.0/30")
	inetSide = netip.MustParsePrefix("10.9.0.1/30")
	custSide = netip.MustParsePrefix("10.9.0.2/30")
)

// site is the demo's world on this host: the rig's, plus the customers.
type site struct {
	*rig.Rig
	custNS    string // the customers: Unbound and the load generator
	agentPort int
	token     string // agent control token file
	server    rig.Server
	client    *client.Client
}

// network builds the primary site and the customers' internet.
func (s *site) network() error {
	if err := s.PrimarySite(); err != nil {
		return err
	}
	return s.customersNet()
}

// customersNet gives the customers a namespace of their own behind inet:
// a /30 to inet, their default route through it, inet forwarding. The
// primary site (a lab site, with no default route) gets a route back; the
// recovery site replies through its default route to inet. The test
// network has no uplink at all, so forwarding in inet cannot reach it.
func (s *site) customersNet() error {
	s.custNS = s.Lab.ID + "-customers"
	ns := s.custNS
	s.Defer("ip netns del "+ns, func() error { return vnet.Netlink{}.DelNS(ns) })
	steps := []func() error{
		func() error { return s.Ops.AddNS(ns) },
		func() error { return s.Ops.AddVeth(s.Inet, "to-customers", ns, "uplink", nil) },
		func() error { return s.Ops.AddAddr(s.Inet, "to-customers", inetSide) },
		func() error { return s.Ops.LinkUp(s.Inet, "to-customers") },
		func() error { return s.Ops.AddAddr(ns, "uplink", custSide) },
		func() error { return s.Ops.LinkUp(ns, "uplink") },
		func() error { return s.Ops.AddRoute(ns, netip.MustParsePrefix("0.0.0.0/0"), inetSide.Addr()) },
		func() error { return s.Ops.SetForwarding(s.Inet, true) },
		s.routeCustomers,
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return fmt.Errorf("customers' network: %w", err)
		}
	}
	return nil
}

// routeCustomers routes the customers' subnet from the primary site to
// inet's end of their transit link.
func (s *site) routeCustomers() error {
	edgeIP, err := rig.LinkAddr(s.Inet, "to-prim")
	if err != nil {
		return err
	}
	_, err = s.Command("ip", "-n", s.PrimNS, "route", "replace", custNet.String(), "via", edgeIP)
	return err
}

// copyImage clones a cached template onto the reflink filesystem.
func (s *site) copyImage(src, name string) (string, error) {
	dst := filepath.Join(s.XFS, name)
	_, err := s.Command("cp", "--reflink=auto", "--sparse=always", src, dst)
	return dst, err
}

func (s *site) machinesUp(ctx context.Context, imgs Images) error {
	web, err := s.copyImage(imgs.Web, "web.img")
	if err != nil {
		return err
	}
	dbRoot, err := s.copyImage(imgs.DBRoot, "db-root.img")
	if err != nil {
		return err
	}
	dbData, err := s.copyImage(imgs.DBData, "db-data.img")
	if err != nil {
		return err
	}
	db := machine.Spec{Name: "db", Disks: []machine.Disk{{Name: "root", Path: dbRoot}, {Name: "data", Path: dbData, Mount: "/data"}},
		NICs:   []vnet.NIC{{Name: "eth0", Network: "prod", Addr: netip.MustParsePrefix(primDB + "/24")}},
		Health: machine.HealthCheck{TCPPort: 5432}}
	w := machine.Spec{Name: "web", Disks: []machine.Disk{{Name: "root", Path: web}},
		NICs:   []vnet.NIC{{Name: "eth0", Network: "prod", Addr: netip.MustParsePrefix(primWeb + "/24")}},
		Health: machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"}}
	for _, m := range []machine.Spec{db, w} {
		m.StopTimeout = 20 * time.Second
		m.ConsoleLog = filepath.Join(s.LogDir, m.Name+".console.log")
		if err := s.PrimaryMachine(ctx, m); err != nil {
			return err
		}
	}
	return rig.Eventually(ctx, 90*time.Second, "the shop answers at the primary site", func() error {
		_, err := rig.HTTPIn(ctx, s.custNS, "GET", "http://"+primWeb+"/", "")
		return err
	})
}

// startUnbound is the customers' caching resolver, in their namespace: it
// asks haven dns, across inet, for example.test (a stub zone; "test." is a
// reserved local zone otherwise).
func (s *site) startUnbound(ctx context.Context) error {
	bin, err := exec.LookPath("unbound")
	if err != nil {
		return fmt.Errorf("unbound not found: apt-get install unbound (the customers' resolver)")
	}
	dir := filepath.Join(s.Dir, "unbound")
	os.MkdirAll(dir, 0o755)
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.2
  port: 53
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "%[1]s"
  pidfile: "%[1]s/unbound.pid"
  use-syslog: no
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  qname-minimisation: no
  module-config: "iterator"
  local-zone: "test." nodefault
stub-zone:
  name: "example.test"
  stub-addr: %[2]s@53
`, dir, strings.Split(dnsAddr, ":")[0])
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := s.Start("unbound", s.custNS, bin, "-d", "-c", path); err != nil {
		return err
	}
	return rig.Eventually(ctx, 30*time.Second, "Unbound resolves "+ShopName, func() error {
		ips, err := rig.Resolve(s.custNS, resolverAddr)
		if err == nil && (len(ips) != 1 || ips[0] != primWeb) {
			err = fmt.Errorf("answers %v", ips)
		}
		return err
	})
}

func (s *site) startAgent() error {
	a := rig.Agent{Port: s.agentPort, ServerPort: s.server.Port, Token: s.token, Machines: []rig.AgentMachine{
		{Name: "db", Group: "shop", Disks: fmt.Sprintf("[{name: root, path: %[1]s/db-root.img}, {name: data, path: %[1]s/db-data.img}]", s.XFS),
			Policy: "{frequency: 15s, app_frequency: 1m, rpo_alert: 1m}"},
		{Name: "web", Group: "shop", Disks: fmt.Sprintf("[{name: root, path: %s/web.img}]", s.XFS),
			Policy: "{frequency: 15s, app_frequency: 1m, rpo_alert: 1m}"},
	}}
	if psql, _ := exec.LookPath("psql"); psql != "" {
		// App-consistent points: PostgreSQL flushes everything first.
		a.Machines[0].Hooks = fmt.Sprintf("{pre: \"ip netns exec %s %s -h %s -U postgres -c CHECKPOINT\", timeout: 20s}", s.PrimNS, psql, primDB)
	}
	return s.StartAgent(a)
}

func (s *site) startServer(ctx context.Context) (err error) {
	s.client, err = s.StartServer(ctx, s.server)
	return err
}

func (s *site) protection() string {
	return rig.Shop{AgentURL: fmt.Sprintf("http://127.0.0.1:%d", s.agentPort), AgentToken: s.token,
		DBPort: 5432, DBData: true, Timeout: "2m", DNSToken: s.DNSToken(), Edge: s.Inet, Resolve: dnsAddr}.YAML()
}
