package libvirtdrv

import (
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// CheckNetNS refuses a libvirtd (the process behind socket sock) that
// runs in another network namespace than the caller: the driver makes a
// domain's taps in its own namespace for libvirtd to open by name in
// libvirtd's, and libvirt's own error for that ("specified dev doesn't
// exist") names neither. Where the peer cannot be looked at, it says
// nothing and leaves the verdict to libvirt.
func CheckNetNS(sock string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return nil // the connection's own dial reports it
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return nil
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil || cred.Pid <= 0 {
		return nil
	}
	theirs, err := netns.GetFromPid(int(cred.Pid))
	if err != nil {
		return nil
	}
	defer theirs.Close()
	ours, err := netns.Get()
	if err != nil {
		return nil
	}
	defer ours.Close()
	if !ours.Equal(theirs) {
		return fmt.Errorf("libvirt: libvirtd at %s (pid %d) runs in another network namespace than this process: "+
			"the taps made here for its domains cannot be opened there; run Haven in libvirtd's network namespace", sock, cred.Pid)
	}
	return nil
}
