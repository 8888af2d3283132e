package partition

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// GPT partition type GUIDs the driver tells apart.
var gptKinds = map[string]Kind{
	"4f68bce3-e8cd-4db1-96e7-fbcaf984b709": Root,  // root, x86-64
	"b921b045-1df0-41c3-af44-4c6f280d3fae": Root,  // root, arm64
	"0fc63daf-8483-4772-8e79-3d69d8477de4": Linux, // Linux file system
	"933ac7e1-2eb4-4f13-b844-0e14e2aef915": Linux, // /home
	"3b8f8425-20e0-4f3b-907f-1a25a76f98e8": Linux, // /srv
	"4d21b016-b534-45c2-a9fb-5c16e091fd2d": Linux, // /var
	"ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": Linux, // basic data: old Linux tools used it
	"c12a7328-f81f-11d2-ba4b-00a0c93ec93b": ESP,
	"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": Swap,
	"e6d6d379-f507-44c2-a23c-238f2a3df928": LVM,
	"21686148-6449-6e6f-744e-656564454649": Firmware, // BIOS boot
}

// readGPT reads the primary GPT, trying 512- and 4096-byte sectors (the
// header sits in the second sector either way). Both CRCs are checked: a
// damaged primary table is reported, not guessed around.
func readGPT(r io.ReaderAt, size int64) ([]Partition, error) {
	for _, ss := range []int64{512, 4096} {
		h := make([]byte, 512)
		if _, err := r.ReadAt(h, ss); err != nil {
			continue
		}
		if string(h[:8]) == "EFI PART" {
			return gptEntries(r, h, ss, size)
		}
	}
	return nil, fmt.Errorf("%w: protective MBR but no GPT header", ErrCorrupt)
}

func gptEntries(r io.ReaderAt, h []byte, ss, size int64) ([]Partition, error) {
	hsize := binary.LittleEndian.Uint32(h[12:])
	if hsize < 92 || hsize > 512 {
		return nil, fmt.Errorf("%w: GPT header size %d", ErrCorrupt, hsize)
	}
	hdr := append([]byte(nil), h[:hsize]...)
	want := binary.LittleEndian.Uint32(hdr[16:])
	copy(hdr[16:20], []byte{0, 0, 0, 0})
	if crc32.ChecksumIEEE(hdr) != want {
		return nil, fmt.Errorf("%w: GPT header checksum", ErrCorrupt)
	}
	lba := int64(binary.LittleEndian.Uint64(h[72:]))
	count := binary.LittleEndian.Uint32(h[80:])
	esize := binary.LittleEndian.Uint32(h[84:])
	if esize < 128 || esize > 4096 || count > 1024 {
		return nil, fmt.Errorf("%w: GPT has %d entries of %d bytes", ErrCorrupt, count, esize)
	}
	ents := make([]byte, int(count)*int(esize))
	if _, err := r.ReadAt(ents, lba*ss); err != nil {
		return nil, fmt.Errorf("%w: GPT entries: %v", ErrCorrupt, err)
	}
	if crc32.ChecksumIEEE(ents) != binary.LittleEndian.Uint32(h[88:]) {
		return nil, fmt.Errorf("%w: GPT entries checksum", ErrCorrupt)
	}
	var out []Partition
	for i := 0; i < int(count); i++ {
		e := ents[i*int(esize):]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue // unused entry
		}
		first, last := int64(binary.LittleEndian.Uint64(e[32:])), int64(binary.LittleEndian.Uint64(e[40:]))
		if last < first || (last+1)*ss > size {
			return nil, fmt.Errorf("%w: GPT partition %d spans sectors %d-%d of a %d-byte disk", ErrCorrupt, i+1, first, last, size)
		}
		typ := guid(e[:16])
		out = append(out, Partition{Number: i + 1, Start: first * ss, Size: (last - first + 1) * ss, Type: typ, Kind: gptKinds[typ]})
	}
	return out, nil
}

// guid formats a GUID stored mixed-endian (the first three fields little
// endian) in its usual text form.
func guid(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}
