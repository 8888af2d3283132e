package vnet

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// OpenTap creates tap device name inside namespace ns and returns its file.
// The tap is not persistent: it disappears when the last holder of the file
// (QEMU) exits, so a crashed VM cannot leave it behind.
func OpenTap(ns, name string) (*os.File, error) {
	var f *os.File
	err := Do(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("vnet: open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("%w: tap %q: %v", ErrBadName, name, err)
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("vnet: create tap %s/%s: %w", ns, name, err)
		}
		f = os.NewFile(uintptr(fd), "tap:"+name)
		return nil
	})
	return f, err
}

// AddPersistentTap creates tap device name in namespace ns that outlives
// its openers: for a hypervisor (libvirt) that opens a tap by name itself
// instead of taking Haven's file. DelLink removes it; so does the removal
// of the namespace it is in.
func AddPersistentTap(ns, name string) error {
	return withHandle(ns, func(h *netlink.Handle) error {
		t := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR}
		if err := h.LinkAdd(t); err != nil {
			return fmt.Errorf("vnet: add tap %s/%s: %w", ns, name, err)
		}
		return nil
	})
}

// MoveLink moves link name from namespace from into namespace to, where it
// arrives down. A tap keeps its open files across the move, so a VM that
// opened it in one namespace sends and receives in the other.
func MoveLink(from, name, to string) error {
	dst, err := openNS(to)
	if err != nil {
		return fmt.Errorf("vnet: open netns %q: %w", to, err)
	}
	defer dst.Close()
	return withHandle(from, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err == nil {
			err = h.LinkSetNsFd(l, int(dst))
		}
		if err != nil {
			return fmt.Errorf("vnet: move link %s/%s to %s: %w", from, name, to, err)
		}
		return nil
	})
}
