// Package protection is the declarative model a user applies to the server
// (`haven apply -f protection.yaml`): the two sites, their networks and the
// mapping between them, each protected machine's recovery settings, the
// recovery plans, and the traffic manager that moves customers. It only
// parses and validates; the orchestrator acts on it.
package protection

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// Config is one protection document. Applying it replaces the previous one
// as a whole (atomic), so the file is the source of truth.
type Config struct {
	Sites    Sites        `yaml:"sites" json:"sites"`
	Networks Networks     `yaml:"networks" json:"networks"`
	Mapping  vnet.Mapping `yaml:"mapping" json:"mapping"`
	Agents   []Agent      `yaml:"agents" json:"agents"`
	Machines []Machine    `yaml:"machines" json:"machines"`
	Plans    []Plan       `yaml:"plans" json:"plans"`
	Traffic  *Traffic     `yaml:"traffic,omitempty" json:"traffic,omitempty"`
}

// Sites names the primary (where the machines run) and recovery site (where
// the server runs and failovers land).
type Sites struct {
	Primary  string `yaml:"primary" json:"primary"`
	Recovery string `yaml:"recovery" json:"recovery"`
}

// Networks are the primary networks the machines' NICs are on, the recovery
// networks they fail over to, and the isolated test networks of drills.
type Networks struct {
	Primary  []vnet.Network `yaml:"primary" json:"primary"`
	Recovery []vnet.Network `yaml:"recovery" json:"recovery"`
	Test     []vnet.Network `yaml:"test" json:"test"`
}

// Agent is a replication agent at the primary site, reached for status,
// stop/start of machines and final points. An unreachable agent is an
// alert, never a hang: every call has Timeout.
type Agent struct {
	Name      string        `yaml:"name" json:"name"`
	URL       string        `yaml:"url" json:"url"`
	TokenFile string        `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	Timeout   time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Machine is a protected machine and how it is recovered.
type Machine struct {
	Name   string `yaml:"name" json:"name"`
	Agent  string `yaml:"agent,omitempty" json:"agent,omitempty"`
	Group  string `yaml:"group,omitempty" json:"group,omitempty"`   // consistency group; default the name
	Driver string `yaml:"driver,omitempty" json:"driver,omitempty"` // ns (default), qemu or libvirt
	// Disks as the agent names them; the first is the root disk.
	Disks    []machine.Disk `yaml:"disks" json:"disks"`
	NICs     []NIC          `yaml:"nics" json:"nics"`
	CPUs     int            `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	MemoryMB int            `yaml:"memory_mb,omitempty" json:"memory_mb,omitempty"`
	Init     string         `yaml:"init,omitempty" json:"init,omitempty"`
	// CPUs and MemoryMB size a qemu or libvirt VM and limit an ns
	// machine's cgroup (going over the memory limit is reported).
	// Firmware boots a qemu or libvirt machine through its disk's own
	// bootloader: bios (SeaBIOS) or uefi (OVMF). Without it the qemu
	// driver boots Haven's kernel, which needs the server's boot files;
	// libvirt machines need it.
	Firmware string              `yaml:"firmware,omitempty" json:"firmware,omitempty"`
	Health   machine.HealthCheck `yaml:"health" json:"health"`
	// HealthTimeout bounds how long a booted machine may take to pass its
	// health check; default 2m.
	HealthTimeout time.Duration `yaml:"health_timeout,omitempty" json:"health_timeout,omitempty"`
	// Publish makes the machine's services reachable on addresses of the
	// recovery host after a (non-test) failover.
	Publish []Publish `yaml:"publish,omitempty" json:"publish,omitempty"`
	// AntiAffinity names a group whose machines the server places on
	// different recovery hosts (two web servers), so one lost host
	// does not take them all (docs/orchestrator.md, "Hosts").
	AntiAffinity string `yaml:"anti_affinity,omitempty" json:"anti_affinity,omitempty"`
}

// Publish is one service of a machine published at the recovery site:
// packets to On (an address of the recovery host, with a port) go to the
// machine's recovery address on Port, and what the machine sends out
// leaves from On's address.
type Publish struct {
	Port  uint16   `yaml:"port" json:"port"`
	On    HostPort `yaml:"on" json:"on"`
	Proto string   `yaml:"proto,omitempty" json:"proto,omitempty"` // tcp (default) or udp
}

// HostPort is an address with a port whose parse error quotes the value,
// so a refused document names its line.
type HostPort struct{ netip.AddrPort }

func (h *HostPort) UnmarshalText(b []byte) error {
	ap, err := netip.ParseAddrPort(string(b))
	if err != nil {
		return fmt.Errorf("%q: want address:port, e.g. 203.0.113.7:443", b)
	}
	h.AddrPort = ap
	return nil
}

// NIC is a machine NIC on a primary network and how it is addressed at the
// recovery site: keep the primary address (default), a static one, or
// allocate.
type NIC struct {
	Name     string       `yaml:"name" json:"name"`
	Network  string       `yaml:"network" json:"network"` // a primary network
	Address  netip.Prefix `yaml:"address" json:"address"` // primary address with prefix length
	Recovery vnet.Mode    `yaml:"recovery,omitempty" json:"recovery,omitempty"`
	Static   netip.Addr   `yaml:"static,omitempty" json:"static,omitzero"`
}

