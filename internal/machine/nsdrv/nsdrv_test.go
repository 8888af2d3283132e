package nsdrv_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/machine/nsdrv"
)

func TestConformance(t *testing.T) {
	machinetest.Run(t, machinetest.Config{
		New: func(t *testing.T, nets machine.Networks) machine.Driver {
			return &nsdrv.Driver{Networks: nets, StateDir: filepath.Join(t.TempDir(), "state")}
		},
		Boot: 30 * time.Second,
		Many: true,
	})
}
