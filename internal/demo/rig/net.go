package rig

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/haven-dr/haven/internal/vnet"
)

// MountXFS makes the reflink filesystem (sizeMiB, sparse) the disks and
// the server's state live on, in Dir/hvdisks.
func (r *Rig) MountXFS(sizeMiB int64) error {
	img := filepath.Join(r.Dir, "disks.xfs")
	if _, err := r.Command("truncate", "-s", fmt.Sprintf("%dM", sizeMiB), img); err != nil {
		return err
	}
	if _, err := r.Command("mkfs.xfs", "-q", "-m", "reflink=1", img); err != nil {
		return fmt.Errorf("%w (apt-get install xfsprogs)", err)
	}
	dev, err := r.Command("losetup", "--find", "--show", img)
	if err != nil {
		return err
	}
	r.Defer("losetup -d "+dev, func() error { exec.Command("losetup", "-d", dev).Run(); return nil })
	r.XFS = filepath.Join(r.Dir, "hvdisks")
	os.MkdirAll(r.XFS, 0o755)
	if _, err := r.Command("mount", "-t", "xfs", dev, r.XFS); err != nil {
		return err
	}
	xfs := r.XFS
	r.Defer("umount "+xfs+" || umount -l "+xfs, func() error {
		if exec.Command("umount", xfs).Run() != nil {
			exec.Command("umount", "-l", xfs).Run()
		}
		return nil
	})
	return nil
}

// Edge makes the internet's namespace (the lab's first part).
func (r *Rig) Edge() error {
	r.Lab = vnet.NewLab(r.Ops)
	r.delNS(r.Lab.ID + "-inet") // registered first: a half-made one goes too
	var err error
	r.Inet, err = r.Lab.AddEdge("inet")
	return err
}

// PrimarySite makes the internet and the primary site with the prod
// network, and links them: the internet routes prod to the site.
func (r *Rig) PrimarySite() error {
	if err := r.Edge(); err != nil {
		return err
	}
	r.delNS(r.Lab.ID + "-prim")
	s, err := r.Lab.AddSite("prim", []vnet.Network{ProdNet})
	if err != nil {
		return err
	}
	r.PrimNS = s.NS
	return r.Lab.Connect("inet", "prim")
}

// delNS registers a namespace's removal (its links go with it), quietly:
// the teardown is not part of the transcript.
func (r *Rig) delNS(ns string) {
	r.Defer("ip netns del "+ns, func() error { return vnet.Netlink{}.DelNS(ns) })
}

// CutPrimary takes the primary site off the internet.
func (r *Rig) CutPrimary() error {
	_, err := r.Command("ip", "-n", r.Inet, "link", "set", "to-prim", "down")
	return err
}

// Reconnect undoes CutPrimary: the link, and the internet's route to prod
// that went down with it.
func (r *Rig) Reconnect() error {
	if _, err := r.Command("ip", "-n", r.Inet, "link", "set", "to-prim", "up"); err != nil {
		return err
	}
	siteIP, err := LinkAddr(r.PrimNS, "edge")
	if err != nil {
		return err
	}
	_, err = r.Command("ip", "-n", r.Inet, "route", "replace", ProdNet.Subnet.String(), "via", siteIP)
	return err
}

// LinkAddr is the IPv4 address of link in namespace ns.
func LinkAddr(ns, link string) (string, error) {
	out, err := exec.Command("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", link).Output()
	if err != nil {
		return "", fmt.Errorf("address of %s in %s: %v", link, ns, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 4 {
		return "", fmt.Errorf("no address on %s in %s: %s", link, ns, out)
	}
	return strings.Split(f[3], "/")[0], nil
}

// FreePort is a TCP port free on loopback now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
