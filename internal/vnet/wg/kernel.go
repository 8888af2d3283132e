package wg

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// errNoKernel: the kernel has no WireGuard (this test machine).
var errNoKernel = errors.New("wg: no WireGuard in the kernel")

func kernelFile(dir, name string) string { return filepath.Join(dir, name+".kernel") }

// startKernel brings c up as a kernel WireGuard interface: made and
// configured in the edge's namespace, then moved into the site's. The
// kernel keeps a WireGuard interface's UDP socket in the namespace it was
// made in, so the port is on the host's address while the interface and
// its routes are the site's, as with the userspace process. The record
// (<name>.kernel, the site's namespace) is written first, so Stop finds
// an interface a crash left.
//
// Not tested here: this machine's kernel has no WireGuard, so the tests
// run the detection (errNoKernel) and the userspace path.
func startKernel(dir, siteNS, edgeNS string, c Config, key []byte) (err error) {
	edge, err := openNS(edgeNS)
	if err != nil {
		return err
	}
	defer edge.Close()
	site, err := os.Open(filepath.Join("/run/netns", siteNS))
	if err != nil {
		return err
	}
	defer site.Close()
	eh, err := netlink.NewHandleAt(netns.NsHandle(edge.Fd()))
	if err != nil {
		return err
	}
	defer eh.Close()
	sh, err := netlink.NewHandleAt(netns.NsHandle(site.Fd()))
	if err != nil {
		return err
	}
	defer sh.Close()
	if l, err := eh.LinkByName(c.Iface()); err == nil {
		eh.LinkDel(l) // a start cut short before the move
	}
	if err := eh.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: c.Iface()}}); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return errNoKernel
		}
		return fmt.Errorf("wg: add %s: %w", c.Iface(), err)
	}
	if err := os.WriteFile(kernelFile(dir, c.Name), []byte(siteNS+"\n"), 0o600); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if l, lerr := eh.LinkByName(c.Iface()); lerr == nil {
				eh.LinkDel(l)
			}
			stopKernel(dir, c.Name)
		}
	}()
	cfg, err := c.wgtypes(key)
	if err != nil {
		return err
	}
	if err := inNS(edge, func() error {
		cl, err := wgctrl.New()
		if err != nil {
			return err
		}
		defer cl.Close()
		return cl.ConfigureDevice(c.Iface(), cfg)
	}); err != nil {
		return fmt.Errorf("wg: configure %s: %w", c.Iface(), err)
	}
	l, err := eh.LinkByName(c.Iface())
	if err != nil {
		return err
	}
	if err := eh.LinkSetNsFd(l, int(site.Fd())); err != nil {
		return fmt.Errorf("wg: move %s into the site: %w", c.Iface(), err)
	}
	return configureIface(sh, c.spec())
}

func (c Config) wgtypes(key []byte) (wgtypes.Config, error) {
	priv, err := wgtypes.NewKey(key)
	if err != nil {
		return wgtypes.Config{}, err
	}
	port := c.ListenPort
	if port == 0 {
		port = 51820
	}
	cfg := wgtypes.Config{PrivateKey: &priv, ListenPort: &port, ReplacePeers: true}
	for _, p := range c.Peers {
		pk, err := decodeKey(p.PublicKey)
		if err != nil {
			return cfg, err
		}
		pc := wgtypes.PeerConfig{PublicKey: wgtypes.Key(pk), ReplaceAllowedIPs: true}
		if p.Endpoint != "" {
			if pc.Endpoint, err = net.ResolveUDPAddr("udp", p.Endpoint); err != nil {
				return cfg, fmt.Errorf("%w: endpoint %q: %v", ErrConfig, p.Endpoint, err)
			}
		}
		if p.Keepalive > 0 {
			ka := p.Keepalive.Round(time.Second)
			pc.PersistentKeepaliveInterval = &ka
		}
		for _, a := range p.AllowedIPs {
			pc.AllowedIPs = append(pc.AllowedIPs, *ipnet(a.Masked()))
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	return cfg, nil
}

// inNS runs fn on a thread in namespace f (generic netlink sockets are
// made in the calling thread's namespace).
func inNS(f *os.File, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(netns.NsHandle(f.Fd())); err != nil {
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// kernelUp reports whether a kernel tunnel recorded in dir has its
// interface in its site.
func kernelUp(dir, name string) bool {
	b, err := os.ReadFile(kernelFile(dir, name))
	if err != nil {
		return false
	}
	h, err := netns.GetFromName(strings.TrimSpace(string(b)))
	if err != nil {
		return false
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return false
	}
	defer nh.Close()
	_, err = nh.LinkByName("wg-" + name)
	return err == nil
}

// stopKernel deletes a kernel tunnel's interface (gone with its site's
// namespace already is fine) and its record.
func stopKernel(dir, name string) error {
	b, err := os.ReadFile(kernelFile(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if h, err := netns.GetFromName(strings.TrimSpace(string(b))); err == nil {
		nh, err := netlink.NewHandleAt(h)
		if err == nil {
			if l, err := nh.LinkByName("wg-" + name); err == nil {
				if err := nh.LinkDel(l); err != nil {
					nh.Close()
					h.Close()
					return err
				}
			}
			nh.Close()
		}
		h.Close()
	}
	return rmIfExists(kernelFile(dir, name))
}

func rmIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
