// Package hostrig runs recovery hosts as real `haven host` processes, each
// in a network namespace of its own (its "machine") with its own state
// directory, joined by a veth underlay, for the end-to-end tests and the
// hosts benchmark. It can kill a host as a power loss does: its process,
// every process of its machines, its link.
package hostrig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// Host is one `haven host` process in namespace NS, on the underlay at
// Addr, with its state in Dir.
type Host struct {
	Name, NS, Dir, Cfg string
	Addr               netip.Addr
	Cmd                *exec.Cmd
	C                  *hostapi.Client // dials from the control namespace
	ID                 string          // its site namespaces are ID-<site>
	dead               bool
}

// URL, token and CA of h, as server.yaml's hosts: entry names them.
func (h *Host) URL() string    { return "https://" + h.Addr.String() + ":7443" }
func (h *Host) Token() string  { return filepath.Join(h.Dir, "token") }
func (h *Host) CAFile() string { return filepath.Join(h.Dir, "tls", "ca.crt") }

// Dead reports whether Kill took h down.
func (h *Host) Dead() bool { return h.dead }

// Options says what to run and how each host is configured.
type Options struct {
	Bin  string   // the haven binary
	Env  []string // the environment of every haven process
	Base string   // the directory of every host's state
	// Net is the underlay's first three octets: host i is Net.(i+1), the
	// control namespace Net.100.
	Net [3]byte
	// Config is more of host name's host.yaml (vault, edge).
	Config func(name string) string
	// DiskDir is the disk directory of the caller hosts' clients stand
	// for (the server's): paths under it travel relative.
	DiskDir string
	// Sites are removed through every host that answers at cleanup.
	Sites []string
	// Setup, if set, runs for each host once its namespace and directory
	// are made, before its haven host starts (a libvirtd in its
	// namespace); what it returns is more of its host.yaml.
	Setup func(t testing.TB, h *Host) string
}

// Rig is recovery hosts joined by an underlay bridge, and a control
// namespace on the same underlay from which the caller (standing for
// haven server) reaches them: nothing in the root namespace talks to a
// lab address.
type Rig struct {
	Prefix, Ctl string
	Hosts       []*Host
	Others      []string // MachineNS's
	opt         Options
}

// New makes the namespaces and starts one `haven host` per name; a
// cleanup removes everything, even when the test fails.
func New(t testing.TB, opt Options, names ...string) *Rig {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "nsenter")
	b := make([]byte, 3)
	rand.Read(b)
	r := &Rig{Prefix: "hv" + hex.EncodeToString(b), opt: opt}
	r.Ctl = r.Prefix + "-ctl"
	ops := vnet.Netlink{}
	ul := r.underlay()
	t.Cleanup(r.cleanup(t)) // deleting what was never made is harmless
	for _, ns := range []string{ul, r.Ctl} {
		must(t, ops.AddNS(ns))
	}
	must(t, ops.AddBridge(ul, "hvbr"))
	must(t, ops.LinkUp(ul, "hvbr"))
	r.join(t, r.Ctl, "hvctl", netip.PrefixFrom(r.addr(100), 24))
	for i, name := range names {
		h := &Host{Name: name, NS: r.Prefix + "-" + name, Dir: filepath.Join(opt.Base, name), Addr: r.addr(i + 1)}
		must(t, ops.AddNS(h.NS))
		r.Hosts = append(r.Hosts, h)
		r.join(t, h.NS, "hv"+name, netip.PrefixFrom(h.Addr, 24))
		must(t, os.MkdirAll(filepath.Join(h.Dir, "disks"), 0o700))
		h.Cfg = filepath.Join(h.Dir, "host.yaml")
		extra := ""
		if opt.Config != nil {
			extra = opt.Config(name)
		}
		if opt.Setup != nil {
			extra += opt.Setup(t, h)
		}
		must(t, os.WriteFile(h.Cfg, []byte(fmt.Sprintf("listen: %s:7443\nstate_dir: %s\ntoken_file: %s/token\ntls: {dir: %s/tls}\noverlay: {local: %s}\n",
			h.Addr, h.Dir, h.Dir, h.Dir, h.Addr)+extra), 0o600))
		r.Start(t, h)
	}
	return r
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (r *Rig) underlay() string { return r.Prefix + "-ul" }

func (r *Rig) addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{r.opt.Net[0], r.opt.Net[1], r.opt.Net[2], byte(i)})
}

// join puts namespace ns on the underlay at addr, through port.
func (r *Rig) join(t testing.TB, ns, port string, addr netip.Prefix) {
	t.Helper()
	ops, ul := vnet.Netlink{}, r.underlay()
	for _, err := range []error{ops.AddVeth(ul, port, ns, "eth0", nil), ops.SetMaster(ul, port, "hvbr"), ops.LinkUp(ul, port),
		ops.AddAddr(ns, "eth0", addr), ops.LinkUp(ns, "eth0"), ops.LinkUp(ns, "lo")} {
		must(t, err)
	}
}

// MachineNS is one more "machine" on the underlay: a namespace of the
// rig's, named and removed with it.
func (r *Rig) MachineNS(t testing.TB, name string, addr netip.Prefix) string {
	t.Helper()
	ns := r.Prefix + "-" + name
	must(t, (vnet.Netlink{}).AddNS(ns))
	r.Others = append(r.Others, ns)
	r.join(t, ns, "hv"+name, addr)
	return ns
}

// Named is the host called name.
func (r *Rig) Named(name string) *Host {
	for _, h := range r.Hosts {
		if h.Name == name {
			return h
		}
	}
	panic("hostrig: no host " + name)
}

// Start runs (or runs again) h's haven host and waits for its API.
func (r *Rig) Start(t testing.TB, h *Host) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(h.Dir, "host.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	must(t, err)
	defer logf.Close()
	h.Cmd = exec.Command("nsenter", "--net=/run/netns/"+h.NS, r.opt.Bin, "host", "--config", h.Cfg)
	h.Cmd.Env = r.opt.Env
	h.Cmd.Stdout, h.Cmd.Stderr = logf, logf
	must(t, h.Cmd.Start())
	if h.C != nil {
		h.C.Retries = -1 // the loop below is the retry
	}
	testenv.Eventually(t, time.Minute, "haven host "+h.Name+" up", func() bool {
		if h.C == nil {
			c, err := r.Client(h, r.opt.DiskDir)
			if err != nil {
				return false
			}
			c.Retries = -1
			h.C = c
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		i, err := h.C.Info(ctx)
		h.ID = i.ID
		return err == nil
	})
	h.C.Retries = 0
}

// Client is a client of h's haven host for a caller whose disk paths
// are under diskDir, dialing from the control namespace.
func (r *Rig) Client(h *Host, diskDir string) (*hostapi.Client, error) {
	tok, err := os.ReadFile(h.Token())
	if err != nil {
		return nil, err
	}
	if diskDir == "" {
		diskDir = "/nonexistent/disks"
	}
	c, err := hostapi.NewClient(h.URL(), strings.TrimSpace(string(tok)), h.CAFile(), diskDir)
	if err != nil {
		return nil, err
	}
	c.HTTP.Transport.(*http.Transport).DialContext = func(ctx context.Context, n, a string) (net.Conn, error) {
		return vnet.DialContext(ctx, r.Ctl, n, a)
	}
	return c, nil
}

// Stop ends h's haven host by SIGTERM and waits for it; its machines
// keep running.
func (h *Host) Stop() {
	if h.Cmd == nil || h.Cmd.Process == nil {
		return
	}
	h.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { h.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		h.Cmd.Process.Kill()
		<-done
	}
	h.Cmd = nil
}
