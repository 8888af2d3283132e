package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/vnet"
)

// ShopName is the shop's DNS name, served by `haven dns`.
const ShopName = "shop.example.test"

// The seed's addresses: production 10.1.0.0/24, recovery 10.2.0.0/24 (the
// same host numbers); the customers sit on 10.9.0.0/30 behind the
// "internet", whose end of that link is where haven dns answers.
const (
	primWeb, primDB = "10.1.0.20", "10.1.0.10"
	recWeb, recDB   = "10.2.0.20", "10.2.0.10"
	resolverAddr    = "127.0.0.2:53" // Unbound, in the customers' namespace
	dnsAddr         = "10.9.0.1:53"  // haven dns, in the internet's namespace
)

var (
	prodNet = vnet.Network{Name: "prod", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}
	// The customers' link: inet 10.9.0.1, customers 10.9.0.2.
	custNet  = netip.MustParsePrefix("10.9.0.0/30")
	inetSide = netip.MustParsePrefix("10.9.0.1/30")
	custSide = netip.MustParsePrefix("10.9.0.2/30")
)

// site is the demo's world on this host.
type site struct {
	*env
	xfs        string
	lab        *vnet.Lab
	inet       string // the "internet": haven dns, and the router between customers and both sites
	custNS     string // the customers: Unbound and the load generator
	primNS     string
	agentPort  int
	serverPort int
	token      string // agent control token file
	state      string // server state dir
	machines   map[string]string
	agentYAML  string
	client     *client.Client
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// mountXFS makes the reflink filesystem the disks and server state live on.
func (s *site) mountXFS() error {
	img := filepath.Join(s.dir, "disks.xfs")
	f, err := os.Create(img)
	if err != nil {
		return err
	}
	f.Truncate(4 << 30)
	f.Close()
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.xfs: %v %s (apt-get install xfsprogs)", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		return fmt.Errorf("losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	s.push("losetup -d "+dev, func() { exec.Command("losetup", "-d", dev).Run() })
	s.xfs = filepath.Join(s.dir, "hvdisks")
	os.MkdirAll(s.xfs, 0o755)
	if out, err := exec.Command("mount", "-t", "xfs", dev, s.xfs).CombinedOutput(); err != nil {
		return fmt.Errorf("mount xfs: %v %s", err, out)
	}
	s.push("umount "+s.xfs+" || umount -l "+s.xfs, func() {
		if exec.Command("umount", s.xfs).Run() != nil {
			exec.Command("umount", "-l", s.xfs).Run()
		}
	})
	return nil
}

// network builds the primary site and the customers' internet.
func (s *site) network() error {
	s.lab = vnet.NewLab(vnet.Netlink{})
	s.push("", func() { s.lab.Close() })
	if _, err := s.lab.AddSite("prim", []vnet.Network{prodNet}); err != nil {
		return err
	}
	var err error
	if s.inet, err = s.lab.AddEdge("inet"); err != nil {
		return err
	}
	att, _ := s.lab.Attachment("prod")
	s.primNS = att.NS
	s.push("ip netns del "+s.primNS+"; ip netns del "+s.inet, nil)
	if err := s.lab.Connect("inet", "prim"); err != nil {
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
	nl := vnet.Netlink{}
	s.custNS = s.lab.ID + "-customers"
	if err := nl.AddNS(s.custNS); err != nil {
		return err
	}
	s.push("ip netns del "+s.custNS, func() { nl.DelNS(s.custNS) })
	steps := []func() error{
		func() error { return nl.AddVeth(s.inet, "to-customers", s.custNS, "uplink", nil) },
		func() error { return nl.AddAddr(s.inet, "to-customers", inetSide) },
		func() error { return nl.LinkUp(s.inet, "to-customers") },
		func() error { return nl.AddAddr(s.custNS, "uplink", custSide) },
		func() error { return nl.LinkUp(s.custNS, "uplink") },
		func() error { return nl.AddRoute(s.custNS, netip.MustParsePrefix("0.0.0.0/0"), inetSide.Addr()) },
		func() error { return nl.SetForwarding(s.inet, true) },
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
	edgeIP, err := linkAddr(s.inet, "to-prim")
	if err != nil {
		return err
	}
	if out, err := exec.Command("ip", "-n", s.primNS, "route", "replace", custNet.String(), "via", edgeIP).CombinedOutput(); err != nil {
		return fmt.Errorf("route to the customers: %v %s", err, out)
	}
	return nil
}

// linkAddr is the IPv4 address of link in namespace ns.
func linkAddr(ns, link string) (string, error) {
	out, err := exec.Command("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", link).Output()
	if err != nil {
		return "", fmt.Errorf("address of %s in %s: %v", link, ns, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 4 {
		return "", fmt.Errorf("no address on %s in %s: %s", link, ns, out)
	}
	return strings.Split(f[3], "/")[0], nil
}

// copyImage clones a cached template onto the reflink filesystem.
func (s *site) copyImage(src, name string) (string, error) {
	dst := filepath.Join(s.xfs, name)
	if out, err := exec.Command("cp", "--reflink=auto", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cp %s: %v %s", src, err, out)
	}
	return dst, nil
}

// primaryMachine writes the machine file the agent's hooks use and starts
// the machine with `haven machine start`.
func (s *site) primaryMachine(ctx context.Context, spec machine.Spec) error {
	att, _ := s.lab.Attachment("prod")
	spec.StopTimeout = 20 * time.Second
	spec.ConsoleLog = filepath.Join(s.logDir, spec.Name+".console.log")
	mf := host.MachineFile{Machine: spec, Networks: map[string]vnet.Attachment{"prod": att},
		StateDir: filepath.Join(s.dir, "prim-machines"), PIDFile: filepath.Join(s.dir, spec.Name+".pid"),
		Log: filepath.Join(s.logDir, spec.Name+".run.log")}
	b, _ := json.MarshalIndent(mf, "", "  ")
	path, err := s.write(spec.Name+".machine.json", string(b))
	if err != nil {
		return err
	}
	s.machines[spec.Name] = path
	s.push(s.bin+" machine stop --file "+path, func() {
		exec.Command(s.bin, "machine", "stop", "--file", path).Run()
	})
	_, err = s.run(ctx, nil, "machine", "start", "--file", path)
	return err
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
	if err := s.primaryMachine(ctx, db); err != nil {
		return err
	}
	w := machine.Spec{Name: "web", Disks: []machine.Disk{{Name: "root", Path: web}},
		NICs:   []vnet.NIC{{Name: "eth0", Network: "prod", Addr: netip.MustParsePrefix(primWeb + "/24")}},
		Health: machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"}}
	if err := s.primaryMachine(ctx, w); err != nil {
		return err
	}
	return eventually(ctx, 90*time.Second, "the shop answers at the primary site", func() error {
		_, err := httpIn(ctx, s.custNS, "GET", "http://"+primWeb+"/")
		return err
	})
}

func (s *site) startDNS(ctx context.Context) error {
	cfg := fmt.Sprintf(`listen: %s
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
`, dnsAddr, ShopName, primWeb, recWeb)
	path, err := s.write("dns.yaml", cfg)
	if err != nil {
		return err
	}
	s.say("   $ ip netns exec %s haven dns --config %s &", s.inet, path)
	if err := s.start("dns", s.inet, nil, s.bin, "dns", "--config", path); err != nil {
		return err
	}
	return eventually(ctx, 30*time.Second, "haven dns answers", func() error {
		_, err := resolve(s.inet, dnsAddr)
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
	dir := filepath.Join(s.dir, "unbound")
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
	s.say("   $ ip netns exec %s unbound -d -c %s &", s.custNS, path)
	if err := s.start("unbound", s.custNS, nil, bin, "-d", "-c", path); err != nil {
		return err
	}
	return eventually(ctx, 30*time.Second, "Unbound resolves "+ShopName, func() error {
		ips, err := resolve(s.custNS, resolverAddr)
		if err == nil && (len(ips) != 1 || ips[0] != primWeb) {
			err = fmt.Errorf("answers %v", ips)
		}
		return err
	})
}

func (s *site) startAgent(ctx context.Context) error {
	pw := filepath.Join(s.dir, "password")
	var b strings.Builder
	fmt.Fprintf(&b, "vault: file://%s/vault\npassword_file: %s\nstate_dir: %s\nlisten: 127.0.0.1:%d\ncontrol_token_file: %s\n",
		s.dir, pw, filepath.Join(s.dir, "agent-state"), s.agentPort, s.token)
	fmt.Fprintf(&b, "server: {url: http://127.0.0.1:%d, agent: prim, token_file: %s, interval: 1s}\nmachines:\n", s.serverPort, s.token)
	psql, _ := exec.LookPath("psql")
	for _, m := range []string{"db", "web"} {
		disks := "[{name: root, path: %[2]s/web.img}]"
		hooks := ""
		if m == "db" {
			disks = "[{name: root, path: %[2]s/db-root.img}, {name: data, path: %[2]s/db-data.img}]"
			if psql != "" {
				// App-consistent points: PostgreSQL flushes everything first.
				hooks = fmt.Sprintf("    hooks: {pre: \"ip netns exec %s %s -h %s -U postgres -c CHECKPOINT\", timeout: 20s}\n", s.primNS, psql, primDB)
			}
		}
		fmt.Fprintf(&b, `  - name: %[1]s
    group: shop
    provider: reflink
    clone_dir: %[2]s/clones
    disks: `+disks+`
`+hooks+`    policy: {frequency: 15s, app_frequency: 1m, rpo_alert: 1m}
    control:
      stop: %[3]s machine stop --file %[4]s
      start: %[3]s machine start --file %[4]s
`, m, s.xfs, s.bin, s.machines[m])
	}
	os.MkdirAll(filepath.Join(s.xfs, "clones"), 0o755)
	path, err := s.write("agent.yaml", b.String())
	if err != nil {
		return err
	}
	s.agentYAML = path
	return s.runAgent()
}

func (s *site) runAgent() error {
	s.say("   $ haven agent run --config %s &", s.agentYAML)
	return s.start("agent", "", nil, s.bin, "agent", "run", "--config", s.agentYAML)
}

func (s *site) serverEnv() []string {
	return []string{fmt.Sprintf("HAVEN_SERVER=127.0.0.1:%d", s.serverPort), "HAVEN_TOKEN_FILE=" + filepath.Join(s.state, "admin.token")}
}

func (s *site) startServer(ctx context.Context) error {
	cfg := fmt.Sprintf("listen: 127.0.0.1:%d\nstate_dir: %s\nvault: file://%s/vault\npassword_file: %s\nedge: %s\nstandby_interval: 1s\n",
		s.serverPort, s.state, s.dir, filepath.Join(s.dir, "password"), s.inet)
	path, err := s.write("server.yaml", cfg)
	if err != nil {
		return err
	}
	s.say("   $ haven server --config %s &", path)
	if err := s.start("server", "", nil, s.bin, "server", "--config", path); err != nil {
		return err
	}
	s.push(fmt.Sprintf("kill -s TERM %[3]d 2>/dev/null; sleep 2\n"+
		"for f in %[1]s/host/machines/*/detached/*.json; do [ -e \"$f\" ] && %[2]s machine stop --file \"$f\"; done\n"+
		"for n in $(ls /run/netns | grep \"^$(cat %[1]s/host/host-id)-\"); do ip netns del $n; done", s.state, s.bin, s.procs["server"].Process.Pid), s.removeRecoverySite)
	tokFile := filepath.Join(s.state, "admin.token")
	return eventually(ctx, 60*time.Second, "haven server up", func() error {
		if !s.alive("server") {
			return fmt.Errorf("haven server exited:\n%s", s.logTail("server"))
		}
		b, err := os.ReadFile(tokFile)
		if err != nil {
			return err
		}
		s.client = client.New(fmt.Sprintf("127.0.0.1:%d", s.serverPort), strings.TrimSpace(string(b)), 10*time.Second)
		_, err = s.client.Jobs(ctx, "", false, 1)
		return err
	})
}

// removeRecoverySite stops the recovered machines (they run detached, so
// they outlive the server) and removes the server's namespaces.
func (s *site) removeRecoverySite() {
	s.kill("server", 15)
	files, _ := filepath.Glob(filepath.Join(s.state, "host", "machines", "*", "detached", "*.json"))
	for _, f := range files {
		exec.Command(s.bin, "machine", "stop", "--file", f).Run()
	}
	id := s.hostID()
	if id == "" {
		return
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), id+"-") {
			vnet.Netlink{}.DelNS(e.Name())
		}
	}
}

func (s *site) hostID() string {
	b, _ := os.ReadFile(filepath.Join(s.state, "host", "host-id"))
	return strings.TrimSpace(string(b))
}

func (s *site) protection() string {
	return fmt.Sprintf(`# The shop: database first, then web, then customers move by DNS.
sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping:
  recovery: {prod: rec}
  test: {prod: drill}
agents:
  - {name: prim, url: "http://127.0.0.1:%d", token_file: %s, timeout: 3s}
machines:
  - name: db
    agent: prim
    disks: [{name: root}, {name: data, mount: /data}]
    nics: [{name: eth0, network: prod, address: %s/24, recovery: static, static: %s}]
    health: {tcp_port: 5432}
    health_timeout: 2m
  - name: web
    agent: prim
    disks: [{name: root}]
    nics: [{name: eth0, network: prod, address: %s/24, recovery: static, static: %s}]
    health: {http_port: 80, http_path: /}
    health_timeout: 2m
plans:
  - name: shop
    groups:
      - name: database
        machines: [db]
      - name: web
        machines: [web]
        after:
          - {type: dns, profile: %[7]s, endpoint: recovery, directions: [failover], timeout: 1m}
          - {type: dns, profile: %[7]s, endpoint: primary, directions: [failback], timeout: 1m}
traffic: {api: "http://127.0.0.1:8053", token_file: %[9]s, netns: %[8]s, resolve: "%[10]s"}
`, s.agentPort, s.token, primDB, recDB, primWeb, recWeb, ShopName, s.inet, filepath.Join(s.dir, "dns.api-token"), dnsAddr)
}
