package nsdrv

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/machine/partition"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// partitioned lays out a sparse disk with sfdisk and returns its table.
func partitioned(t *testing.T, sizeMB int64, script string) (string, partition.Table) {
	t.Helper()
	img := testenv.Image(t, t.TempDir(), sizeMB)
	cmd := exec.Command(testenv.LookPath(t, "sfdisk"), "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := partition.Read(f, sizeMB<<20)
	if err != nil {
		t.Fatal(err)
	}
	return img, tab
}

// writeAt copies the file system image src into disk at off.
func writeAt(t *testing.T, disk, src string, off int64) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestPartitionedDisks boots the busybox test image from a logical
// partition of an MBR disk whose first Linux partition is an ext4 without
// the init (the driver must try on), with a GPT data disk whose XFS sits
// behind an ESP; the file system types are not given. A file the machine
// writes to the data disk is found in that partition after the stop.
func TestPartitionedDisks(t *testing.T) {
	e := newEnv(t)
	root, rtab := partitioned(t, 128, "label: dos\nsize=16MiB, type=83\ntype=5\nsize=8MiB, type=82\ntype=83\n")
	p1, p6 := rtab.Partitions[0], rtab.Partitions[3]
	mkfsAt(t, root, "ext4", p1) // a Linux file system without the init
	writeAt(t, root, machinetest.Image(t), p6.Start)
	data, dtab := partitioned(t, 400, "label: gpt\nsize=8MiB, type=uefi\ntype=linux\n")
	mkfsAt(t, data, "xfs", dtab.Partitions[1])

	spec := e.Spec("parts", "app", "10.91.0.45/24")
	spec.Disks = []machine.Disk{{Name: "root", Path: root}, {Name: "data", Path: data, Mount: "/data2"}}
	m := e.Start(spec)
	e.WaitHealthy(m, e.Edge)
	tags := map[string]bool{}
	for _, l := range m.(*instance).loops {
		tags[l.tag] = true
	}
	for _, want := range []string{"root.p1", "root.p6", "data.p2"} {
		if !tags[LoopName(spec.Name, want)] {
			t.Errorf("no loop device tagged %s: %v", want, tags)
		}
	}
	e.MustDo(e.Edge, http.MethodPost, m, "/write?path=/data2/hello", "on xfs\n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readFromPartition(t, data, dtab.Partitions[1], "xfs", "hello"); got != "on xfs\n" {
		t.Fatalf("data partition holds %q", got)
	}
}

// mkfsAt makes an empty file system of type fs in partition p of disk.
func mkfsAt(t *testing.T, disk, fs string, p partition.Partition) {
	t.Helper()
	l, err := loop.AttachRange(disk, vnet.NewID()+"-mkfs", false, p.Start, p.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	testenv.Mkfs(t, l.Path, fs, "-q")
}

func readFromPartition(t *testing.T, disk string, p partition.Partition, fs, name string) string {
	t.Helper()
	l, err := loop.AttachRange(disk, vnet.NewID()+"-read", true, p.Start, p.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mnt := t.TempDir()
	if err := syscall.Mount(l.Path, mnt, fs, syscall.MS_RDONLY, "norecovery"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	b, err := os.ReadFile(filepath.Join(mnt, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
