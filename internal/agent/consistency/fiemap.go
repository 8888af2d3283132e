package consistency

import (
	"fmt"
	"os"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FIEMAP ioctl (linux/fiemap.h); x/sys/unix does not define it.
const (
	fsIOCFiemap       = 0xC020660B
	extentLast        = 0x1
	extentUnknown     = 0x2
	extentDelalloc    = 0x4
	extentEncoded     = 0x8
	extentNotAligned  = 0x100
	extentDataInline  = 0x200
	extentShared      = 0x2000
	extentsPerCall    = 8192
	untrustworthyMask = extentUnknown | extentDelalloc | extentEncoded | extentNotAligned | extentDataInline
)

type fiemapHdr struct {
	Start, Length                        uint64
	Flags, MappedExtents, ExtentCount, _ uint32
}

type fiemapExtent struct {
	Logical, Physical, Length uint64
	_                         [2]uint64
	Flags                     uint32
	_                         [3]uint32
}

// Extent maps a range of a file to physical blocks.
type Extent struct {
	Logical, Physical, Length uint64
	Flags                     uint32 // without LAST and SHARED
}

// Map is a file's extent list, sorted by logical offset.
type Map []Extent

// ReadMap returns the extent map of the file at path. Unflushed writes
// show as delalloc extents, which Same never trusts.
func ReadMap(path string) (Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var m Map
	buf := make([]byte, int(unsafe.Sizeof(fiemapHdr{}))+extentsPerCall*int(unsafe.Sizeof(fiemapExtent{})))
	hdr := (*fiemapHdr)(unsafe.Pointer(&buf[0]))
	exts := unsafe.Slice((*fiemapExtent)(unsafe.Pointer(&buf[unsafe.Sizeof(fiemapHdr{})])), extentsPerCall)
	for start := uint64(0); ; {
		// No FIEMAP_FLAG_SYNC: it would flush on every call, and clones are
		// never written, so they have no delayed allocations to flush.
		*hdr = fiemapHdr{Start: start, Length: ^uint64(0) - start, ExtentCount: extentsPerCall}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIOCFiemap, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
			return nil, fmt.Errorf("fiemap %s: %w", path, e)
		}
		n := int(hdr.MappedExtents)
		if n == 0 {
			return m, nil
		}
		for _, e := range exts[:n] {
			m = append(m, Extent{e.Logical, e.Physical, e.Length, e.Flags &^ (extentLast | extentShared)})
		}
		last := exts[n-1]
		if last.Flags&extentLast != 0 {
			return m, nil
		}
		start = last.Logical + last.Length
	}
}

// find returns the index of the extent containing off, or of the first
// extent after it (== len(m) if none).
func (m Map) find(off uint64) int {
	return sort.Search(len(m), func(i int) bool { return m[i].Logical+m[i].Length > off })
}

// Same reports whether [off, off+n) maps to the same physical blocks (or
// the same holes) in a and b. For two reflink clones, taken one after the
// other of the same source, that means the data is unchanged: shared
// blocks are never overwritten in place, and the older clone keeps its
// blocks from being freed and reused.
func Same(a, b Map, off, n uint64) bool {
	for end := off + n; off < end; {
		ia, ib := a.find(off), b.find(off)
		inA := ia < len(a) && a[ia].Logical <= off
		inB := ib < len(b) && b[ib].Logical <= off
		if inA != inB {
			return false
		}
		if !inA { // a hole in both: skip to the next extent of either
			next := end
			if ia < len(a) {
				next = min(next, a[ia].Logical)
			}
			if ib < len(b) {
				next = min(next, b[ib].Logical)
			}
			off = next
			continue
		}
		ea, eb := a[ia], b[ib]
		if ea.Flags != eb.Flags || ea.Flags&untrustworthyMask != 0 ||
			ea.Physical+(off-ea.Logical) != eb.Physical+(off-eb.Logical) {
			return false
		}
		off = min(end, ea.Logical+ea.Length, eb.Logical+eb.Length)
	}
	return true
}
