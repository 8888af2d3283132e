package nocloud

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

type nets map[string]vnet.Network

func (n nets) Attachment(name string) (vnet.Attachment, error) {
	net, ok := n[name]
	if !ok {
		return vnet.Attachment{}, vnet.ErrUnknown
	}
	return vnet.Attachment{Network: net}, nil
}

var labNets = nets{
	"app": {Name: "app", Subnet: netip.MustParsePrefix("10.5.0.0/24"), Gateway: netip.MustParseAddr("10.5.0.1"),
		DNS: []netip.Addr{netip.MustParseAddr("10.5.0.53")}},
	"db": {Name: "db", Subnet: netip.MustParsePrefix("10.6.0.0/24"), Gateway: netip.MustParseAddr("10.6.0.1")},
}

func spec(t *testing.T, appAddr string) machine.Spec {
	s := machine.Spec{Name: "web", Disks: []machine.Disk{{Name: "root", Path: "/d"}}, NICs: []vnet.NIC{
		{Name: "eth0", Network: "app", Addr: netip.MustParsePrefix(appAddr)},
		{Name: "eth1", Network: "db", Addr: netip.MustParsePrefix("10.6.0.9/24")}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNetworkConfigParsesBack reads the YAML as cloud-init would and
// checks every NIC: matched by MAC, renamed, addressed, the default route
// only on the first, nameservers only where the network has them.
func TestNetworkConfigParsesBack(t *testing.T) {
	s := spec(t, "10.5.0.7/24")
	docs, err := Documents(s, labNets)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version   int `yaml:"version"`
		Ethernets map[string]struct {
			Match struct {
				MACAddress string `yaml:"macaddress"`
			} `yaml:"match"`
			SetName     string              `yaml:"set-name"`
			Addresses   []string            `yaml:"addresses"`
			Routes      []map[string]string `yaml:"routes"`
			Nameservers struct {
				Addresses []string `yaml:"addresses"`
			} `yaml:"nameservers"`
		} `yaml:"ethernets"`
	}
	if err := yaml.Unmarshal(docs[NetworkConfig], &got); err != nil {
		t.Fatalf("%v\n%s", err, docs[NetworkConfig])
	}
	if got.Version != 2 || len(got.Ethernets) != 2 {
		t.Fatalf("network-config:\n%s", docs[NetworkConfig])
	}
	e0, e1 := got.Ethernets["eth0"], got.Ethernets["eth1"]
	if e0.Match.MACAddress != vnet.StableMAC("web", "eth0").String() || e0.SetName != "eth0" ||
		strings.Join(e0.Addresses, ",") != "10.5.0.7/24" {
		t.Errorf("eth0: %+v", e0)
	}
	if len(e0.Routes) != 1 || e0.Routes[0]["to"] != "0.0.0.0/0" || e0.Routes[0]["via"] != "10.5.0.1" {
		t.Errorf("eth0 routes %v", e0.Routes)
	}
	if strings.Join(e0.Nameservers.Addresses, ",") != "10.5.0.53" {
		t.Errorf("eth0 nameservers %v", e0.Nameservers)
	}
	if e1.Match.MACAddress != vnet.StableMAC("web", "eth1").String() || e1.SetName != "eth1" ||
		strings.Join(e1.Addresses, ",") != "10.6.0.9/24" || len(e1.Routes) != 0 || e1.Nameservers.Addresses != nil {
		t.Errorf("eth1: %+v", e1)
	}
}

func meta(t *testing.T, docs map[string][]byte) Meta {
	var m Meta
	if err := yaml.Unmarshal(docs[MetaData], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestInstanceIDFollowsAddresses: the same addresses are the same
// instance (cloud-init leaves the guest alone); new ones are a new
// instance (cloud-init applies them).
func TestInstanceIDFollowsAddresses(t *testing.T) {
	a1, _ := Documents(spec(t, "10.5.0.7/24"), labNets)
	a2, _ := Documents(spec(t, "10.5.0.7/24"), labNets)
	b, _ := Documents(spec(t, "10.5.0.8/24"), labNets)
	ma1, ma2, mb := meta(t, a1), meta(t, a2), meta(t, b)
	if ma1.InstanceID == "" || ma1.InstanceID != ma2.InstanceID {
		t.Fatalf("same addresses, ids %q %q", ma1.InstanceID, ma2.InstanceID)
	}
	if mb.InstanceID == ma1.InstanceID {
		t.Fatalf("new address kept id %q", mb.InstanceID)
	}
	if ma1.LocalHostname != "web" {
		t.Fatalf("local-hostname %q", ma1.LocalHostname)
	}
	if !strings.HasPrefix(string(a1[UserData]), "#cloud-config\n") {
		t.Fatalf("user-data %q", a1[UserData])
	}
	var ud map[string]any
	if err := yaml.Unmarshal(a1[UserData], &ud); err != nil || ud["ssh_deletekeys"] != false {
		t.Fatalf("user-data %v %v", ud, err)
	}
}

func TestUnknownNetwork(t *testing.T) {
	s := spec(t, "10.5.0.7/24")
	s.NICs[1].Network = "nope"
	if _, err := Documents(s, labNets); !errors.Is(err, vnet.ErrUnknown) {
		t.Fatalf("err %v", err)
	}
	s = spec(t, "10.5.0.7/24")
	s.NICs[1].Name = "eth0"
	if _, err := Documents(s, labNets); !errors.Is(err, machine.ErrBadSpec) {
		t.Fatalf("duplicate NIC name: err %v", err)
	}
}
