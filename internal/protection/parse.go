package protection

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/vnet"
	"gopkg.in/yaml.v3"
)

// ErrInvalid marks a document that was refused; nothing was applied.
var ErrInvalid = errors.New("invalid protection config")

// Error names the line and field of a refused document.
type Error struct {
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Msg)
}

func (e *Error) Unwrap() error { return ErrInvalid }

// Load reads and validates a file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse decodes YAML (unknown keys refused) and validates it.
func Parse(b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, decodeErrors(err, nil, nil)
	}
	lines := lineIndex(&root)
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, decodeErrors(err, &root, lines)
	}
	if err := c.validate(lines); err != nil {
		return nil, err
	}
	return &c, nil
}

// lineIndex maps a field path such as "machines[1].nics[0].address" to its
// line, so semantic errors point at the file like syntax errors do.
func lineIndex(root *yaml.Node) map[string]int {
	out := map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			setOnce(out, path, n.Line)
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				out[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			setOnce(out, path, n.Line)
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				out[p] = c.Line
				walk(c, p)
			}
		default:
			setOnce(out, path, n.Line)
		}
	}
	walk(root, "")
	return out
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,30}$`)

type checker struct {
	lines map[string]int
	errs  []error
}

func (k *checker) fail(field, format string, args ...any) {
	line := k.lines[field]
	for f := field; line == 0 && f != ""; {
		f = parent(f)
		line = k.lines[f]
	}
	k.errs = append(k.errs, &Error{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func parent(f string) string {
	for i := len(f) - 1; i >= 0; i-- {
		if f[i] == '.' || f[i] == '[' {
			return f[:i]
		}
	}
	return ""
}

func (c *Config) validate(lines map[string]int) error {
	k := &checker{lines: lines}
	if c.Sites.Primary == "" || c.Sites.Recovery == "" || c.Sites.Primary == c.Sites.Recovery {
		k.fail("sites", "primary and recovery must be two different names")
	}
	nets := c.checkNetworks(k)
	c.checkMapping(k, nets)
	c.checkAgents(k)
	c.checkMachines(k, nets)
	c.checkPlans(k)
	c.checkPathNames(k)
	c.checkTraffic(k)
	return errors.Join(k.errs...)
}

func (c *Config) checkNetworks(k *checker) map[string]string {
	kinds := map[string]string{}
	for _, s := range []struct {
		kind string
		set  []vnet.Network
	}{{"primary", c.Networks.Primary}, {"recovery", c.Networks.Recovery}, {"test", c.Networks.Test}} {
		for i, n := range s.set {
			f := fmt.Sprintf("networks.%s[%d]", s.kind, i)
			if err := n.Validate(); err != nil {
				k.fail(f, "%v", err)
			}
			if _, dup := kinds[n.Name]; dup {
				k.fail(f+".name", "network %q defined twice", n.Name)
				continue
			}
			kinds[n.Name] = s.kind
		}
	}
	return kinds
}

func (c *Config) checkMapping(k *checker, kinds map[string]string) {
	for _, n := range c.Networks.Primary {
		for _, side := range []string{"recovery", "test"} {
			table := c.Mapping.Recovery
			if side == "test" {
				table = c.Mapping.Test
			}
			to, ok := table[n.Name]
			f := "mapping." + side + "." + n.Name
			switch {
			case !ok:
				k.fail("mapping."+side, "primary network %q has no %s network", n.Name, side)
			case kinds[to] != side:
				k.fail(f, "%q is not a %s network", to, side)
			}
		}
	}
}

func (c *Config) checkAgents(k *checker) {
	seen := map[string]bool{}
	for i, a := range c.Agents {
		f := fmt.Sprintf("agents[%d]", i)
		if !nameRE.MatchString(a.Name) || seen[a.Name] {
			k.fail(f+".name", "%q must be unique, lower-case letters, digits, - or _", a.Name)
		}
		seen[a.Name] = true
		if a.URL == "" {
			k.fail(f+".url", "missing")
		}
		if a.Timeout == 0 {
			c.Agents[i].Timeout = 5 * time.Second
		}
	}
}

func (c *Config) checkMachines(k *checker, kinds map[string]string) {
	seen := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for i := range c.Machines {
		m := &c.Machines[i]
		f := fmt.Sprintf("machines[%d]", i)
		if !nameRE.MatchString(m.Name) || seen[m.Name] {
			k.fail(f+".name", "%q must be unique, lower-case letters, digits, - or _", m.Name)
		}
		seen[m.Name] = true
		if m.Agent != "" && c.AgentByName(m.Agent) == nil {
			k.fail(f+".agent", "unknown agent %q", m.Agent)
		}
		switch m.Driver {
		case "":
			m.Driver = "ns"
		case "ns", "qemu", "libvirt":
		default:
			k.fail(f+".driver", "%q: want ns, qemu or libvirt", m.Driver)
		}
		switch {
		case m.Firmware == "" && m.Driver == "libvirt":
			k.fail(f+".firmware", "a libvirt machine boots its disk's own bootloader: set bios or uefi")
		case m.Firmware == "":
		case m.Firmware != "bios" && m.Firmware != "uefi":
			k.fail(f+".firmware", "%q: want bios or uefi", m.Firmware)
		case m.Driver == "ns":
			k.fail(f+".firmware", "only the qemu and libvirt drivers boot firmware (the ns driver runs the root filesystem's init)")
		}
		if len(m.Disks) == 0 {
			k.fail(f+".disks", "a machine needs at least its root disk")
		}
		if len(m.NICs) == 0 {
			k.fail(f+".nics", "a machine needs a NIC (health checks use the first)")
		}
		if m.Health.TCPPort == 0 && m.Health.HTTPPort == 0 {
			k.fail(f+".health", "set tcp_port or http_port")
		}
		if m.HealthTimeout == 0 {
			m.HealthTimeout = 2 * time.Minute
		}
		for j := range m.NICs {
			c.checkNIC(k, fmt.Sprintf("%s.nics[%d]", f, j), m, &m.NICs[j], kinds, addrs)
		}
	}
	c.checkRecoveryAddrs(k)
	c.checkPublish(k)
}

// checkPublish: a published service needs a port, an IPv4 address and
// port of the host, a known protocol, and an address no other service
// takes.
func (c *Config) checkPublish(k *checker) {
	seen := map[string]string{}
	for i := range c.Machines {
		m := &c.Machines[i]
		for j := range m.Publish {
			p := &m.Publish[j]
			f := fmt.Sprintf("machines[%d].publish[%d]", i, j)
			if p.Proto == "" {
				p.Proto = "tcp"
			}
			switch {
			case p.Proto != "tcp" && p.Proto != "udp":
				k.fail(f+".proto", "%q: want tcp or udp", p.Proto)
			case p.Port == 0:
				k.fail(f+".port", "the machine's port is missing")
			case !p.On.IsValid() || p.On.Port() == 0 || !p.On.Addr().Is4():
				k.fail(f+".on", "want an IPv4 address of the recovery host with a port, e.g. 203.0.113.7:443")
			default:
				key := p.Proto + " " + p.On.String()
				if prev, dup := seen[key]; dup {
					k.fail(f+".on", "%s %s is published already by %s", p.Proto, p.On, prev)
				}
				seen[key] = m.Name
			}
		}
	}
}

// checkRecoveryAddrs: two NICs must not get one address at the recovery
// site either, where a static address may take another NIC's kept one.
func (c *Config) checkRecoveryAddrs(k *checker) {
	seen := map[netip.Addr]string{}
	for _, m := range c.Machines {
		for _, n := range m.NICs {
			if n.Recovery == vnet.Keep {
				seen[n.Address.Addr()] = m.Name + "/" + n.Name
			}
		}
	}
	for i, m := range c.Machines {
		for j, n := range m.NICs {
			if n.Recovery != vnet.Static || !n.Static.IsValid() {
				continue
			}
			if prev, dup := seen[n.Static]; dup {
				k.fail(fmt.Sprintf("machines[%d].nics[%d].static", i, j), "%v is already claimed by %s", n.Static, prev)
			}
			seen[n.Static] = m.Name + "/" + n.Name
		}
	}
}

func (c *Config) checkNIC(k *checker, f string, m *Machine, n *NIC, kinds map[string]string, addrs map[netip.Addr]string) {
	if n.Recovery == "" {
		n.Recovery = vnet.Keep
	}
	if kinds[n.Network] != "primary" {
		k.fail(f+".network", "%q is not a primary network", n.Network)
		return
	}
	pn, _ := c.Network(n.Network)
	if !pn.Subnet.Contains(n.Address.Addr()) {
		k.fail(f+".address", "%v is outside primary network %s (%v)", n.Address, pn.Name, pn.Subnet)
	}
	owner := m.Name + "/" + n.Name
	if prev, dup := addrs[n.Address.Addr()]; dup {
		k.fail(f+".address", "%v is already claimed by %s", n.Address.Addr(), prev)
	}
	addrs[n.Address.Addr()] = owner
	want, field := n.Address.Addr(), f+".address"
	switch n.Recovery {
	case vnet.Keep:
	case vnet.Static:
		if !n.Static.IsValid() {
			k.fail(f+".recovery", "recovery: static needs a static address")
			return
		}
		want, field = n.Static, f+".static"
	case vnet.Allocate:
		return
	default:
		k.fail(f+".recovery", "%q: want keep, static or allocate", n.Recovery)
		return
	}
	for _, side := range []bool{false, true} {
		rn, err := c.Mapping.Resolve(n.Network, side)
		if err != nil {
			continue // reported by checkMapping
		}
		net, ok := c.Network(rn)
		if ok && !net.Subnet.Contains(want) {
			k.fail(field, "%v is outside the mapped network %s (%v)", want, net.Name, net.Subnet)
		}
	}
}

func (c *Config) checkPlans(k *checker) {
	seen := map[string]bool{}
	for i, p := range c.Plans {
		f := fmt.Sprintf("plans[%d]", i)
		if !nameRE.MatchString(p.Name) || seen[p.Name] {
			k.fail(f+".name", "%q must be unique, lower-case letters, digits, - or _", p.Name)
		}
		seen[p.Name] = true
		if len(p.Groups) == 0 {
			k.fail(f+".groups", "a plan needs at least one group")
		}
		inPlan := map[string]bool{}
		for j, g := range p.Groups {
			gf := fmt.Sprintf("%s.groups[%d]", f, j)
			for x, name := range g.Machines {
				if c.Machine(name) == nil {
					k.fail(fmt.Sprintf("%s.machines[%d]", gf, x), "unknown machine %q", name)
				}
				if inPlan[name] {
					k.fail(fmt.Sprintf("%s.machines[%d]", gf, x), "machine %q is in the plan twice", name)
				}
				inPlan[name] = true
			}
			for x := range g.Before {
				c.checkAction(k, fmt.Sprintf("%s.before[%d]", gf, x), &g.Before[x])
			}
			for x := range g.After {
				c.checkAction(k, fmt.Sprintf("%s.after[%d]", gf, x), &g.After[x])
			}
		}
		if p.Drill != nil {
			c.checkDrill(k, f+".drill", p.Drill)
		}
	}
}

func (c *Config) checkAction(k *checker, f string, a *Action) {
	switch a.Type {
	case ActionScript:
		if a.Run == "" {
			k.fail(f+".run", "a script action needs run")
		}
	case ActionManual, ActionWaitHealth:
	case ActionDNS:
		if c.Traffic == nil {
			k.fail(f, "a dns action needs the traffic section")
		}
		if a.Profile == "" || a.Endpoint == "" {
			k.fail(f, "a dns action needs profile and endpoint")
		} else {
			c.checkDNSDirections(k, f, a)
		}
	default:
		k.fail(f+".type", "%q: want script, manual, wait-health or dns", a.Type)
	}
	for _, t := range a.Types {
		if t != "test" && t != "planned" && t != "unplanned" {
			k.fail(f+".types", "%q: want test, planned or unplanned", t)
		}
	}
	for _, d := range a.Directions {
		if d != "failover" && d != "failback" {
			k.fail(f+".directions", "%q: want failover or failback", d)
		}
	}
}

// checkDNSDirections gives a dns action the one direction its endpoint
// implies, or refuses it: without one it would run in both directions,
// and in one of them send customers to the site that was just stopped.
// An endpoint named like a site is that site's; any other name needs
// directions.
func (c *Config) checkDNSDirections(k *checker, f string, a *Action) {
	implied, side := "", ""
	switch a.Endpoint {
	case c.Sites.Recovery:
		implied, side = "failover", "recovery"
	case c.Sites.Primary:
		implied, side = "failback", "primary"
	}
	switch {
	case len(a.Directions) == 0 && implied != "":
		a.Directions = []string{implied}
	case len(a.Directions) == 0:
		k.fail(f+".directions", "a dns action needs directions: endpoint %q is not named like the primary site (%s) or the recovery site (%s), "+
			"so which way it sends customers is ambiguous; add directions: [failover] if the endpoint is at the recovery site, [failback] if at the primary",
			a.Endpoint, c.Sites.Primary, c.Sites.Recovery)
	case len(a.Directions) > 1:
		k.fail(f+".directions", "a dns action sends customers to one endpoint, right for one direction only: "+
			"give it one direction and add a second action (the other site's endpoint) for the other")
	case implied != "" && a.Directions[0] != implied && (a.Directions[0] == "failover" || a.Directions[0] == "failback"):
		k.fail(f+".directions", "endpoint %q is the %s site, which a %s leaves stopped: it would send customers there; want directions: [%s]",
			a.Endpoint, side, a.Directions[0], implied)
	}
}

// setOnce keeps a key's own line for its path: a block value starts on
// the next line, and the user looks for the key.
func setOnce(m map[string]int, path string, line int) {
	if _, ok := m[path]; !ok {
		m[path] = line
	}
}

var (
	yamlLineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownKeyRE  = regexp.MustCompile(`^field (\S+) not found in type`)
	quotedValueRE = regexp.MustCompile(`"([^"]+)"`)
)

