// Package nschild is the ns driver's child: the haven binary re-executed
// in the machine's new namespaces, which mounts its disks, pivots into its
// root and execs its init. It is a package of its own that imports nothing
// of Haven's so that its init, which takes the process over, runs early in
// the binary's init order (after 146 package inits instead of 214 as part
// of nsdrv, GODEBUG=inittrace=1): each machine start waits for it.
package nschild

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Env carries the child's config. The child is this same binary
// re-executed: pivot_root must happen inside the new namespaces before the
// disk's init runs, and Go cannot run code between fork and exec.
const Env = "HAVEN_NS_CHILD"

// Fixed descriptors in the child (ExtraFiles start at 3).
const (
	FdSync   = 3 // parent writes "go" once the NICs are in place
	FdStatus = 4 // child writes "ok", "ok systemd" or an error once the root is ready
	FdFirst  = 5 // loop devices, kept open until the mounts hold them
)

type Config struct {
	Hostname string  `json:"hostname"`
	Root     string  `json:"root"` // mount point on the host's file system
	Disks    []Mount `json:"disks"`
	Init     string  `json:"init"`
	Console  string  `json:"console,omitempty"` // pty slave to bind on /dev/console
	Cgroup   bool    `json:"cgroup,omitempty"`  // in the machine's cgroup: unshare and mount it
	Seed     string  `json:"seed,omitempty"`    // NoCloud seed directory on the host
	UUID     string  `json:"uuid"`
}

type Mount struct {
	Disk   string `json:"disk"`
	Target string `json:"target"` // inside the machine; "/" for the root
	Devs   []Dev  `json:"devs"`   // the root: tried in order for the init
}

type Dev struct {
	Dev    string `json:"dev"`
	FSType string `json:"fstype"`
	Part   int    `json:"part"` // partition number; 0: whole disk
}

// init runs the child before anything else in the binary when the ns
// driver re-executes it. It must not wait for main: test binaries and the
// haven CLI alike would first parse flags meant for someone else. Init
// functions run on the main thread, locked: the cgroup namespace unshared
// below is that thread's, and so is the exec.
func init() {
	raw := os.Getenv(Env)
	if raw == "" {
		return
	}
	status := os.NewFile(FdStatus, "status")
	err := runChild(raw, status)
	fmt.Fprintf(status, "error: %v", err)
	fmt.Fprintf(os.Stderr, "haven ns child: %v\n", err)
	os.Exit(1)
}

func runChild(raw string, status *os.File) error {
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.Cgroup {
		// The parent started us in the machine's cgroup: that becomes the
		// root of the cgroup tree the init sees and manages.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	old := unix.Umask(0) // device nodes get exactly the modes asked for
	systemd, err := prepareRoot(cfg)
	if err != nil {
		return err
	}
	unix.Umask(old)
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := dropCaps(); err != nil {
		return err
	}
	for fd := FdFirst; fd < FdFirst+countDevs(cfg); fd++ {
		unix.Close(fd)
	}
	if systemd {
		status.WriteString("ok systemd")
	} else {
		status.WriteString("ok")
	}
	status.Close()
	buf := make([]byte, 2)
	if n, _ := os.NewFile(FdSync, "sync").Read(buf); string(buf[:n]) != "go" {
		return fmt.Errorf("parent gave up before start")
	}
	// container= is how systemd (and systemd-detect-virt) know they run
	// in a container; any value it does not know reads as
	// "container-other". container_uuid seeds an empty /etc/machine-id.
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/",
		"TERM=vt220", "container=haven", "container_uuid=" + cfg.UUID}
	return fmt.Errorf("exec %s: %w", cfg.Init, unix.Exec(cfg.Init, []string{cfg.Init}, env))
}

func countDevs(cfg Config) int {
	n := 0
	for _, d := range cfg.Disks {
		n += len(d.Devs)
	}
	return n
}

// prepareRoot mounts the disks in this (new, private) mount namespace,
// gives the machine the file systems a container manager provides, and
// pivots into the root disk, so no mount is ever visible on the host and
// all of them vanish with the machine's last process. It reports whether
// the init is systemd.
func prepareRoot(cfg Config) (bool, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return false, fmt.Errorf("make / private: %w", err)
	}
	systemd, err := mountRoot(cfg)
	if err != nil {
		return false, err
	}
	for _, d := range cfg.Disks[1:] {
		target := filepath.Join(cfg.Root, d.Target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return false, err
		}
		if err := mountDev(d.Devs[0], target); err != nil {
			return false, fmt.Errorf("disk %s: %w", d.Disk, err)
		}
	}
	if cfg.Seed != "" {
		if err := bindSeed(cfg.Seed, cfg.Root); err != nil {
			return false, err
		}
	}
	if err := mountAPI(cfg); err != nil {
		return false, err
	}
	return systemd, pivot(cfg.Root)
}

func mountDev(d Dev, target string) error {
	if err := unix.Mount(d.Dev, target, d.FSType, 0, ""); err != nil {
		return fmt.Errorf("mount %s (%s, partition %d) on %s: %w", d.Dev, d.FSType, d.Part, target, err)
	}
	return nil
}

// mountRoot mounts the first of the root disk's candidates that holds the
// init, and says whether that init is systemd.
func mountRoot(cfg Config) (bool, error) {
	root := cfg.Disks[0]
	var errs []error
	for _, d := range root.Devs {
		if err := mountDev(d, cfg.Root); err != nil {
			errs = append(errs, err)
			continue
		}
		target, err := resolveIn(cfg.Root, cfg.Init)
		if err == nil {
			return filepath.Base(target) == "systemd", nil
		}
		errs = append(errs, fmt.Errorf("partition %d: %s: %w", d.Part, cfg.Init, err))
		if err := unix.Unmount(cfg.Root, 0); err != nil {
			return false, fmt.Errorf("unmount %s: %w", d.Dev, err)
		}
	}
	if len(errs) == 1 {
		return false, fmt.Errorf("disk %s: %w", root.Disk, errs[0])
	}
	return false, fmt.Errorf("disk %s: no partition holds the init: %v", root.Disk, errs)
}

// resolveIn follows path, symlinks and all, as the machine will see it
// (absolute links stay inside root), and returns where it leads.
func resolveIn(root, path string) (string, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
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
