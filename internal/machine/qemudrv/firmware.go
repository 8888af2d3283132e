package qemudrv

import (
	"fmt"
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
