package server

import (
	"errors"
	"fmt"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/vnet/wg"
	"gopkg.in/yaml.v3"
)

// EdgeConfig is `edge:` in server.yaml: a namespace name (as before), or
// a mapping naming a host interface (or an existing bridge), optionally
// inside a namespace that stands for the host:
//
//	edge: hvab12cd-inet
//	edge: {interface: eth0}
//	edge: {interface: eth0, netns: hvab12cd-host}
type EdgeConfig struct {
	NetNS     string `yaml:"netns"`
	Interface string `yaml:"interface"`
}

func (e *EdgeConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*e = EdgeConfig{NetNS: n.Value}
		return nil
	}
	type plain EdgeConfig
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*e = EdgeConfig(p)
	return nil
}

// String is the edge as host.Host takes it ("" for none).
func (e EdgeConfig) String() string {
	return host.Edge{NS: e.NetNS, Interface: e.Interface}.String()
}

func (e EdgeConfig) check() error {
	if e.NetNS == "" && e.Interface == "" {
		return nil
	}
	for _, s := range []string{e.NetNS, e.Interface} {
		for _, r := range s {
			if r == '@' || r == '/' || r == ' ' {
				return fmt.Errorf("edge: %q: a namespace or interface name", s)
			}
		}
	}
	if len(e.Interface) > 15 {
		return fmt.Errorf("edge: interface %q: longer than 15 bytes", e.Interface)
	}
	return nil
}

// checkTunnels refuses tunnels that cannot come up, at start rather than
// in the middle of a failover.
func checkTunnels(ts []wg.Config, edge EdgeConfig) error {
	var errs []error
	seen := map[string]bool{}
	for _, t := range ts {
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("tunnels: %q twice", t.Name))
		}
		seen[t.Name] = true
		errs = append(errs, t.Check())
	}
	if len(ts) > 0 && edge.NetNS == "" && edge.Interface == "" {
		errs = append(errs, errors.New("tunnels need an edge: the tunnel's UDP port is on the recovery host's uplink"))
	}
	return errors.Join(errs...)
}
