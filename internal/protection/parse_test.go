package protection

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/vnet"
)

const fullPath = "testdata/full.yaml"

func readFull(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fullPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadFull(t *testing.T) {
	c, err := Load(fullPath)
	if err != nil {
		t.Fatalf("the full example is refused: %v", err)
	}
	if c.Sites != (Sites{Primary: "dc1", Recovery: "dc2"}) {
		t.Errorf("sites = %+v", c.Sites)
	}
	want := vnet.Network{Name: "rec", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}
	if n, ok := c.Network("rec"); !ok || n.Name != want.Name || n.Subnet != want.Subnet || n.Gateway != want.Gateway {
		t.Errorf("network rec = %+v, %v", n, ok)
	}
	if to, err := c.Mapping.Resolve("prod", true); err != nil || to != "drill" {
		t.Errorf("test mapping of prod = %q, %v", to, err)
	}
	if a := c.AgentByName("dc1-agent"); a == nil || a.Timeout != 5*time.Second || a.TokenFile != "/etc/haven/agent.token" {
		t.Errorf("agent = %+v, want the 5s default timeout", a)
	}
	db, web := c.Machine("db"), c.Machine("web")
	if db == nil || web == nil {
		t.Fatalf("machines = %+v", c.Machines)
	}
	if len(db.Disks) != 2 || db.Disks[0].Name != "root" || db.Disks[1].Mount != "/var/lib/postgresql" {
		t.Errorf("db disks = %+v", db.Disks)
	}
	if db.Health.TCPPort != 5432 || db.GroupOf() != "shop-data" || db.CPUs != 2 || db.MemoryMB != 1024 {
		t.Errorf("db = %+v", db)
	}
	wantNIC := NIC{Name: "eth0", Network: "prod", Address: netip.MustParsePrefix("10.1.0.10/24"), Recovery: vnet.Keep}
	if len(db.NICs) != 1 || db.NICs[0] != wantNIC {
		t.Errorf("db nics = %+v, want %+v", db.NICs, wantNIC)
	}
	// Defaults the validator fills in.
	if db.HealthTimeout != 2*time.Minute || web.HealthTimeout != 45*time.Second {
		t.Errorf("health timeouts = %v, %v", db.HealthTimeout, web.HealthTimeout)
	}
	if web.Driver != "ns" || web.GroupOf() != "web" || web.NICs[0].Recovery != vnet.Keep {
		t.Errorf("web defaults: driver %q group %q recovery %q", web.Driver, web.GroupOf(), web.NICs[0].Recovery)
	}
	if web.Health.HTTPPort != 80 || web.Health.HTTPPath != "/" {
		t.Errorf("web health = %+v", web.Health)
	}
	if c.Traffic == nil || c.Traffic.API != "http://127.0.0.1:8053" {
		t.Errorf("traffic = %+v", c.Traffic)
	}
	checkShopPlan(t, c.Plan("shop"))
}

func checkShopPlan(t *testing.T, p *Plan) {
	t.Helper()
	if p == nil || len(p.Groups) != 2 {
		t.Fatalf("plan shop = %+v", p)
	}
	g1, g2 := p.Groups[0], p.Groups[1]
	if !slices.Equal(g1.Machines, []string{"db"}) || len(g1.After) != 1 || g1.After[0].Type != ActionWaitHealth {
		t.Errorf("group 1 = %+v", g1)
	}
	if !slices.Equal(g2.Machines, []string{"web"}) || len(g2.After) != 2 {
		t.Fatalf("group 2 = %+v", g2)
	}
	smoke, dns := g2.After[0], g2.After[1]
	if smoke.Type != ActionScript || smoke.Run != `curl -fsS "http://$HAVEN_ADDR_WEB/"` || smoke.Timeout != 30*time.Second {
		t.Errorf("smoke = %+v", smoke)
	}
	if dns.Type != ActionDNS || dns.Profile != "shop" || dns.Endpoint != "dc2" {
		t.Errorf("cut-over = %+v", dns)
	}
	// No directions: the endpoint is the recovery site's, so failover only;
	// run on failback too it would send customers to the stopped site.
	if !slices.Equal(dns.Directions, []string{"failover"}) || dns.Applies("planned", "failback") {
		t.Errorf("cut-over directions %v, want [failover] (its endpoint is the recovery site)", dns.Directions)
	}
	// The limits as the orchestrator will ask them.
	for _, tc := range []struct {
		a    Action
		typ  string
		want bool
	}{
		{smoke, "test", true}, {smoke, "planned", false}, {smoke, "unplanned", false},
		{dns, "test", false}, {dns, "planned", true}, {dns, "unplanned", true},
		{g1.After[0], "test", true}, {g1.After[0], "unplanned", true},
	} {
		if got := tc.a.Applies(tc.typ, "failover"); got != tc.want {
			t.Errorf("%s.Applies(%s, failover) = %v, want %v", tc.a.Type, tc.typ, got, tc.want)
		}
	}
}

func TestActionApplies(t *testing.T) {
	always := Action{Type: ActionManual}
	testOnly := Action{Type: ActionScript, Types: []string{"test"}}
	back := Action{Type: ActionDNS, Directions: []string{"failback"}}
	both := Action{Type: ActionDNS, Types: []string{"planned", "unplanned"}, Directions: []string{"failover"}}
	for _, tc := range []struct {
		name     string
		a        Action
		typ, dir string
		want     bool
	}{
		{"no limits", always, "unplanned", "failback", true},
		{"type matches", testOnly, "test", "failover", true},
		{"type differs", testOnly, "planned", "failover", false},
		{"type limit, any direction", testOnly, "test", "failback", true},
		{"direction matches", back, "planned", "failback", true},
		{"direction differs", back, "planned", "failover", false},
		{"both match", both, "unplanned", "failover", true},
		{"type matches, direction not", both, "planned", "failback", false},
		{"direction matches, type not", both, "test", "failover", false},
	} {
		if got := tc.a.Applies(tc.typ, tc.dir); got != tc.want {
			t.Errorf("%s: Applies(%q, %q) = %v, want %v", tc.name, tc.typ, tc.dir, got, tc.want)
		}
	}
}

// want is one expected refusal: exact line and field, and words the
// message must contain.
type want struct {
	line  int
	field string
	msg   string
}

func (w want) String() string { return fmt.Sprintf("line %d: %s: ...%s...", w.line, w.field, w.msg) }

// TestParseRefuses edits one spot of the full example (line numbers below
// are those of testdata/full.yaml after the edit) and checks that Parse
// names every problem by line and field, and nothing else.
func TestParseRefuses(t *testing.T) {
	full := readFull(t)
	for _, tc := range []struct {
		name     string
		old, new string
		want     []want
	}{
		{"unknown key", "    cpus: 2\n", "    cpu: 2\n",
			[]want{{33, "machines[0].cpu", "unknown"}}},
		{"plan names an unknown machine", "        machines: [web]\n", "        machines: [web, cache]\n",
			[]want{{69, "plans[0].groups[1].machines[1]", `unknown machine "cache"`}}},
		{"address outside the mapped recovery subnet",
			"  recovery:\n    - name: rec\n      subnet: 10.1.0.0/24\n      gateway: 10.1.0.1\n",
			"  recovery:\n    - name: rec\n      subnet: 10.2.0.0/24\n      gateway: 10.2.0.1\n",
			[]want{{44, "machines[0].nics[0].address", "10.1.0.10 is outside the mapped network rec (10.2.0.0/24)"},
				{56, "machines[1].nics[0].address", "10.1.0.20 is outside the mapped network rec (10.2.0.0/24)"}}},
		{"two machines claim one address", "        address: 10.1.0.20/24\n", "        address: 10.1.0.10/24\n",
			[]want{{56, "machines[1].nics[0].address", "10.1.0.10 is already claimed by db/eth0"}}},
		{"recovery static address claimed by another machine",
			"        address: 10.1.0.20/24\n",
			"        address: 10.1.0.20/24\n        recovery: static\n        static: 10.1.0.10\n",
			[]want{{58, "machines[1].nics[0].static", "10.1.0.10 is already claimed by db/eth0"}}},
		{"recovery static address claimed by a later machine", "        recovery: keep\n",
			"        recovery: static\n        static: 10.1.0.20\n",
			[]want{{46, "machines[0].nics[0].static", "10.1.0.20 is already claimed by web/eth0"}}},
		{"bad driver", "    driver: ns\n", "    driver: kvm\n",
			[]want{{32, "machines[0].driver", `"kvm": want ns, qemu or libvirt`}}},
		{"libvirt without firmware", "    driver: ns\n", "    driver: libvirt\n",
			[]want{{29, "machines[0].firmware", "a libvirt machine boots its disk's own bootloader"}}},
		{"firmware on the ns driver", "    driver: ns\n", "    driver: ns\n    firmware: bios\n",
			[]want{{33, "machines[0].firmware", "only the qemu and libvirt drivers boot firmware"}}},
		{"unknown firmware", "    driver: ns\n", "    driver: qemu\n    firmware: coreboot\n",
			[]want{{33, "machines[0].firmware", `"coreboot": want bios or uefi`}}},
		{"bad action type", "          - type: wait-health\n", "          - type: wait-healthy\n",
			[]want{{67, "plans[0].groups[0].after[0].type", `"wait-healthy": want script, manual, wait-health or dns`}}},
		{"dns action without directions to an endpoint named like no site", "            endpoint: dc2\n", "            endpoint: edge-lb\n",
			[]want{{76, "plans[0].groups[1].after[1].directions", `needs directions: endpoint "edge-lb" is not named like the primary site (dc1) or the recovery site (dc2)`}}},
		{"dns action in both directions", "            endpoint: dc2\n", "            endpoint: dc2\n            directions: [failover, failback]\n",
			[]want{{80, "plans[0].groups[1].after[1].directions", "right for one direction only"}}},
		{"dns action sending failover customers to the primary", "            endpoint: dc2\n", "            endpoint: dc1\n            directions: [failover]\n",
			[]want{{80, "plans[0].groups[1].after[1].directions", `endpoint "dc1" is the primary site, which a failover leaves stopped`}}},
		{"dns action without traffic", "traffic:\n  api: http://127.0.0.1:8053\n", "",
			[]want{{76, "plans[0].groups[1].after[1]", "needs the traffic section"}}},
		{"traffic with api and servers", "  api: http://127.0.0.1:8053\n",
			"  api: http://127.0.0.1:8053\n  servers: [{api: \"http://127.0.0.1:8054\"}]\n",
			[]want{{83, "traffic.servers", "either api (one server) or servers"}}},
		{"traffic server without api", "  api: http://127.0.0.1:8053\n",
			"  servers:\n    - {name: dns1, api: \"http://127.0.0.1:8053\"}\n    - {name: dns2}\n",
			[]want{{84, "traffic.servers[1].api", "missing"}}},
		{"traffic server named twice", "  api: http://127.0.0.1:8053\n",
			"  servers:\n    - {name: dns1, api: \"http://127.0.0.1:8053\"}\n    - {name: dns1, api: \"http://127.0.0.1:8054\"}\n",
			[]want{{84, "traffic.servers[1].name", `"dns1" twice`}}},
		{"primary network without mapping",
			"      gateway: 10.1.0.1\n  recovery:\n",
			"      gateway: 10.1.0.1\n    - name: mgmt\n      subnet: 10.9.0.0/24\n      gateway: 10.9.0.1\n  recovery:\n",
			[]want{{23, "mapping.recovery", `primary network "mgmt" has no recovery network`},
				{25, "mapping.test", `primary network "mgmt" has no test network`}}},
		{"network defined twice in one set",
			"      gateway: 10.1.0.1\n  test:\n",
			"      gateway: 10.1.0.1\n    - name: rec\n      subnet: 10.3.0.0/24\n      gateway: 10.3.0.1\n  test:\n",
			[]want{{15, "networks.recovery[1].name", `network "rec" defined twice`}}},
		{"network name reused across sets",
			"      gateway: 10.1.0.1\nmapping:\n",
			"      gateway: 10.1.0.1\n    - name: prod\n      subnet: 10.4.0.0/24\n      gateway: 10.4.0.1\nmapping:\n",
			[]want{{19, "networks.test[1].name", `network "prod" defined twice`}}},
		{"duplicate machine", "  - name: web\n", "  - name: db\n",
			[]want{{48, "machines[1].name", `"db" must be unique`},
				{69, "plans[0].groups[1].machines[0]", `unknown machine "web"`}}},
		{"machine in a plan twice", "        machines: [web]\n", "        machines: [web, db]\n",
			[]want{{69, "plans[0].groups[1].machines[1]", `machine "db" is in the plan twice`}}},
		{"static address outside the subnet", "        recovery: keep\n",
			"        recovery: static\n        static: 10.9.0.5\n",
			[]want{{46, "machines[0].nics[0].static", "10.9.0.5 is outside the mapped network drill (10.1.0.0/24)"},
				{46, "machines[0].nics[0].static", "10.9.0.5 is outside the mapped network rec (10.1.0.0/24)"}}},
		{"static without an address", "        recovery: keep\n", "        recovery: static\n",
			[]want{{45, "machines[0].nics[0].recovery", "static"}}},
		{"health check without a port", "      tcp_port: 5432\n", "      http_path: /ready\n",
			[]want{{46, "machines[0].health", "set tcp_port or http_port"}}},
		{"not a number", "      tcp_port: 5432\n", "      tcp_port: fast\n",
			[]want{{47, "machines[0].health.tcp_port", "cannot unmarshal"}}},
		{"not an address", "        address: 10.1.0.10/24\n", "        address: 10.1.0.300/24\n",
			[]want{{44, "machines[0].nics[0].address", "10.1.0.300"}}},
		{"drill schedule not cron", "  - name: shop\n", "  - name: shop\n    drill: {schedule: \"every sunday\"}\n",
			[]want{{63, "plans[0].drill.schedule", `"every sunday"`}}},
		{"drill without schedule, pinned point, manual check", "  - name: shop\n",
			"  - name: shop\n    drill: {point: 2026-12-01T00:00:00Z, keep: -1s, checks: [{type: manual}]}\n",
			[]want{{63, "plans[0].drill.schedule", "missing"}, {63, "plans[0].drill.point", "want one of"},
				{63, "plans[0].drill.keep", "negative"}, {63, "plans[0].drill.checks[0].type", "script or wait-health"}}},
		{"yaml syntax", "  primary: dc1\n", "  primary: dc1: x\n",
			[]want{{4, "yaml", "mapping values are not allowed"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := strings.Count(full, tc.old); n != 1 {
				t.Fatalf("the edit's anchor occurs %d times in %s", n, fullPath)
			}
			doc := strings.Replace(full, tc.old, tc.new, 1)
			c, err := Parse([]byte(doc))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			checkRefusal(t, err, tc.want)
		})
	}
}

func checkRefusal(t *testing.T, err error, wants []want) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v, not ErrInvalid", err)
	}
	got := flatten(t, err)
	// Order between checks is not part of the contract; the set is.
	key := func(line int, field, msg string) string { return fmt.Sprintf("%05d %s %s", line, field, msg) }
	slices.SortFunc(got, func(a, b *Error) int {
		return strings.Compare(key(a.Line, a.Field, a.Msg), key(b.Line, b.Field, b.Msg))
	})
	slices.SortFunc(wants, func(a, b want) int { return strings.Compare(key(a.line, a.field, a.msg), key(b.line, b.field, b.msg)) })
	ok := len(got) == len(wants)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], wants[i]
		ok = g.Line == w.line && g.Field == w.field && strings.Contains(g.Msg, w.msg) &&
			strings.HasPrefix(g.Error(), fmt.Sprintf("line %d: %s: ", w.line, w.field))
	}
	if !ok {
		t.Errorf("refusal:\n%v\nwant:\n%v", err, wants)
	}
}

