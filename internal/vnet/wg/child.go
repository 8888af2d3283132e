package wg

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

const childEnv = "HAVEN_WG_CHILD"

// childSpec is what the parent hands its tunnel process (a 0600 file the
// child removes once read: it holds the private key).
type childSpec struct {
	Iface   string         `json:"iface"`
	UAPI    string         `json:"uapi"`
	Address netip.Prefix   `json:"address,omitzero"`
	Routes  []netip.Prefix `json:"routes"`
	// NS is the namespace the process lives in: it exits once that
	// name no longer points at its namespace.
	NS string `json:"ns"`
}

// The edge namespace's fd, inherited as the first extra file.
const edgeFD = 3

func init() {
	if p := os.Getenv(childEnv); p != "" {
		if err := child(p); err != nil {
			fmt.Fprintln(os.Stderr, "haven wg:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func child(specPath string) error {
	var s childSpec
	b, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	os.Remove(specPath)
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	// The process was forked inside the site's namespace: the TUN
	// device, its ioctls and its netlink socket are all there.
	t, err := tun.CreateTUN(s.Iface, device.DefaultMTU)
	if err != nil {
		return fmt.Errorf("tun %s: %w", s.Iface, err)
	}
	dev := device.NewDevice(t, &edgeBind{Bind: conn.NewStdNetBind()}, device.NewLogger(device.LogLevelError, "haven wg: "))
	defer dev.Close()
	if err := dev.IpcSet(s.UAPI); err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	if err := dev.Up(); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	if err := configureIface(&netlink.Handle{}, s); err != nil {
		return err
	}
	fmt.Println("ready")
	os.Stdout.Close()
	return wait(dev, s.NS)
}

// configureIface gives the tunnel's interface its address, brings it up
// and routes the peers' networks into it, through h (in the site).
func configureIface(h *netlink.Handle, s childSpec) error {
	l, err := h.LinkByName(s.Iface)
	if err != nil {
		return err
	}
	if s.Address.IsValid() {
		if err := h.AddrReplace(l, &netlink.Addr{IPNet: ipnet(s.Address)}); err != nil {
			return fmt.Errorf("address %s: %w", s.Address, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	for _, r := range s.Routes {
		if err := h.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipnet(r.Masked())}); err != nil {
			return fmt.Errorf("route %s: %w", r, err)
		}
	}
	return nil
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// wait runs the tunnel until SIGTERM, the device's end, or its site's
// namespace being deleted.
func wait(dev *device.Device, ns string) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-sig:
			return nil
		case <-dev.Wait():
			return nil
		case <-tick.C:
			if ns != "" && !sameNS(filepath.Join("/run/netns", ns)) {
				return nil
			}
		}
	}
}

func sameNS(path string) bool {
	var a, b unix.Stat_t
	if unix.Stat(path, &a) != nil || unix.Stat("/proc/self/ns/net", &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// edgeBind opens the tunnel's UDP sockets in the uplink's namespace (fd
// 3): a socket stays in the namespace it was made in, so the rest of the
// process can live in the site's.
type edgeBind struct{ conn.Bind }

func (b *edgeBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	type result struct {
		fns  []conn.ReceiveFunc
		port uint16
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread is in another namespace, so Go
		// ends it with this goroutine instead of reusing it.
		runtime.LockOSThread()
		if err := unix.Setns(edgeFD, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter the uplink's namespace: %w", err)}
			return
		}
		fns, p, err := b.Bind.Open(port)
		ch <- result{fns, p, err}
	}()
	r := <-ch
	return r.fns, r.port, r.err
}
