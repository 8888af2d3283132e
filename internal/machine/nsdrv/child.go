package nsdrv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// childEnv carries the child's config. The child is this same binary
// re-executed: pivot_root must happen inside the new namespaces before the
// disk's init runs, and Go cannot run code between fork and exec.
const childEnv = "HAVEN_NS_CHILD"

// Fixed descriptors in the child (ExtraFiles start at 3).
const (
	fdSync   = 3 // parent writes "go" once the NICs are in place
	fdStatus = 4 // child writes "ok" or an error once the root is ready
	fdFirst  = 5 // loop devices, kept open until the mounts hold them
)

type childConfig struct {
	Hostname string       `json:"hostname"`
	Root     string       `json:"root"` // mount point on the host's file system
	Disks    []childMount `json:"disks"`
	Init     string       `json:"init"`
}

type childMount struct {
	Dev    string `json:"dev"`
	FSType string `json:"fstype"`
	Target string `json:"target"` // inside the machine; "/" for the root
}

// init runs the child before anything else in the binary when the ns
// driver re-executes it. It must not wait for main: test binaries and the
// haven CLI alike would first parse flags meant for someone else.
func init() {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return
	}
	status := os.NewFile(fdStatus, "status")
	err := runChild(raw, status)
	fmt.Fprintf(status, "error: %v", err)
	fmt.Fprintf(os.Stderr, "haven ns child: %v\n", err)
	os.Exit(1)
}

func runChild(raw string, status *os.File) error {
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	old := unix.Umask(0) // device nodes get exactly the modes asked for
	if err := prepareRoot(cfg); err != nil {
		return err
	}
	unix.Umask(old)
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	for fd := fdFirst; fd < fdFirst+len(cfg.Disks); fd++ {
		unix.Close(fd)
	}
	status.WriteString("ok")
	status.Close()
	buf := make([]byte, 2)
	if n, _ := os.NewFile(fdSync, "sync").Read(buf); string(buf[:n]) != "go" {
		return fmt.Errorf("parent gave up before start")
	}
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=linux"}
	return fmt.Errorf("exec %s: %w", cfg.Init, unix.Exec(cfg.Init, []string{cfg.Init}, env))
}

// prepareRoot mounts the disks in this (new, private) mount namespace and
// pivots into the root disk, so no mount is ever visible on the host and all
// of them vanish with the machine's last process.
func prepareRoot(cfg childConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	for _, d := range cfg.Disks {
		target := filepath.Join(cfg.Root, d.Target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(d.Dev, target, d.FSType, 0, ""); err != nil {
			return fmt.Errorf("mount %s (%s) on %s: %w", d.Dev, d.FSType, d.Target, err)
		}
	}
	if err := mountDev(cfg.Root); err != nil {
		return err
	}
	return pivot(cfg.Root)
}

func pivot(root string) error {
	if err := os.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return os.Chdir("/")
}

// mountDev gives the machine a small private /dev with the usual character
// devices, rather than the host's devtmpfs.
func mountDev(root string) error {
	dev := filepath.Join(root, "dev")
	if _, err := os.Stat(dev); err != nil {
		return nil // the image has no /dev: leave it so
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=755,size=1m"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	nodes := []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
	for _, n := range nodes {
		p := filepath.Join(dev, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod %s: %w", p, err)
		}
	}
	return nil
}
