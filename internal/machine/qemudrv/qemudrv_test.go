package qemudrv_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
	"github.com/haven-dr/haven/internal/testenv"
)

func bootFiles(t *testing.T) qemudrv.BootFiles {
	testenv.RequireRoot(t)
	for _, p := range []string{"qemu-system-x86_64", "apt-get", "dpkg", "depmod", "cpio"} {
		testenv.LookPath(t, p)
	}
	bf, err := qemudrv.PrepareBoot(machinetest.CacheDir)
	if err != nil {
		testenv.Missing(t, "qemu boot files: %v", err)
	}
	return bf
}

// TestConformance boots two VMs under TCG (the suite keeps boots few).
func TestConformance(t *testing.T) {
	bf := bootFiles(t)
	machinetest.Run(t, machinetest.Config{
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &qemudrv.Driver{Networks: nets, Boot: bf, StateDir: filepath.Join(t.TempDir(), "state")}
		},
		Boot: 3 * time.Minute,
	})
}
