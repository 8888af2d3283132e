package nsdrv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/vnet"
)

// stopAndCheckGone stops m gracefully, fails if it had to be killed, and
// checks its processes, mounts, loop devices, cgroup, links and state are
// gone.
func stopAndCheckGone(t *testing.T, m *instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	took := time.Since(start)
	if took >= m.spec.StopTimeout {
		t.Fatalf("stop took %v: init was killed, not stopped", took)
	}
	t.Logf("stop took %v", took)
	checkGone(t, m)
}

func checkGone(t *testing.T, m *instance) {
	t.Helper()
	if err := syscall.Kill(m.pid, 0); err == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", m.pid)); strings.HasPrefix(string(b), "haven-ns:") {
			t.Errorf("machine process %d still runs", m.pid)
		}
	}
	if _, err := os.Stat(m.cgroup); m.cgroup == "" || !os.IsNotExist(err) {
		t.Errorf("cgroup %q left: %v", m.cgroup, err)
	}
	if left, _ := loop.Attached(LoopName(m.spec.Name, "")); len(left) != 0 {
		t.Errorf("loop devices left: %v", left)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), m.dir) {
		t.Errorf("mounts left under %s", m.dir)
	}
	if _, err := os.Stat(m.dir); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
	for _, l := range m.links {
		err := vnet.Do(l[0], func() error {
			_, err := os.Stat("/sys/class/net/" + l[1])
			return err
		})
		if err == nil {
			t.Errorf("link %s left in %s", l[1], l[0])
		}
	}
}
