package loop_test

import (
	"bytes"
	"io"
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
		if loop.Gone(d.Number, tag) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	if left, _ := loop.Attached(tag); len(left) != 0 {
		t.Fatalf("not autocleared: %v", left)
	}
}

// TestDetachTwice: detaching a device that is already detached is success
// (cleanups repeat), and Gone tells a device reclaimed under another tag
// from the one a machine still holds.
func TestDetachTwice(t *testing.T) {
	testenv.RequireRoot(t)
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := vnet.NewID() + "-detach"
	d, err := loop.Attach(img, tag, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if loop.Gone(d.Number, tag) || !loop.Gone(d.Number, tag+"-other") {
		t.Fatalf("Gone(%d) wrong while attached as %s", d.Number, tag)
	}
	d.Close()
	for i := range 3 {
		if err := loop.Detach(d.Path); err != nil {
			t.Fatalf("detach, try %d: %v", i+1, err)
		}
	}
	if !loop.Gone(d.Number, tag) {
		t.Fatalf("%s still attached as %s", d.Path, tag)
	}
}

// TestAttachRange: the device shows exactly the bytes of the range.
func TestAttachRange(t *testing.T) {
	testenv.RequireRoot(t)
	img := filepath.Join(t.TempDir(), "img")
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i / 4096)
	}
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := loop.AttachRange(img, vnet.NewID()+"-range", true, 64<<10, 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := io.ReadAll(d.File())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b[64<<10:192<<10]) {
		t.Fatalf("read %d bytes, first %d; want the 128 KiB from 64 KiB (first %d)", len(got), got[0], b[64<<10])
	}
}
