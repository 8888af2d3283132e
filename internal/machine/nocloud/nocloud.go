// Package nocloud writes cloud-init NoCloud seeds: the documents that tell
// a guest its hostname and the addresses of its NICs at the recovery
// site (network-config v2, NICs matched by MAC as clouds do), and the
// small ISO9660 image labelled cidata that carries them into a VM.
package nocloud

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	"gopkg.in/yaml.v3"

	"github.com/haven-dr/haven/internal/machine"
)

// Seed file names, as cloud-init looks for them.
const (
	MetaData      = "meta-data"
	UserData      = "user-data"
	NetworkConfig = "network-config"
)

// userData keeps a recovered machine's SSH host keys: it is the same
// machine, but a new instance-id would otherwise make cloud-init replace
// them. (Users are left to the image's own cloud.cfg: an empty "users"
// list fails cloud-init's schema.)
const userData = "#cloud-config\nssh_deletekeys: false\n"

// Ethernet is one NIC in network-config version 2.
type Ethernet struct {
	Match       Match        `yaml:"match"`
	SetName     string       `yaml:"set-name"`
	Addresses   []string     `yaml:"addresses"`
	Routes      []Route      `yaml:"routes,omitempty"`
	Nameservers *Nameservers `yaml:"nameservers,omitempty"`
}

// Match selects the guest interface by its MAC address.
type Match struct {
	MACAddress string `yaml:"macaddress"`
}

// Route is a static route.
type Route struct {
	To  string `yaml:"to"`
	Via string `yaml:"via"`
}

// Nameservers are the DNS servers of a NIC's network.
type Nameservers struct {
	Addresses []string `yaml:"addresses"`
}

// NetworkV2 is a network-config version 2 document.
type NetworkV2 struct {
	Version   int                 `yaml:"version"`
	Ethernets map[string]Ethernet `yaml:"ethernets"`
}

// Meta is the meta-data document.
type Meta struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname"`
}

// Network builds the network-config for spec's NICs. Only the first NIC
// gets the default route (via its network's gateway), as the ns driver
// does: one default route, on the machine's primary address.
func Network(spec machine.Spec, nets machine.Networks) (NetworkV2, error) {
	n := NetworkV2{Version: 2, Ethernets: map[string]Ethernet{}}
	for i, nic := range spec.NICs {
		if nic.MAC == nil || !nic.Addr.IsValid() || nic.Name == "" {
			return n, fmt.Errorf("%w: %s NIC %d needs name, MAC and address (validate the spec first)", machine.ErrBadSpec, spec.Name, i)
		}
		if _, dup := n.Ethernets[nic.Name]; dup {
			return n, fmt.Errorf("%w: %s has two NICs named %s", machine.ErrBadSpec, spec.Name, nic.Name)
		}
		att, err := nets.Attachment(nic.Network)
		if err != nil {
			return n, fmt.Errorf("nocloud: %s NIC %s: %w", spec.Name, nic.Name, err)
		}
		e := Ethernet{Match: Match{MACAddress: nic.MAC.String()}, SetName: nic.Name,
			Addresses: []string{nic.Addr.String()}}
		if gw := att.Network.Gateway; i == 0 && gw.IsValid() {
			e.Routes = []Route{{To: defaultRoute(gw), Via: gw.String()}}
		}
		if len(att.Network.DNS) > 0 {
			e.Nameservers = &Nameservers{}
			for _, a := range att.Network.DNS {
				e.Nameservers.Addresses = append(e.Nameservers.Addresses, a.String())
			}
		}
		n.Ethernets[nic.Name] = e
	}
	return n, nil
}

// defaultRoute is written as a prefix rather than "default", which older
// cloud-init releases do not understand.
func defaultRoute(gw netip.Addr) string {
	if gw.Is4() {
		return "0.0.0.0/0"
	}
	return "::/0"
}

// Documents returns the seed files for spec. The instance-id is derived
// from the machine's name and network-config, so booting again with the
// same addresses is the same instance (cloud-init does nothing new) and
// new addresses make a new instance that cloud-init configures afresh.
func Documents(spec machine.Spec, nets machine.Networks) (map[string][]byte, error) {
	n, err := Network(spec, nets)
	if err != nil {
		return nil, err
	}
	netDoc, err := yaml.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("nocloud: %w", err)
	}
	sum := sha256.Sum256(append([]byte(spec.Name+"\x00"), netDoc...))
	meta, err := yaml.Marshal(Meta{InstanceID: "haven-" + hex.EncodeToString(sum[:8]), LocalHostname: spec.Name})
	if err != nil {
		return nil, fmt.Errorf("nocloud: %w", err)
	}
	return map[string][]byte{MetaData: meta, UserData: []byte(userData), NetworkConfig: netDoc}, nil
}
