package debimage

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// TestSparseCopy: data is copied byte for byte and holes stay holes.
func TestSparseCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	head, mid := bytes.Repeat([]byte("a"), 8192), bytes.Repeat([]byte("b"), 4096)
	f.WriteAt(head, 0)
	f.WriteAt(mid, 64<<20)
	f.Truncate(256 << 20)
	f.Close()

	in, _ := os.Open(src)
	defer in.Close()
	dst := filepath.Join(dir, "dst")
	out, _ := os.Create(dst)
	if err := sparseCopy(in, out); err != nil {
		t.Fatal(err)
	}
	out.Close()

	got, _ := os.ReadFile(dst)
	want, _ := os.ReadFile(src)
	if !bytes.Equal(got, want) {
		t.Fatal("copy differs from the source")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 1<<20 {
		t.Errorf("copy of 12 KiB of data in 256 MiB uses %d bytes: holes were filled", used)
	}
}

// TestRecipeKey: the key follows the apt sources' content (a mirror change
// rebuilds) and is stable otherwise.
func TestRecipeKey(t *testing.T) {
	src := filepath.Join(t.TempDir(), "debian.sources")
	os.WriteFile(src, []byte("Types: deb\nSuites: bookworm\n"), 0o644)
	k1, err := recipeKey([]string{src})
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := recipeKey([]string{src})
	os.WriteFile(src, []byte("Types: deb\nSuites: bookworm bookworm-updates\n"), 0o644)
	k3, _ := recipeKey([]string{src})
	if k1 != k2 || k1 == k3 || len(k1) != 16 {
		t.Errorf("keys %s %s %s: want the first two equal, the third different", k1, k2, k3)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b\011c\134d\9`); got != "/a b\tc\\d\\9" {
		t.Errorf("got %q", got)
	}
}

// TestRemoveWorkSparesMounts: deleting a build directory with a bind
// mount under it (mmdebstrap's /dev, left by a killed build) must not
// delete through the mount into the host's files.
func TestRemoveWorkSparesMounts(t *testing.T) {
	testenv.RequireRoot(t)
	host := t.TempDir()
	keep := filepath.Join(host, "keep")
	os.WriteFile(keep, []byte("x"), 0o644)
	work := t.TempDir()
	inner := filepath.Join(work, "root", "dev")
	os.MkdirAll(inner, 0o755)
	if err := syscall.Mount(host, inner, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(inner, syscall.MNT_DETACH) })
	if err := removeWork(work); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work dir still there: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the mounted directory's file was deleted: %v", err)
	}
}
