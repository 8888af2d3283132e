package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// libvirtDirs are the system paths a privileged libvirtd reads and writes
// (fixed at build time, not configurable): the private instance gets an
// empty directory of its own over each, in a mount namespace of its own,
// so the machine's libvirt configuration, domains and networks are neither
// read nor changed. /run is covered whole: without systemd nobody made
// /run/libvirt to mount over, and libvirtd needs nothing else there.
var libvirtDirs = map[string]string{
	"etc": "/etc/libvirt", "run": "/run", "lib": "/var/lib/libvirt",
	"cache": "/var/cache/libvirt", "log": "/var/log/libvirt",
}

// privateQEMUConf runs QEMU as root with no confinement, cgroups or
// per-domain /dev: a test's disks live in its temp dir, and the test
// machine has no systemd or AppArmor for libvirt to drive. Console logs
// go to plain files (no virtlogd).
const privateQEMUConf = `user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
`

// Libvirtd starts a private libvirtd (Debian's libvirt-daemon-system) for
// the test, and returns the path of its read-write socket (connect to
// qemu:///system through it). It has no networks (nothing of libvirt's own
// appears in the root namespace) and is stopped in t.Cleanup, with any
// QEMU it still runs (also when the test binary dies without cleanup).
func Libvirtd(t testing.TB) string {
	t.Helper()
	return LibvirtdIn(t, "")
}

// LibvirtdIn is Libvirtd in network namespace netns (named, as in
// /run/netns; "": the test's own). A `haven host` in a namespace standing
// for its machine needs libvirtd in the same one: it makes each domain's
// tap in its own namespace, for libvirtd to open by name in libvirtd's.
func LibvirtdIn(t testing.TB, netns string) string {
	t.Helper()
	RequireRoot(t)
	prog := LookPath(t, "libvirtd")
	unshare := LookPath(t, "unshare")
	for _, sys := range libvirtDirs {
		if _, err := os.Stat(sys); err != nil { // the package makes all but /run/libvirt
			Missing(t, "libvirt-daemon-system not installed (%v)", err)
		}
	}
	// Short: the socket path must fit a sockaddr_un.
	dir, err := os.MkdirTemp("", "hvlv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var script strings.Builder
	script.WriteString("set -e\n")
	for sub, sys := range libvirtDirs {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&script, "mount --bind %s %s\n", filepath.Join(dir, sub), sys)
	}
	if err := os.Mkdir(filepath.Join(dir, "run", "libvirt"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("unix_sock_dir = %q\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "etc", "libvirtd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "qemu.conf"), []byte(privateQEMUConf), 0o644); err != nil {
		t.Fatal(err)
	}
	// Not exec: the shell stays PID 1 of the namespace and reaps the
	// QEMUs libvirtd daemonizes (a zombie QEMU would hold up libvirt's
	// destroy).
	fmt.Fprintf(&script, "%s --config %s --pid-file %s\n", prog,
		filepath.Join(libvirtDirs["etc"], "libvirtd.conf"), filepath.Join(dir, "libvirtd.pid"))
	logPath := filepath.Join(dir, "libvirtd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// A PID namespace of its own: when the test process dies (a timeout
	// panic runs no cleanup), Pdeathsig kills unshare, --kill-child its
	// PID 1, and the kernel every process in the namespace, QEMUs included.
	args := []string{unshare, "--pid", "--fork", "--kill-child", "--mount-proc", "--mount", "--propagation", "private",
		"sh", "-c", script.String()}
	if netns != "" {
		// nsenter execs unshare: the same process, so Pdeathsig holds.
		args = append([]string{LookPath(t, "nsenter"), "--net=/run/netns/" + netns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting libvirtd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL) // and with it the namespace
		<-exited
		logf.Close()
	})
	sock := filepath.Join(dir, "libvirt-sock")
	deadline := time.Now().Add(serviceStartTimeout)
	for {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		select {
		case <-exited:
			t.Fatalf("libvirtd exited:\n%s", TailFile(logPath))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd did not open %s:\n%s", sock, TailFile(logPath))
		}
	}
}