// flatten returns the *Error leaves of a (joined) error; any other leaf
// fails the test, since every refusal must name line and field.
func flatten(t *testing.T, err error) []*Error {
	t.Helper()
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(t, e)...)
		}
		return out
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("%v (%T) is not a *protection.Error", err, err)
		return nil
	}
	return []*Error{e}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n"} {
		if _, err := Parse([]byte(doc)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q): err = %v, want ErrInvalid", doc, err)
		}
	}
}

// TestDNSDirectionsImplied: a dns action without directions gets the one
// its endpoint implies (the recovery site's on failover, the primary's on
// failback); an endpoint named like no site needs them given.
func TestDNSDirectionsImplied(t *testing.T) {
	full := readFull(t)
	for _, tc := range []struct {
		endpoint, extra string
		want            []string
	}{
		{"dc2", "", []string{"failover"}},
		{"dc1", "", []string{"failback"}},
		{"edge-lb", "            directions: [failback]\n", []string{"failback"}},
		{"dc1", "            directions: [failback]\n", []string{"failback"}},
	} {
		doc := strings.Replace(full, "            endpoint: dc2\n", "            endpoint: "+tc.endpoint+"\n"+tc.extra, 1)
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("endpoint %s %q: %v", tc.endpoint, tc.extra, err)
		}
		if got := c.Plans[0].Groups[1].After[1].Directions; !slices.Equal(got, tc.want) {
			t.Errorf("endpoint %s %q: directions %v, want %v", tc.endpoint, tc.extra, got, tc.want)
		}
	}
}

