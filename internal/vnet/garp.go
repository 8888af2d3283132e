package vnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Announce sends one gratuitous ARP for addr from link inside ns, so
// neighbours that cached an older MAC for the address (the primary machine,
// an earlier test copy) update at once instead of waiting for the entry to
// go stale.
func (Netlink) Announce(ns, link string, addr netip.Addr) error {
	if !addr.Is4() {
		return nil // IPv6 neighbours learn from the kernel's own unsolicited NA
	}
	return Do(ns, func() error {
		ifc, err := net.InterfaceByName(link)
		if err != nil {
			return fmt.Errorf("vnet: announce: %w", err)
		}
		return sendGARP(ifc, addr)
	})
}

func sendGARP(ifc *net.Interface, addr netip.Addr) error {
	proto := int(htons(unix.ETH_P_ARP))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return fmt.Errorf("vnet: packet socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifc.Index, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, garpFrame(ifc.HardwareAddr, addr), 0, to); err != nil {
		return fmt.Errorf("vnet: send gratuitous ARP on %s: %w", ifc.Name, err)
	}
	return nil
}

// garpFrame builds an Ethernet broadcast ARP request whose sender and
// target are both addr (RFC 5227 ARP announcement).
func garpFrame(mac net.HardwareAddr, addr netip.Addr) []byte {
	ip := addr.As4()
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, mac...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1)      // hardware: Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // protocol: IPv4
	f = append(f, 6, 4)
	f = binary.BigEndian.AppendUint16(f, 1) // request
	f = append(f, mac...)
	f = append(f, ip[:]...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	return append(f, ip[:]...)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
