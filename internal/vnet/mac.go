package vnet

import (
	"crypto/sha256"
	"net"
)

// StableMAC derives a locally administered unicast MAC from the machine and
// NIC name, so a machine keeps its MAC across failovers and neighbours' ARP
// caches and DHCP-like records stay valid.
func StableMAC(machine, nic string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("haven-mac\x00" + machine + "\x00" + nic))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01 // locally administered, unicast
	return mac
}