// decodeErrors gives the decoder's messages ("line 7: field cpu not found
// in type protection.Machine") the line and field path that semantic
// errors have.
func decodeErrors(err error, root *yaml.Node, lines map[string]int) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var errs []error
	for _, m := range msgs {
		e := &Error{Field: "yaml", Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
			key := ""
			if km := unknownKeyRE.FindStringSubmatch(sm[2]); km != nil {
				key, e.Msg = km[1], "unknown key"
			}
			if f := fieldAt(lines, e.Line, key); f != "" {
				e.Field = f
			}
		} else if root != nil {
			// A TextUnmarshaler (addresses, prefixes) fails without a
			// line; its message quotes the value, so find that scalar.
			if qm := quotedValueRE.FindStringSubmatch(m); qm != nil {
				if n := findScalar(root, qm[1]); n != nil {
					e.Line = n.Line
					e.Field = fieldAt(lines, n.Line, "")
				}
			}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// fieldAt is the deepest path on line (ending in key, if given).
func fieldAt(lines map[string]int, line int, key string) string {
	var cands []string
	for p, l := range lines {
		if l == line && p != "" && (key == "" || p == key || strings.HasSuffix(p, "."+key)) {
			cands = append(cands, p)
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		if len(cands[i]) != len(cands[j]) {
			return len(cands[i]) > len(cands[j])
		}
		return cands[i] < cands[j]
	})
	if len(cands) == 0 {
		return ""
	}
	return cands[0]
}

func findScalar(n *yaml.Node, value string) *yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Value == value {
		return n
	}
	for _, c := range n.Content {
		if f := findScalar(c, value); f != nil {
			return f
		}
	}
	return nil
}

// checkTraffic wants one server (api) or several (servers), not both.
func (c *Config) checkTraffic(k *checker) {
	t := c.Traffic
	switch {
	case t == nil:
	case len(t.Servers) > 0 && (t.API != "" || t.TokenFile != "" || t.Resolve != ""):
		k.fail("traffic.servers", "give either api (one server) or servers, not both")
	case len(t.Servers) == 0 && t.API == "":
		k.fail("traffic.api", "missing (or list several servers under traffic.servers)")
	}
	if t == nil {
		return
	}
	names := map[string]bool{}
	for i, s := range t.List() {
		f := fmt.Sprintf("traffic.servers[%d]", i)
		if s.API == "" {
			k.fail(f+".api", "missing")
		}
		if names[s.Name] {
			k.fail(f+".name", "%q twice", s.Name)
		}
		names[s.Name] = true
	}
}
