package nsdrv

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/nocloud"
)

// writeSeed writes the cloud-init NoCloud seed of a readdressed machine
// into its state directory and returns that directory ("" when the spec
// keeps the disk's own network configuration). The child binds it where
// cloud-init looks (as LXD does), so the disk itself is not changed: the
// driver already put the addresses on the NICs, and this makes the
// machine's own network manager (systemd-networkd, through cloud-init)
// keep them instead of applying the old site's.
func (d *Driver) writeSeed(spec machine.Spec, dir string) (string, error) {
	if !spec.Readdress {
		return "", nil
	}
	docs, err := nocloud.Documents(spec, d.Networks)
	if err != nil {
		return "", err
	}
	seed := filepath.Join(dir, "seed")
	if err := os.Mkdir(seed, 0o755); err != nil {
		return "", fmt.Errorf("seed: %w", err)
	}
	for name, b := range docs {
		if err := os.WriteFile(filepath.Join(seed, name), b, 0o644); err != nil {
			return "", fmt.Errorf("seed: %w", err)
		}
	}
	return seed, nil
}
