package machine

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func qcow2Header(backing uint64, incompat uint64) []byte {
	h := make([]byte, 104)
	copy(h, qcow2Magic)
	binary.BigEndian.PutUint32(h[4:], 3)
	binary.BigEndian.PutUint64(h[8:], backing)
	binary.BigEndian.PutUint64(h[72:], incompat)
	return h
}

func TestDiskFormats(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) Disk {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return Disk{Name: name, Path: p}
	}
	got, err := DiskFormats([]Disk{write("raw", make([]byte, 4096)), write("q", qcow2Header(0, 0)), write("tiny", []byte("x"))})
	if err != nil || !slices.Equal(got, []string{"raw", "qcow2", "raw"}) {
		t.Fatalf("formats %v %v", got, err)
	}
	for _, bad := range []Disk{write("backed", qcow2Header(200, 0)), write("datafile", qcow2Header(0, 4)),
		write("short", qcow2Magic), {Name: "missing", Path: filepath.Join(dir, "nope")}} {
		if _, err := DiskFormats([]Disk{bad}); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%s: err %v, want ErrBadSpec", bad.Name, err)
		}
	}
	// A restored disk says raw: a qcow2 header a guest wrote stays data.
	said := write("said-raw", qcow2Header(200, 0))
	said.Format = "raw"
	if got, err := DiskFormats([]Disk{said}); err != nil || got[0] != "raw" {
		t.Errorf("format raw given: %v %v", got, err)
	}
	said = write("said-qcow2", make([]byte, 4096))
	said.Format = "qcow2"
	if _, err := DiskFormats([]Disk{said}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("format qcow2 given for a raw file: %v, want ErrBadSpec", err)
	}
}
