package hostsbench

import (
	"context"
	crand "crypto/rand"
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
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// workerHost is one `haven host` process in a namespace of its own (its
// "machine"), on the underlay at addr, with its own state directory; its
// VXLAN overlay (when the server builds one) runs over the underlay.
type workerHost struct {
	name, ns, dir string
	addr          netip.Addr
	cmd           *exec.Cmd
	id            string // its site namespaces are id-<site>
}

// rig is the recovery hosts of both layouts on one underlay bridge, and
// a control namespace on the same underlay from which the in-process
// servers call them: nothing in the root namespace talks to a lab
// address. Everything lives on one reflink XFS, so standby images are
// cloned, not copied, as on a production host.
type rig struct {
	bin, prefix, ctl, base string
	hosts                  map[string]*workerHost
}

// newRig makes the namespaces and starts one `haven host` per name, each
// reading the vault at vaultOf[name]; b.Cleanup removes everything, in
// reverse, even when the benchmark fails.
func newRig(b *testing.B, bin, base string, vaultOf map[string]string, pw string, names ...string) *rig {
	var rnd [3]byte
	crand.Read(rnd[:])
	r := &rig{bin: bin, base: base, prefix: "hv" + hex.EncodeToString(rnd[:]), hosts: map[string]*workerHost{}}
	r.ctl = r.prefix + "-ctl"
	ops := vnet.Netlink{}
	ul := r.prefix + "-ul"
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(r.cleanup(b)) // deleting what was never made is harmless
	for _, ns := range []string{ul, r.ctl} {
		must(ops.AddNS(ns))
	}
	must(ops.AddBridge(ul, "hvbr"))
	must(ops.LinkUp(ul, "hvbr"))
	join := func(ns, port string, addr netip.Prefix) {
		must(ops.AddVeth(ul, port, ns, "eth0", nil))
		must(ops.SetMaster(ul, port, "hvbr"))
		must(ops.LinkUp(ul, port))
		must(ops.AddAddr(ns, "eth0", addr))
		must(ops.LinkUp(ns, "eth0"))
		must(ops.LinkUp(ns, "lo"))
	}
	join(r.ctl, "hvctl", netip.MustParsePrefix("10.78.0.100/24"))
	for i, name := range names {
		h := &workerHost{name: name, ns: r.prefix + "-" + name, dir: filepath.Join(base, "host-"+name),
			addr: netip.AddrFrom4([4]byte{10, 78, 0, byte(i + 1)})}
		r.hosts[name] = h
		must(ops.AddNS(h.ns))
		join(h.ns, "hv"+name, netip.PrefixFrom(h.addr, 24))
		must(os.MkdirAll(h.dir, 0o700))
		cfg := filepath.Join(h.dir, "host.yaml")
		must(os.WriteFile(cfg, []byte(fmt.Sprintf("listen: %s:7443\nstate_dir: %s\ntoken_file: %s/token\ntls: {dir: %s/tls}\noverlay: {local: %s}\nvault: file://%s\npassword_file: %s\n",
			h.addr, h.dir, h.dir, h.dir, h.addr, vaultOf[name], pw)), 0o600))
		r.start(b, h, cfg)
	}
	return r
}

func (r *rig) start(b *testing.B, h *workerHost, cfg string) {
	logf, err := os.OpenFile(filepath.Join(h.dir, "host.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	h.cmd = exec.Command("nsenter", "--net=/run/netns/"+h.ns, r.bin, "host", "--config", cfg)
	h.cmd.Env = env()
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	testenv.Eventually(b, time.Minute, "haven host "+h.name+" up", func() bool {
		c, err := r.client(h, "")
		if err != nil {
			return false
		}
		c.Retries = -1
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		i, err := c.Info(ctx)
		h.id = i.ID
		return err == nil
	})
}

// url, token and CA of h, as server.yaml's hosts: entry names them.
func (h *workerHost) url() string    { return "https://" + h.addr.String() + ":7443" }
func (h *workerHost) token() string  { return filepath.Join(h.dir, "token") }
func (h *workerHost) caFile() string { return filepath.Join(h.dir, "tls", "ca.crt") }

// client is a hostapi client of h that dials from the control namespace;
// disk paths travel relative to diskDir (the server's disk directory).
func (r *rig) client(h *workerHost, diskDir string) (*hostapi.Client, error) {
	tok, err := os.ReadFile(h.token())
	if err != nil {
		return nil, err
	}
	if diskDir == "" {
		diskDir = "/nonexistent/disks"
	}
	c, err := hostapi.NewClient(h.url(), strings.TrimSpace(string(tok)), h.caFile(), diskDir)
	if err != nil {
		return nil, err
	}
	c.HTTP.Transport.(*http.Transport).DialContext = func(ctx context.Context, n, a string) (net.Conn, error) {
		return vnet.DialContext(ctx, r.ctl, n, a)
	}
	return c, nil
}

func (h *workerHost) stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
	h.cmd = nil
}

// cleanup removes the sites through the hosts (which stops their
// machines), stops the hosts, kills any process still running from the
// rig's directory and deletes every namespace the rig or a host made.
func (r *rig) cleanup(b *testing.B) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, h := range r.hosts {
			if c, err := r.client(h, ""); err == nil && h.cmd != nil {
				for _, s := range []string{orchestrator.SiteRecovery, orchestrator.SiteTest} {
					if err := c.RemoveSite(ctx, s); err != nil {
						b.Errorf("remove site %s on %s: %v", s, h.name, err)
					}
				}
			}
		}
		for _, h := range r.hosts {
			h.stop()
		}
		for _, p := range procsUnder(r.base) {
			syscall.Kill(p, syscall.SIGKILL)
		}
		ops := vnet.Netlink{}
		ents, _ := os.ReadDir("/run/netns")
		for _, e := range ents {
			for _, h := range r.hosts {
				if h.id != "" && strings.HasPrefix(e.Name(), h.id+"-") {
					b.Errorf("namespace %s left by host %s: deleting it", e.Name(), h.name)
					ops.DelNS(e.Name())
				}
			}
		}
		for _, h := range r.hosts {
			ops.DelNS(h.ns)
		}
		ops.DelNS(r.ctl)
		ops.DelNS(r.prefix + "-ul")
	}
}

