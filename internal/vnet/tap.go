package vnet

import (
	"fmt"
	"os"

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
