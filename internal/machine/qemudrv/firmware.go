package qemudrv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/nocloud"
)

// machineType boots with both SeaBIOS and OVMF. q35 rather than pc: it
// is what OVMF is built and tested for, what libvirt gives new x86 guests,
// and a PCIe machine, as the clouds most VM disks come from present.
const machineType = "q35"

// OVMF is a UEFI firmware: read-only code and the template of the
// variable store each machine gets a copy of.
type OVMF struct {
	Code, Vars string
}

// ovmfCandidates are Debian's non-secure-boot builds. Bookworm has both;
// trixie ships only the 4M one.
var ovmfCandidates = []OVMF{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
}

func (d *Driver) ovmf() (OVMF, error) {
	if d.OVMF.Code != "" {
		return d.OVMF, nil
	}
	for _, c := range ovmfCandidates {
		if exists(c.Code) && exists(c.Vars) {
			return c, nil
		}
	}
	return OVMF{}, fmt.Errorf("%w: no OVMF firmware (install ovmf)", machine.ErrBadSpec)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Files a firmware boot keeps in the machine's state directory, for the
// machine's life: the UEFI variable store (boot entries the guest writes)
// and the NoCloud seed.
const (
	varsFile = "OVMF_VARS.fd"
	seedFile = "seed.iso"
)

// prepareFirmware puts what spec's firmware boot needs into dir.
func (d *Driver) prepareFirmware(spec machine.Spec, dir string) error {
	if spec.Firmware == "uefi" {
		fw, err := d.ovmf()
		if err != nil {
			return err
		}
		if err := copyFile(fw.Vars, filepath.Join(dir, varsFile), 0o600); err != nil {
			return err
		}
	}
	if !spec.Readdress || spec.Firmware == "" {
		return nil // direct kernel boots get their addresses from the initramfs
	}
	if d.Networks == nil {
		return fmt.Errorf("%w: driver has no networks", machine.ErrBadSpec)
	}
	docs, err := nocloud.Documents(spec, d.Networks)
	if err != nil {
		return err
	}
	return nocloud.WriteImage(filepath.Join(dir, seedFile), docs)
}

// qcow2Magic starts every qcow2 image ("QFI\xfb").
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// diskFormats tells each disk's format by its header: qcow2 by its magic,
// anything else raw (what restores write). A qcow2 disk may not refer to
// other host files (a backing file or an external data file): a guest
// could have written such a header into a raw disk's first sector, and
// QEMU would then hand it the named host file.
func diskFormats(disks []machine.Disk) ([]string, error) {
	formats := make([]string, len(disks))
	for i, d := range disks {
		if d.Format == "raw" {
			formats[i] = "raw"
			continue
		}
		f, err := diskFormat(d.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: disk %s: %w", machine.ErrBadSpec, d.Name, err)
		}
		if d.Format != "" && d.Format != f {
			return nil, fmt.Errorf("%w: disk %s: %s is %s, not %s", machine.ErrBadSpec, d.Name, d.Path, f, d.Format)
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
