package nsdrv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// BenchmarkDebianBoot measures Start to healthy (PostgreSQL accepting TCP
// on 5432, probed from the lab's edge) for the Debian image: "ns" is this
// driver, "nspawn" is systemd-nspawn booting the same image on the same
// network plumbing (the root partition loop-mounted, the veth plugged by
// vnet into a namespace nspawn joins), as Haven would drive it. Each
// iteration boots a fresh copy; copying and stopping are not timed, and
// the copy is synced first: attaching a loop device writes the backing
// file's dirty pages back (about 0.35 s for a fresh copy here), which a
// restored replica, written long before, does not have.
//
//	go test -run XXX -bench DebianBoot -benchtime 5x ./internal/machine/nsdrv
func BenchmarkDebianBoot(b *testing.B) {
	b.Run("ns", func(b *testing.B) {
		e := debianEnv(b)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			spec := debianSpec(b, e, "bench", "10.91.0.10/24")
			syscall.Sync()
			b.StartTimer()
			m, err := e.Driver.Start(context.Background(), spec)
			if err != nil {
				b.Fatal(err)
			}
			e.WaitHealthy(m, e.Edge)
			b.StopTimer()
			if err := m.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("nspawn", func(b *testing.B) {
		nspawn := testenv.LookPath(b, "systemd-nspawn")
		e := debianEnv(b)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			spec := debianSpec(b, e, "nsp", "10.91.0.10/24")
			syscall.Sync()
			b.StartTimer()
			stop := bootNspawn(b, nspawn, e.Lab, spec)
			e.WaitHealthy(stubInstance{spec}, e.Edge)
			b.StopTimer()
			stop()
			b.StartTimer()
		}
	})
}

type stubInstance struct{ spec machine.Spec }

func (s stubInstance) Spec() machine.Spec       { return s.spec }
func (stubInstance) State() machine.State       { return machine.Running }
func (stubInstance) Stop(context.Context) error { return nil }
func (stubInstance) Done() <-chan struct{}      { return nil }
func (s stubInstance) ConsoleLog() string       { return s.spec.ConsoleLog }

// bootNspawn starts systemd-nspawn on spec's root disk in a named
// namespace plugged into spec's network, and returns how to stop it
// (SIGTERM: nspawn then sends the container SIGRTMIN+3) and release all.
func bootNspawn(b testing.TB, nspawn string, lab *vnet.Lab, spec machine.Spec) func() {
	parts, err := choose(spec.Disks[0], true)
	if err != nil {
		b.Fatal(err)
	}
	l, err := loop.AttachRange(spec.Disks[0].Path, LoopName(spec.Name, "root"), false, parts[0].part.Start, parts[0].part.Size)
	if err != nil {
		b.Fatal(err)
	}
	mnt := filepath.Join(filepath.Dir(spec.Disks[0].Path), "root")
	os.Mkdir(mnt, 0o755)
	if err := syscall.Mount(l.Path, mnt, parts[0].fstype, 0, ""); err != nil {
		b.Fatal(err)
	}
	l.Close() // autoclear once unmounted
	ns := spec.Name
	ops := vnet.Netlink{}
	if err := ops.AddNS(ns); err != nil {
		b.Fatal(err)
	}
	att, err := lab.Attachment(spec.NICs[0].Network)
	if err != nil {
		b.Fatal(err)
	}
	host := hostLink(spec.Name, "eth0")
	if err := vnet.Plug(ops, att, host, ns, spec.NICs[0], true); err != nil {
		b.Fatal(err)
	}
	// nspawn --keep-unit splits the cgroup it runs in into "supervisor"
	// and "payload" and leaves both behind: remove them if it made them.
	var made []string
	if root := cgroup2Root(); root != "" {
		for _, d := range []string{"payload", "supervisor"} {
			if _, err := os.Stat(filepath.Join(root, d)); os.IsNotExist(err) {
				made = append(made, filepath.Join(root, d))
			}
		}
	}
	log, _ := os.Create(spec.ConsoleLog)
	cmd := exec.Command(nspawn, "-q", "-D", mnt, "-b", "--register=no", "--keep-unit",
		"--network-namespace-path=/run/netns/"+ns, "--console=passive")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		log.Close()
		ops.DelLink(att.NS, host)
		ops.DelNS(ns)
		for syscall.Unmount(mnt, 0) == syscall.EBUSY {
			time.Sleep(10 * time.Millisecond)
		}
		for _, d := range made {
			removeCgroup(d, time.Now().Add(10*time.Second))
		}
	}
}
