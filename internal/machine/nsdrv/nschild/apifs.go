package nschild

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// mountAPI gives the machine what systemd's container interface asks of
// a container manager: a private /dev, a /proc of its PID namespace, a
// read-only /sys, its own cgroup tree writable at /sys/fs/cgroup, and a
// tmpfs /run. A directory the image lacks is left so (the small test
// images have no /run).
func mountAPI(cfg Config) error {
	root := cfg.Root
	if err := mountDevDir(root, cfg.Console); err != nil {
		return err
	}
	const noexec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if exists(root, "proc") {
		if err := mount("proc", filepath.Join(root, "proc"), "proc", noexec, ""); err != nil {
			return err
		}
		// Kernel settings are the host's: read-only, except the network
		// ones, which belong to the machine's own network namespace.
		for _, ro := range []struct {
			path string
			ro   bool
		}{{"proc/sys", true}, {"proc/sys/net", false}, {"proc/sysrq-trigger", true}} {
			if _, err := os.Stat(filepath.Join(root, ro.path)); err != nil {
				continue // a kernel without magic SysRq has no trigger
			}
			if err := bind(filepath.Join(root, ro.path), ro.ro); err != nil {
				return err
			}
		}
	}
	if exists(root, "sys") {
		if err := mount("sysfs", filepath.Join(root, "sys"), "sysfs", noexec|unix.MS_RDONLY, ""); err != nil {
			return err
		}
		if cfg.Cgroup {
			if err := mount("cgroup2", filepath.Join(root, "sys/fs/cgroup"), "cgroup2", noexec, ""); err != nil {
				return err
			}
		}
	}
	if exists(root, "run") {
		if err := mount("tmpfs", filepath.Join(root, "run"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=20%"); err != nil {
			return err
		}
	}
	return nil
}

func exists(root, dir string) bool {
	st, err := os.Stat(filepath.Join(root, dir))
	return err == nil && st.IsDir()
}

func mount(src, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}

// bind binds path onto itself, read-only if ro.
func bind(path string, ro bool) error {
	if err := mount(path, path, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	if !ro {
		return nil
	}
	return mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// mountDevDir gives the machine a small private /dev with the usual
// character devices, its own devpts instance, /dev/shm, and the console
// pty, rather than the host's devtmpfs.
func mountDevDir(root, console string) error {
	dev := filepath.Join(root, "dev")
	if !exists(root, "dev") {
		return nil
	}
	if err := mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=755,size=4m,nr_inodes=64k"); err != nil {
		return err
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
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	// gid 5 is tty on Debian and most distributions, as systemd assumes.
	if err := mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=620,gid=5"); err != nil {
		return err
	}
	if err := mount("tmpfs", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return err
	}
	if console == "" {
		return nil
	}
	c := filepath.Join(dev, "console")
	if err := os.WriteFile(c, nil, 0o600); err != nil {
		return err
	}
	return mount(console, c, "", unix.MS_BIND, "")
}

// seedDir is where cloud-init's NoCloud data source looks on disk.
const seedDir = "var/lib/cloud/seed/nocloud-net"

// bindSeed binds the NoCloud seed read-only where cloud-init finds it. The
// disk gains at most the empty directories of the mount point.
func bindSeed(seed, root string) error {
	target := filepath.Join(root, seedDir)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := mount(seed, target, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// keptCaps is what the machine's processes may hold, as systemd-nspawn
// keeps by default (plus IPC_LOCK for databases): root in the machine
// must not load kernel modules, set the host's clock or read raw memory.
var keptCaps = map[int]bool{
	unix.CAP_CHOWN: true, unix.CAP_DAC_OVERRIDE: true, unix.CAP_DAC_READ_SEARCH: true, unix.CAP_FOWNER: true,
	unix.CAP_FSETID: true, unix.CAP_KILL: true, unix.CAP_SETGID: true, unix.CAP_SETUID: true,
	unix.CAP_SETPCAP: true, unix.CAP_LINUX_IMMUTABLE: true, unix.CAP_NET_BIND_SERVICE: true,
	unix.CAP_NET_BROADCAST: true, unix.CAP_NET_ADMIN: true, unix.CAP_NET_RAW: true, unix.CAP_IPC_LOCK: true,
	unix.CAP_IPC_OWNER: true, unix.CAP_SYS_CHROOT: true, unix.CAP_SYS_PTRACE: true, unix.CAP_SYS_ADMIN: true,
	unix.CAP_SYS_BOOT: true, unix.CAP_SYS_NICE: true, unix.CAP_SYS_RESOURCE: true, unix.CAP_MKNOD: true,
	unix.CAP_LEASE: true, unix.CAP_AUDIT_WRITE: true, unix.CAP_SETFCAP: true,
}

// dropCaps removes the other capabilities from the bounding set, which
// limits what the init (and everything it starts) gets at exec.
func dropCaps() error {
	for c := 0; c <= unix.CAP_LAST_CAP+8; c++ {
		if keptCaps[c] {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the kernel's last capability
		}
		if err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	return nil
}
