package e2e

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestSnapshotAndRestoreBlockDevices takes a point from a block device (a
// loop device) and restores it onto another block device holding other
// data: the device must end up bit-exact, zero chunks included.
func TestSnapshotAndRestoreBlockDevices(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	env := []string{"HAVEN_VAULT=" + filepath.Join(dir, "vault"), "HAVEN_PASSWORD=pw"}
	mustHaven(t, env, "vault", "init")

	src := filepath.Join(dir, "src.img")
	f, _ := os.Create(src)
	f.Truncate(24 << 20)
	f.WriteAt([]byte(strings.Repeat("database page ", 100000)), 2<<20)
	noise := make([]byte, 3<<20)
	rand.Read(noise)
	f.WriteAt(noise, 16<<20)
	f.Close()
	dst := filepath.Join(dir, "dst.img")
	other := make([]byte, 24<<20)
	rand.Read(other)
	os.WriteFile(dst, other, 0o644)

	srcDev := attach(t, src)
	dstDev := attach(t, dst)
	mustHaven(t, env, "snapshot", "--machine", "sql", "--disk", "data="+srcDev)
	var st struct {
		Existing     bool  `json:"existing"`
		BytesWritten int64 `json:"bytes_written"`
	}
	json.Unmarshal([]byte(mustHaven(t, env, "restore", "--machine", "sql", "--disk", "data", "--to", dstDev, "--json")), &st)
	if !st.Existing || st.BytesWritten != 24<<20 {
		t.Fatalf("restore onto a device of random data: %+v, want all 24 MiB rewritten in place", st)
	}
	if fileSHA(t, dstDev) != fileSHA(t, src) {
		t.Fatal("restored device differs from the source")
	}
	json.Unmarshal([]byte(mustHaven(t, env, "restore", "--machine", "sql", "--disk", "data", "--to", dstDev, "--json")), &st)
	if st.BytesWritten != 0 {
		t.Fatalf("second restore onto an identical device wrote %d bytes", st.BytesWritten)
	}
	out := filepath.Join(dir, "out.img")
	mustHaven(t, env, "restore", "--machine", "sql", "--disk", "data", "--to", out)
	if fileSHA(t, out) != fileSHA(t, src) {
		t.Fatal("restore of a block device's point to a file differs")
	}
}

// attach binds img to a loop device tagged hv-e2e-*, released in cleanup
// (autoclear then detaches it).
func attach(t *testing.T, img string) string {
	t.Helper()
	d, err := loop.Attach(img, "hv-e2e-"+filepath.Base(img), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d.Path
}
