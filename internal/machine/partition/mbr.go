package partition

import (
	"encoding/binary"
	"fmt"
	"io"
)

const sector = 512 // MBR tables count in 512-byte sectors

// hasMBR tells a DOS table from a boot sector without one: both end in
// 55 AA, but a FAT file system's boot sector starts with a jump and names
// its type, and a table's status bytes are 0x00 or 0x80.
func hasMBR(b []byte) bool {
	if b[510] != 0x55 || b[511] != 0xAA {
		return false
	}
	if (b[0] == 0xEB || b[0] == 0xE9) && (string(b[0x36:0x39]) == "FAT" || string(b[0x52:0x57]) == "FAT32") {
		return false
	}
	any := false
	for i := 0; i < 4; i++ {
		e := b[446+16*i:]
		if e[0] != 0 && e[0] != 0x80 {
			return false
		}
		any = any || e[4] != 0
	}
	return any
}

func protective(b []byte) bool {
	for i := 0; i < 4; i++ {
		if b[446+16*i+4] == 0xEE {
			return true
		}
	}
	return false
}

func mbrKind(t byte) Kind {
	switch t {
	case 0x83:
		return Linux
	case 0x82:
		return Swap
	case 0x8E:
		return LVM
	case 0xEF:
		return ESP
	case 0x05, 0x0F, 0x85:
		return Extended
	}
	return Other
}

func readMBR(r io.ReaderAt, b []byte, size int64) ([]Partition, error) {
	var out []Partition
	for i := 0; i < 4; i++ {
		e := b[446+16*i:]
		if e[4] == 0 {
			continue
		}
		p := mbrEntry(i+1, e, 0)
		if p.Start+p.Size > size {
			return nil, fmt.Errorf("%w: partition %d ends past the disk", ErrCorrupt, p.Number)
		}
		out = append(out, p)
		if p.Kind == Extended {
			logical, err := readLogical(r, p, size)
			if err != nil {
				return nil, err
			}
			out = append(out, logical...)
		}
	}
	return out, nil
}

func mbrEntry(n int, e []byte, base int64) Partition {
	return Partition{
		Number: n,
		Start:  base + int64(binary.LittleEndian.Uint32(e[8:]))*sector,
		Size:   int64(binary.LittleEndian.Uint32(e[12:])) * sector,
		Type:   fmt.Sprintf("0x%02x", e[4]),
		Kind:   mbrKind(e[4]),
	}
}

// readLogical walks the chain of extended boot records: each holds one
// logical partition (relative to itself) and a link to the next (relative
// to the extended partition).
func readLogical(r io.ReaderAt, ext Partition, size int64) ([]Partition, error) {
	var out []Partition
	b := make([]byte, 512)
	at := ext.Start
	for n := 5; n < 5+128; n++ {
		if _, err := r.ReadAt(b, at); err != nil {
			return nil, fmt.Errorf("%w: extended boot record at %d: %v", ErrCorrupt, at, err)
		}
		if b[510] != 0x55 || b[511] != 0xAA {
			return nil, fmt.Errorf("%w: extended boot record at %d has no signature", ErrCorrupt, at)
		}
		if b[446+4] != 0 {
			p := mbrEntry(n, b[446:], at)
			if p.Start+p.Size > ext.Start+ext.Size || p.Start+p.Size > size {
				return nil, fmt.Errorf("%w: logical partition %d ends past its extended partition", ErrCorrupt, n)
			}
			out = append(out, p)
		}
		next := b[446+16:]
		if next[4] == 0 {
			return out, nil
		}
		at = ext.Start + int64(binary.LittleEndian.Uint32(next[8:]))*sector
	}
	return nil, fmt.Errorf("%w: more than 128 logical partitions (a loop in the chain?)", ErrCorrupt)
}