// Plan is a recovery plan: groups brought up in order.
type Plan struct {
	Name   string  `yaml:"name" json:"name"`
	Groups []Group `yaml:"groups" json:"groups"`
	// Drill, when set, has the server run the plan's test failover by
	// itself on a schedule (drill.go).
	Drill *Drill `yaml:"drill,omitempty" json:"drill,omitempty"`
}

// Group is a set of machines started together, with actions around them.
type Group struct {
	Name     string   `yaml:"name,omitempty" json:"name,omitempty"`
	Machines []string `yaml:"machines" json:"machines"`
	Before   []Action `yaml:"before,omitempty" json:"before,omitempty"`
	After    []Action `yaml:"after,omitempty" json:"after,omitempty"`
}

// Action kinds.
const (
	ActionScript     = "script"
	ActionManual     = "manual"
	ActionWaitHealth = "wait-health"
	ActionDNS        = "dns"
)

// Action runs before or after a group.
type Action struct {
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	Type string `yaml:"type" json:"type"`
	// script: run through /bin/sh with HAVEN_* variables and each
	// machine's recovery address as HAVEN_ADDR_<MACHINE>.
	Run     string        `yaml:"run,omitempty" json:"run,omitempty"`
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// manual: the job waits for `haven job approve`.
	Message string `yaml:"message,omitempty" json:"message,omitempty"`
	// dns: make Endpoint (the new site's) the profile's only answer: it is
	// enabled with priority 1 and every other endpoint is disabled, so a
	// recovering old site can never take customers back by itself.
	Profile  string `yaml:"profile,omitempty" json:"profile,omitempty"`
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// Limits: empty means always.
	Types      []string `yaml:"types,omitempty" json:"types,omitempty"`           // test, planned, unplanned
	Directions []string `yaml:"directions,omitempty" json:"directions,omitempty"` // failover, failback
}

// Traffic is the `haven dns` instance whose API cut-over actions call.
type Traffic struct {
	API       string `yaml:"api" json:"api"`
	TokenFile string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	// NetNS, when set, is the network namespace the API is reached from
	// (a traffic manager that lives in a lab's edge).
	NetNS string `yaml:"netns,omitempty" json:"netns,omitempty"`
	// Resolve is the DNS address (host:port) the cut-over queries to
	// confirm the profile answers with the new site; default: the API host
	// on port 53.
	Resolve string `yaml:"resolve,omitempty" json:"resolve,omitempty"`
	// Servers are several `haven dns` servers serving the same zones
	// (instead of API/TokenFile/Resolve above): every change goes to all
	// of them and a cut-over completes when a majority answers the new
	// site. NetNS above is their default.
	Servers []TrafficServer `yaml:"servers,omitempty" json:"servers,omitempty"`
}

// TrafficServer is one `haven dns` server of Traffic.Servers.
type TrafficServer struct {
	Name      string `yaml:"name,omitempty" json:"name,omitempty"` // default: the API address
	API       string `yaml:"api" json:"api"`
	TokenFile string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	NetNS     string `yaml:"netns,omitempty" json:"netns,omitempty"`
	Resolve   string `yaml:"resolve,omitempty" json:"resolve,omitempty"`
}

// List is the traffic manager's servers: Servers, or the one the
// single-server fields name.
func (t *Traffic) List() []TrafficServer {
	if len(t.Servers) == 0 {
		return []TrafficServer{{Name: t.API, API: t.API, TokenFile: t.TokenFile, NetNS: t.NetNS, Resolve: t.Resolve}}
	}
	out := make([]TrafficServer, len(t.Servers))
	for i, s := range t.Servers {
		if s.Name == "" {
			s.Name = s.API
		}
		if s.NetNS == "" {
			s.NetNS = t.NetNS
		}
		out[i] = s
	}
	return out
}

// Machine returns the machine named name.
func (c *Config) Machine(name string) *Machine {
	for i := range c.Machines {
		if c.Machines[i].Name == name {
			return &c.Machines[i]
		}
	}
	return nil
}

// Plan returns the plan named name.
func (c *Config) Plan(name string) *Plan {
	for i := range c.Plans {
		if c.Plans[i].Name == name {
			return &c.Plans[i]
		}
	}
	return nil
}

// AgentByName returns the agent named name.
func (c *Config) AgentByName(name string) *Agent {
	for i := range c.Agents {
		if c.Agents[i].Name == name {
			return &c.Agents[i]
		}
	}
	return nil
}

// Network returns a network by name from any of the three sets.
func (c *Config) Network(name string) (vnet.Network, bool) {
	for _, set := range [][]vnet.Network{c.Networks.Primary, c.Networks.Recovery, c.Networks.Test} {
		for _, n := range set {
			if n.Name == name {
				return n, true
			}
		}
	}
	return vnet.Network{}, false
}

// GroupOf is the machine's consistency group.
func (m *Machine) GroupOf() string {
	if m.Group != "" {
		return m.Group
	}
	return m.Name
}

// Applies reports whether the action runs for a failover of type typ in
// direction dir.
func (a Action) Applies(typ, dir string) bool {
	return (len(a.Types) == 0 || contains(a.Types, typ)) &&
		(len(a.Directions) == 0 || contains(a.Directions, dir))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
