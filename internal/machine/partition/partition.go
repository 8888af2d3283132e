// Package partition reads the partition table of a raw disk image (GPT or
// MBR, with MBR logical partitions) and says which partitions hold Linux
// file systems, so the ns driver can mount a real server's partitioned
// disk. Only the tables are read; nothing is written.
package partition

import (
	"errors"
	"fmt"
	"io"
)

// Sentinel errors.
var (
	ErrCorrupt     = errors.New("partition: corrupt partition table")
	ErrNoPartition = errors.New("partition: no such partition")
)

// Scheme is the kind of partition table.
type Scheme string

const (
	None Scheme = ""    // the whole disk is one file system
	GPT  Scheme = "gpt" // GUID partition table (behind a protective MBR)
	MBR  Scheme = "mbr" // DOS table, logical partitions numbered from 5
)

// Kind sorts partitions by what the ns driver may do with them.
type Kind int

const (
	Other Kind = iota // unknown type: never guessed at
	Root              // GPT root partition for this architecture
	Linux             // a Linux (or generic data) file system
	ESP               // EFI system partition
	Swap
	LVM
	Extended // MBR container of logical partitions
	Firmware // BIOS boot partition: boot loader code, no file system
)

// Partition is one entry of the table.
type Partition struct {
	Number int    // 1-based, as the kernel numbers it (sda1, sda5)
	Start  int64  // bytes from the start of the disk
	Size   int64  // bytes
	Type   string // GPT type GUID (lower case) or MBR type ("0x83")
	Kind   Kind
}

// Table is a disk's partition table.
type Table struct {
	Scheme     Scheme
	Partitions []Partition
}

// Read reads the partition table of the disk r of size bytes. A disk
// without a table (a file system written to the whole disk) gives Scheme
// None and no partitions.
func Read(r io.ReaderAt, size int64) (Table, error) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return Table{}, nil // smaller than a sector: no table
		}
		return Table{}, fmt.Errorf("partition: read: %w", err)
	}
	if !hasMBR(mbr) {
		return Table{}, nil
	}
	if protective(mbr) {
		parts, err := readGPT(r, size)
		if err != nil {
			return Table{}, err
		}
		return Table{Scheme: GPT, Partitions: parts}, nil
	}
	parts, err := readMBR(r, mbr, size)
	if err != nil {
		return Table{}, err
	}
	return Table{Scheme: MBR, Partitions: parts}, nil
}

// Find returns partition n.
func (t Table) Find(n int) (Partition, error) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("%w: %d (the %s table has %d)", ErrNoPartition, n, t.Scheme, len(t.Partitions))
}

// RootCandidates lists the partitions that may hold a root file system,
// best first: GPT root partitions, then Linux file systems, then
// partitions of types this package does not know (tools write odd type
// GUIDs), each group in table order. ESP, swap, LVM, BIOS boot and
// extended partitions are never candidates. Which one is the root is for
// whoever can look inside (the init must be there).
func (t Table) RootCandidates() []Partition {
	var root, linux, other []Partition
	for _, p := range t.Partitions {
		switch p.Kind {
		case Root:
			root = append(root, p)
		case Linux:
			linux = append(linux, p)
		case Other:
			other = append(other, p)
		}
	}
	return append(append(root, linux...), other...)
}

// DataCandidates lists, best first, the partitions that may hold the file
// system of a disk that is not the root disk: Linux file systems (root
// types included), then unknown types.
func (t Table) DataCandidates() []Partition {
	var linux, other []Partition
	for _, p := range t.Partitions {
		switch p.Kind {
		case Root, Linux:
			linux = append(linux, p)
		case Other:
			other = append(other, p)
		}
	}
	return append(linux, other...)
}
