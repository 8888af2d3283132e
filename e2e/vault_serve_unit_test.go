package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVaultServeUnitFile: the shipped systemd unit is hardened, and its
// ExecStart (with the paths moved into a temporary directory and the port
// to a free loopback one) starts a server that accepts connections, so the
// unit cannot drift from the command's flags.
func TestVaultServeUnitFile(t *testing.T) {
	b, err := os.ReadFile("../packaging/systemd/haven-vault.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, want := range []string{"ProtectSystem=strict", "NoNewPrivileges=yes", "User=haven-vault",
		"ReadWritePaths=/var/lib/haven-vault /etc/haven-vault", "CapabilityBoundingSet=\n", "PrivateDevices=yes"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	var execStart string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = v
		}
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := strings.Fields(strings.NewReplacer("/usr/bin/haven", havenBin, "/var/lib/haven-vault", filepath.Join(dir, "lib"),
		"/etc/haven-vault", filepath.Join(dir, "etc"), ":8443", addr).Replace(execStart))
	os.MkdirAll(filepath.Join(dir, "etc"), 0o700)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = baseEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 500 {
			t.Fatalf("%v did not listen", args)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, f := range []string{"etc/agent.token", "etc/admin.token", "etc/tls/ca.crt"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || (strings.HasSuffix(f, ".token") && fi.Mode().Perm() != 0o600) {
			t.Errorf("%s after the first start: %v %v", f, fi, err)
		}
	}
}
