package e2e

import (
	"crypto/rand"
	"encoding/json"
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

// TestAgentRunAndStatus runs `haven agent run` as a daemon and asks it with
// `haven agent status` (text and --json) until its first point is in; a
// SIGTERM stops it with exit 0, and a bad config exits 2.
func TestAgentRunAndStatus(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("agent-secret\n"), 0o600)
	vaultDir := filepath.Join(dir, "vault")
	mustHaven(t, []string{"HAVEN_VAULT=" + vaultDir}, "vault", "init", "--password-file", pw)
	disk := filepath.Join(dir, "disk.img")
	data := make([]byte, 1<<20)
	rand.Read(data)
	os.WriteFile(disk, data, 0o600)
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
vault: %s
password_file: %s
state_dir: %s
listen: %s
machines:
  - name: web1
    provider: none
    disks: [{name: root, path: %s}]
    policy: {frequency: 15s, retention: {keep_last: 3}}
`, vaultDir, pw, filepath.Join(dir, "state"), addr, disk)), 0o600)

	cmd := exec.Command(havenBin, "agent", "run", "--config", cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	var rep struct {
		Machines []struct {
			Name      string
			LastPoint *struct{ Consistency, Provider string } `json:"last_point"`
			RPO       float64                                 `json:"rpo_seconds"`
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for rep.Machines == nil || rep.Machines[0].LastPoint == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no point reported in 30s: %+v", rep)
		}
		time.Sleep(200 * time.Millisecond)
		if r := haven(t, nil, "agent", "status", "--json", "--addr", addr); r.code == 0 {
			json.Unmarshal([]byte(r.stdout), &rep)
		}
	}
	if m := rep.Machines[0]; m.Name != "web1" || m.LastPoint.Provider != "none" || m.LastPoint.Consistency != "inconsistent" {
		t.Fatalf("status: %+v", m)
	}
	text := mustHaven(t, []string{"HAVEN_AGENT_ADDR=" + addr}, "agent", "status")
	if !strings.Contains(text, "web1") || !strings.Contains(text, "inconsistent/none") {
		t.Fatalf("status text:\n%s", text)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("agent exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
	os.WriteFile(cfg, []byte("vault: x\nmachines: []\n"), 0o600)
	if r := haven(t, nil, "agent", "run", "--config", cfg); r.code != 2 {
		t.Fatalf("bad config: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
