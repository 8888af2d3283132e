package machine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// qcow2Magic starts every qcow2 image ("QFI\xfb").
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// DiskFormats tells each disk's format by its header: qcow2 by its magic,
// anything else raw (what restores write). A qcow2 disk may not refer to
// other host files (a backing file or an external data file): a guest
// could have written such a header into a raw disk's first sector, and
// QEMU would then hand it the named host file.
func DiskFormats(disks []Disk) ([]string, error) {
	formats := make([]string, len(disks))
	for i, d := range disks {
		if d.Format == "raw" {
			formats[i] = "raw"
			continue
		}
		f, err := diskFormat(d.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: disk %s: %w", ErrBadSpec, d.Name, err)
		}
		if d.Format != "" && d.Format != f {
			return nil, fmt.Errorf("%w: disk %s: %s is %s, not %s", ErrBadSpec, d.Name, d.Path, f, d.Format)
		}
		formats[i] = f
	}
	return formats, nil
}

func diskFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 80) // the qcow2 v3 header up to its feature bits
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", err
	}
	head = head[:n]
	if !bytes.HasPrefix(head, qcow2Magic) {
		return "raw", nil
	}
	if len(head) < 80 {
		return "", fmt.Errorf("%s: truncated qcow2 header", path)
	}
	const externalDataFile = 1 << 2 // incompatible feature bit
	version := binary.BigEndian.Uint32(head[4:])
	if binary.BigEndian.Uint64(head[8:]) != 0 {
		return "", fmt.Errorf("%s: qcow2 with a backing file (flatten it: qemu-img convert -O qcow2)", path)
	}
	if version >= 3 && binary.BigEndian.Uint64(head[72:])&externalDataFile != 0 {
		return "", fmt.Errorf("%s: qcow2 with an external data file", path)
	}
	return "qcow2", nil
}
