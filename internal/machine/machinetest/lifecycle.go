package machinetest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/testenv"
)

// testLifecycle boots two machines (few boots: QEMU under TCG is slow):
// they talk TCP over the bridge; A's write survives a graceful stop in its
// disk image; B ignores the graceful stop and is killed after the timeout.
func testLifecycle(t *testing.T, cfg Config) {
	e := NewEnv(t, cfg)
	specA, specB := e.Spec("a", "app", "10.91.0.10/24"), e.Spec("b", "app", "10.91.0.11/24")
	specA.StopTimeout = cfg.Boot
	specB.StopTimeout = 2 * time.Second
	a, b := e.Start(specA), e.Start(specB)
	e.WaitHealthy(a, e.Edge)
	e.WaitHealthy(b, e.Edge)
	if a.State() != machine.Running {
		t.Fatalf("state %s, want running", a.State())
	}
	got := e.MustDo(e.Edge, http.MethodGet, a, "/fetch?addr=10.91.0.11:80", "")
	if got != "hello from "+specB.Name+"\n" {
		t.Fatalf("A fetched %q from B", got)
	}
	e.MustDo(e.Edge, http.MethodPost, a, "/write?path=/data/hello", "written by A\n")
	stop(t, a)
	if !strings.Contains(testenv.TailFile(a.ConsoleLog()), "shutting down") {
		t.Fatalf("A did not shut down gracefully; console:\n%s", testenv.TailFile(a.ConsoleLog()))
	}
	if got := ReadFromImage(t, specA.Disks[0].Path, "data/hello"); got != "written by A\n" {
		t.Fatalf("image holds %q", got)
	}
	e.MustDo(e.Edge, http.MethodPost, b, "/ignore-shutdown", "")
	stop(t, b)
	if !strings.Contains(testenv.TailFile(b.ConsoleLog()), "ignoring shutdown") {
		t.Fatalf("B saw no shutdown request; console:\n%s", testenv.TailFile(b.ConsoleLog()))
	}
}

func stop(t *testing.T, m machine.Instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("stop %s: %v", m.Spec().Name, err)
	}
	select {
	case <-m.Done():
	default:
		t.Fatal("Stop returned before Done")
	}
	if m.State() != machine.Stopped {
		t.Fatalf("state %s after stop", m.State())
	}
}