// procsUnder lists the processes whose command line names dir (hosts
// and the machines they run).
func procsUnder(dir string) []int {
	var out []int
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), dir) {
			var pid int
			fmt.Sscan(filepath.Base(filepath.Dir(f)), &pid)
			if pid > 0 && pid != os.Getpid() {
				out = append(out, pid)
			}
		}
	}
	return out
}

func env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HAVEN_TEST_KDF=fast"}
}

// protect makes machine m's disks as the primary would have them (the
// guest root image and an ext4 data disk of mib MiB, half of it random
// files), takes one crash-consistent point of both with `haven
// snapshot` (the vault write path the agent uses), and deletes the
// primary copies: only the vault is left.
func protect(b *testing.B, bin, dir string, vaultFlags []string, m string, mib int) {
	root := filepath.Join(dir, m+"-root.img")
	data := filepath.Join(dir, m+"-data.img")
	defer os.Remove(root)
	defer os.Remove(data)
	if out, err := exec.Command("cp", machinetest.Image(b), root).CombinedOutput(); err != nil {
		b.Fatalf("copy the guest image: %v\n%s", err, out)
	}
	testenv.FilledExt4(b, data, int64(mib), int64(mib)/2)
	cmd := exec.Command(bin, append([]string{"snapshot", "--machine", m, "--disk", "root=" + root, "--disk", "data=" + data}, vaultFlags...)...)
	cmd.Env = env()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("snapshot %s: %v\n%s", m, err, out)
	}
}
