package loop_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestAttachAutoclear: a tagged device is listed while held and detached
// by the kernel once closed.
func TestAttachAutoclear(t *testing.T) {
	testenv.RequireRoot(t)
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := vnet.NewID() + "-looptest"
	d, err := loop.Attach(img, tag, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	got, err := loop.Attached(tag)
	if err != nil || len(got) != 1 || got[0].Path != d.Path {
		t.Fatalf("attached: %v %v", got, err)
	}
	d.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if loop.Gone(d.Number) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	if left, _ := loop.Attached(tag); len(left) != 0 {
		t.Fatalf("not autocleared: %v", left)
	}
}
