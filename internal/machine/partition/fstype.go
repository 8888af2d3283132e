package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrUnknownFS is returned when no known superblock is found.
var ErrUnknownFS = errors.New("partition: unknown file system")

// FSType names the file system starting at off, by its superblock magic,
// as mount(2) wants it: "ext4" (which mounts ext2 and ext3 too), "xfs",
// "btrfs" or "vfat".
func FSType(r io.ReaderAt, off int64) (string, error) {
	b := make([]byte, 0x10048)
	n, err := r.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("partition: read superblock: %w", err)
	}
	b = b[:n]
	switch {
	case len(b) >= 1082 && binary.LittleEndian.Uint16(b[1080:]) == 0xEF53:
		return "ext4", nil
	case len(b) >= 4 && string(b[:4]) == "XFSB":
		return "xfs", nil
	case len(b) >= 0x10048 && string(b[0x10040:0x10048]) == "_BHRfS_M":
		return "btrfs", nil
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA &&
		(string(b[0x36:0x39]) == "FAT" || string(b[0x52:0x57]) == "FAT32"):
		return "vfat", nil
	}
	return "", fmt.Errorf("%w at offset %d", ErrUnknownFS, off)
}
