package dns

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Cluster makes this server one of several serving the same zones: it
// pulls its peers' state (endpoint overrides with their generations, and
// probe verdicts) every Interval, adopts any newer override, and, with
// ProbeQuorum, counts an endpoint down only when that many servers (itself
// included) see it down.
type Cluster struct {
	Name        string   `yaml:"name"`         // this server among its peers; default: listen
	Peers       []Peer   `yaml:"peers"`        // the other servers' APIs
	Interval    Duration `yaml:"interval"`     // how often peers are asked; default 2s
	ProbeQuorum int      `yaml:"probe_quorum"` // 0 (default): local probes decide
	// StartupWait bounds the first pull from the peers, made before the
	// DNS sockets open so a server that was down does not serve a decision
	// they replaced meanwhile; default 3s.
	StartupWait Duration `yaml:"startup_wait"`

	at pos `yaml:"-"`
}

// Peer is another `haven dns` server of the cluster.
type Peer struct {
	Name      string `yaml:"name"`
	API       string `yaml:"api"`        // http://host:port or https://...
	TokenFile string `yaml:"token_file"` // its API token
	CAFile    string `yaml:"ca_file"`    // https: the certificate to trust

	at pos `yaml:"-"`
}

func (c *Cluster) UnmarshalYAML(n *yaml.Node) error {
	type plain Cluster
	return decodeMapping(n, (*plain)(c), &c.at, "cluster")
}

func (p *Peer) UnmarshalYAML(n *yaml.Node) error {
	type plain Peer
	return decodeMapping(n, (*plain)(p), &p.at, "peer")
}

// clusterConf is a compiled Cluster.
type clusterConf struct {
	name        string
	peers       []peerConf
	interval    time.Duration
	quorum      int
	startupWait time.Duration
}

type peerConf struct{ name, api, tokenFile, caFile string }

const (
	defaultPeerInterval = 2 * time.Second
	defaultStartupWait  = 3 * time.Second
)

func compileCluster(e *errs, t *table, c *Config) {
	cc := c.Cluster
	if cc == nil {
		return
	}
	out := &clusterConf{name: orDefault(cc.Name, c.Listen), interval: time.Duration(cc.Interval),
		quorum: cc.ProbeQuorum, startupWait: time.Duration(cc.StartupWait)}
	out.interval = orDefault(out.interval, defaultPeerInterval)
	out.startupWait = orDefault(out.startupWait, defaultStartupWait)
	if out.interval < 100*time.Millisecond || out.interval > time.Minute {
		e.add(cc.at.lineOf("interval"), "cluster.interval", "must be between 100ms and 1m")
	}
	if out.startupWait < 0 || out.startupWait > time.Minute {
		e.add(cc.at.lineOf("startup_wait"), "cluster.startup_wait", "must be between 0 and 1m")
	}
	if cc.ProbeQuorum < 0 || cc.ProbeQuorum > len(cc.Peers)+1 {
		e.add(cc.at.lineOf("probe_quorum"), "cluster.probe_quorum",
			"%d: want 0 (off) up to the number of servers, %d", cc.ProbeQuorum, len(cc.Peers)+1)
	}
	seen := map[string]bool{out.name: true}
	for i, p := range cc.Peers {
		f := fmt.Sprintf("cluster.peers[%d]", i)
		if p.API == "" {
			e.add(p.at.lineOf("api"), f+".api", "missing")
		}
		name := orDefault(p.Name, p.API)
		if seen[name] {
			e.add(p.at.lineOf("name"), f+".name", "%q named twice (this server is %q)", name, out.name)
		}
		seen[name] = true
		out.peers = append(out.peers, peerConf{name: name, api: p.API, tokenFile: c.path(p.TokenFile), caFile: c.path(p.CAFile)})
	}
	t.cluster = out
}