func TestPublishChecked(t *testing.T) {
	base := `sites: {primary: a, recovery: b}
networks:
  primary:  [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test:     [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
machines:
  - name: web
    disks: [{name: root}]
    nics: [{name: eth0, network: prod, address: 10.1.0.20/24, recovery: static, static: 10.2.0.20}]
    health: {http_port: 80}
    publish: PUBLISH
plans: [{name: shop, groups: [{machines: [web]}]}]
`
	c, err := Parse([]byte(strings.Replace(base, "PUBLISH", `[{port: 80, on: "203.0.113.7:443"}, {port: 53, on: "203.0.113.7:53", proto: udp}]`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Machines[0].Publish; len(p) != 2 || p[0].Proto != "tcp" || p[0].On.String() != "203.0.113.7:443" || p[1].Proto != "udp" {
		t.Fatalf("publish = %+v", p)
	}
	for _, bad := range []struct{ publish, want string }{
		{`[{port: 80, on: "203.0.113.7"}]`, "203.0.113.7"},
		{`[{port: 80, on: "[2001:db8::1]:443"}]`, "publish[0].on"},
		{`[{on: "203.0.113.7:443"}]`, "publish[0].port"},
		{`[{port: 80, on: "203.0.113.7:443", proto: sctp}]`, "publish[0].proto"},
		{`[{port: 80, on: "203.0.113.7:443"}, {port: 81, on: "203.0.113.7:443"}]`, "published already"},
	} {
		_, err := Parse([]byte(strings.Replace(base, "PUBLISH", bad.publish, 1)))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("publish %s: err %v, want it to mention %q", bad.publish, err, bad.want)
		}
	}
}
