package wg

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/vnet"
	"github.com/vishvananda/netns"
)

func pidFile(dir, name string) string { return filepath.Join(dir, name+".pid") }

// owner is the tunnel's process, if it runs.
func owner(dir, name string) (vnet.Owner, bool) {
	b, err := os.ReadFile(pidFile(dir, name))
	if err != nil {
		return vnet.Owner{}, false
	}
	o, err := vnet.ParseOwner(string(b))
	return o, err == nil && o.Alive()
}

// Running reports whether tunnel name (recorded in dir) is up: its
// process runs, or its kernel interface is in its site.
func Running(dir, name string) bool {
	_, ok := owner(dir, name)
	return ok || kernelUp(dir, name)
}

// Start brings tunnel c up in namespace siteNS, its UDP socket in edgeNS
// ("" = this process's namespace), unless it already runs; dir keeps its
// pid record and log. It returns once the tunnel's interface carries its
// address and routes.
func Start(dir, siteNS, edgeNS string, c Config) error {
	if err := c.Check(); err != nil {
		return err
	}
	if Running(dir, c.Name) {
		return nil
	}
	key, err := readKey(c.PrivateKeyFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if !c.Userspace {
		err := startKernel(dir, siteNS, edgeNS, c, key)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNoKernel) {
			// The kernel path is not tested on the machine Haven is
			// tested on; the userspace one is, so it takes over.
			os.WriteFile(filepath.Join(dir, c.Name+".kernel-error"), []byte(err.Error()+"\n"), 0o600)
		}
	}
	conf, err := c.uapi(key)
	if err != nil {
		return err
	}
	spec := filepath.Join(dir, c.Name+".spec")
	cs := c.spec()
	cs.UAPI, cs.NS = conf, siteNS
	b, _ := json.Marshal(cs)
	if err := os.WriteFile(spec, b, 0o600); err != nil {
		return err
	}
	defer os.Remove(spec) // the child removes it once read; this covers a failed start
	return spawn(dir, siteNS, edgeNS, c.Name, spec)
}

// spec is what the interface in the site gets (the UAPI text is added
// for the userspace process).
func (c Config) spec() childSpec {
	s := childSpec{Iface: c.Iface(), Address: c.Address}
	for _, p := range c.Peers {
		s.Routes = append(s.Routes, p.AllowedIPs...)
	}
	return s
}

func spawn(dir, siteNS, edgeNS, name, spec string) error {
	edge, err := openNS(edgeNS)
	if err != nil {
		return err
	}
	defer edge.Close()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{childEnv + "=" + spec, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.ExtraFiles = []*os.File{edge}
	cmd.Stderr = logf
	// Its own session: the tunnel outlives the server (a restart finds
	// it by its pid record).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	// Forked from a thread inside the site's namespace: the whole
	// process lives there.
	if err := vnet.Do(siteNS, cmd.Start); err != nil {
		return fmt.Errorf("wg: start tunnel %s: %w", name, err)
	}
	go cmd.Wait() // reaped while this process lives; a zombie counts as stopped
	o, _ := vnet.OwnerOf(cmd.Process.Pid)
	if err := vnet.WriteOwner(pidFile(dir, name), o); err != nil {
		cmd.Process.Kill()
		return err
	}
	ready := make(chan bool, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(l) == "ready"
	}()
	select {
	case ok := <-ready:
		if ok {
			return nil
		}
	case <-time.After(15 * time.Second):
	}
	cmd.Process.Kill()
	b, _ := os.ReadFile(logPath)
	return fmt.Errorf("wg: tunnel %s did not come up: %s", name, strings.TrimSpace(string(b)))
}

func openNS(name string) (*os.File, error) {
	if name == "" {
		h, err := netns.Get()
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(h), "netns"), nil
	}
	f, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		return nil, fmt.Errorf("wg: uplink namespace: %w", err)
	}
	return f, nil
}

// Stop ends tunnel name (SIGTERM, SIGKILL after 5 s) and removes its
// records; a tunnel that is not running is fine.
func Stop(dir, name string) error {
	if o, ok := owner(dir, name); ok {
		p, _ := os.FindProcess(o.PID)
		p.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		for o.Alive() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if o.Alive() {
			p.Signal(syscall.SIGKILL)
			for i := 0; o.Alive() && i < 100; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if o.Alive() {
			return fmt.Errorf("wg: tunnel %s (pid %d) does not stop", name, o.PID)
		}
	}
	if err := stopKernel(dir, name); err != nil {
		return err
	}
	for _, f := range []string{pidFile(dir, name), filepath.Join(dir, name+".log"), filepath.Join(dir, name+".kernel-error")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// StopAll stops every tunnel recorded in dir and removes dir.
func StopAll(dir string) error {
	pids, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	kern, _ := filepath.Glob(filepath.Join(dir, "*.kernel"))
	var errs []error
	for _, f := range append(pids, kern...) {
		errs = append(errs, Stop(dir, strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".pid"), ".kernel")))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}
