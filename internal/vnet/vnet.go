// Package vnet builds recovery networks: Linux bridges inside network
// namespaces, one namespace per site, reachable only from a designated edge
// namespace. Every change to the host goes through the small Ops interface so
// that the topology logic is testable with the recording fake (the shape of
// Tailscale's router), while the real Ops speaks netlink.
//
// Safety: nothing here ever gives the root namespace an address or a route.
// The real Ops refuses it (ErrRootNS), so a bug cannot leak lab traffic off
// the machine.
package vnet

import (
	"errors"
	"fmt"
	"net/netip"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrRootNS        = errors.New("vnet: refusing to configure the root network namespace")
	ErrConflict      = errors.New("vnet: address conflict")
	ErrOutsideSubnet = errors.New("vnet: address outside the network's subnet")
	ErrExhausted     = errors.New("vnet: no free address left in subnet")
	ErrUnknown       = errors.New("vnet: unknown network")
	ErrBadName       = errors.New("vnet: bad name")
)

// Network is one recovery network: a bridge with a subnet and a gateway.
type Network struct {
	Name    string       `json:"name" yaml:"name"`
	Subnet  netip.Prefix `json:"subnet" yaml:"subnet"`
	Gateway netip.Addr   `json:"gateway" yaml:"gateway"`
	DNS     []netip.Addr `json:"dns,omitempty" yaml:"dns,omitempty"`
}

// Validate checks that the network is usable: a masked subnet with room for
// machines and a gateway inside it.
func (n Network) Validate() error {
	if n.Name == "" || len(n.Name) > 12 {
		return fmt.Errorf("%w: network name %q must be 1-12 characters", ErrBadName, n.Name)
	}
	if !n.Subnet.IsValid() || n.Subnet.Masked() != n.Subnet {
		return fmt.Errorf("vnet: network %s: subnet %v is not a masked prefix", n.Name, n.Subnet)
	}
	if !n.Subnet.Contains(n.Gateway) {
		return fmt.Errorf("%w: gateway %v of %s", ErrOutsideSubnet, n.Gateway, n.Name)
	}
	return nil
}

// GatewayPrefix is the gateway address with the subnet's prefix length, as
// it is put on the bridge.
func (n Network) GatewayPrefix() netip.Prefix {
	return netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
}
