package partition

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// disk makes a sparse image of size MiB partitioned by sfdisk from script.
func disk(t *testing.T, sizeMB int64, script string) string {
	t.Helper()
	sfdisk := testenv.LookPath(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, sizeMB<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sfdisk, "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return img
}

func read(t *testing.T, img string) Table {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	tab, err := Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// sfdiskView is what sfdisk itself reads back: the oracle.
func sfdiskView(t *testing.T, img string) (string, []Partition) {
	t.Helper()
	out, err := exec.Command(testenv.LookPath(t, "sfdisk"), "-J", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		PT struct {
			Label      string `json:"label"`
			SectorSize int64  `json:"sectorsize"`
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	var ps []Partition
	for _, p := range v.PT.Partitions {
		n, _ := strconv.Atoi(strings.TrimPrefix(p.Node, img))
		typ := strings.ToLower(p.Type)
		if v.PT.Label == "dos" {
			typ = "0x" + typ
			if len(typ) == 3 {
				typ = "0x0" + typ[2:]
			}
		}
		ps = append(ps, Partition{Number: n, Start: p.Start * 512, Size: p.Size * 512, Type: typ})
	}
	return v.PT.Label, ps
}

func sameAsSfdisk(t *testing.T, img string, tab Table) {
	t.Helper()
	_, want := sfdiskView(t, img)
	if len(tab.Partitions) != len(want) {
		t.Fatalf("read %d partitions, sfdisk %d: %+v vs %+v", len(tab.Partitions), len(want), tab.Partitions, want)
	}
	for i, w := range want {
		g := tab.Partitions[i]
		if g.Number != w.Number || g.Start != w.Start || g.Size != w.Size || g.Type != w.Type {
			t.Errorf("partition %d: read %+v, sfdisk %+v", i, g, w)
		}
	}
}

func TestGPT(t *testing.T) {
	img := disk(t, 64, `label: gpt
size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
size=4MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
size=16MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
size=8MiB, type=01234567-89AB-CDEF-0123-456789ABCDEF
size=1MiB, type=21686148-6449-6E6F-744E-656564454649
type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
`)
	tab := read(t, img)
	if tab.Scheme != GPT {
		t.Fatalf("scheme %q", tab.Scheme)
	}
	sameAsSfdisk(t, img, tab)
	kinds := []Kind{ESP, Swap, Linux, Other, Firmware, Root}
	for i, k := range kinds {
		if tab.Partitions[i].Kind != k {
			t.Errorf("partition %d kind %v, want %v", i+1, tab.Partitions[i].Kind, k)
		}
	}
	if c := numbers(tab.RootCandidates()); c != "6 3 4" {
		t.Errorf("root candidates %s, want 6 3 4 (root, Linux, unknown type)", c)
	}
	if c := numbers(tab.DataCandidates()); c != "3 6 4" {
		t.Errorf("data candidates %s, want 3 6 4 (Linux and root in table order, unknown type)", c)
	}
	if _, err := tab.Find(9); !errors.Is(err, ErrNoPartition) {
		t.Errorf("find 9: %v", err)
	}
}

func TestMBRWithLogicalPartitions(t *testing.T) {
	img := disk(t, 64, `label: dos
size=16MiB, type=83, bootable
size=4MiB, type=ef
type=5
size=8MiB, type=82
type=83
`)
	tab := read(t, img)
	if tab.Scheme != MBR {
		t.Fatalf("scheme %q", tab.Scheme)
	}
	sameAsSfdisk(t, img, tab)
	if c := numbers(tab.RootCandidates()); c != "1 6" {
		t.Errorf("root candidates %s, want 1 6", c)
	}
}

func TestCorruptGPT(t *testing.T) {
	img := disk(t, 16, "label: gpt\ntype=linux\n")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteAt([]byte{0xff}, 512+40) // inside the header: its CRC no longer matches
	if _, err := Read(f, 16<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read a damaged header: %v", err)
	}
}

// TestWholeDiskFileSystems: file systems made on the whole disk have no
// table (a FAT boot sector ends in 55 AA too) and are told by superblock.
func TestWholeDiskFileSystems(t *testing.T) {
	for _, fs := range []struct {
		want string
		args []string
	}{{"ext4", []string{"-q"}}, {"xfs", []string{"-q"}}, {"vfat", nil}} {
		t.Run(fs.want, func(t *testing.T) {
			img := testenv.Image(t, t.TempDir(), 320)
			testenv.Mkfs(t, img, fs.want, fs.args...)
			if tab := read(t, img); tab.Scheme != None || len(tab.Partitions) != 0 {
				t.Fatalf("read a table from a bare %s: %+v", fs.want, tab)
			}
			f, _ := os.Open(img)
			defer f.Close()
			if got, err := FSType(f, 0); err != nil || got != fs.want {
				t.Fatalf("FSType %q %v, want %q", got, err, fs.want)
			}
		})
	}
}

// TestFSTypeInPartition finds an ext4 made inside the second partition.
func TestFSTypeInPartition(t *testing.T) {
	img := disk(t, 64, "label: gpt\nsize=8MiB\ntype=linux\n")
	p := read(t, img).Partitions[1]
	out, err := exec.Command(testenv.LookPath(t, "mkfs.ext4"), "-q", "-F", "-E",
		"offset="+strconv.FormatInt(p.Start, 10), img, strconv.FormatInt(p.Size>>10, 10)+"k").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	f, _ := os.Open(img)
	defer f.Close()
	if got, err := FSType(f, p.Start); err != nil || got != "ext4" {
		t.Fatalf("FSType %q %v", got, err)
	}
	if _, err := FSType(f, 0); !errors.Is(err, ErrUnknownFS) {
		t.Fatalf("FSType of the table itself: %v", err)
	}
}

func numbers(ps []Partition) string {
	var s []string
	for _, p := range ps {
		s = append(s, strconv.Itoa(p.Number))
	}
	return strings.Join(s, " ")
}
