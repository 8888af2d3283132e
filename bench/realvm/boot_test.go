package realvm

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/debimage"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// BenchmarkBoot measures Start to health check for the Debian test image,
// as a failover's first boot: re-addressed onto the recovery network
// (NoCloud seed), healthy when PostgreSQL accepts TCP on 5432 from a
// client namespace on that network (machine.WaitHealthy). qemu boots the
// disk through its own firmware, SeaBIOS or OVMF, with the accelerator
// the driver's "auto" would pick (HAVEN_BENCH_ACCEL forces one); ns runs
// the root partition with systemd as PID 1. Each iteration boots a fresh,
// synced copy; copying and stopping are not timed. The same Start to
// PostgreSQL without re-addressing, probed from the edge, is nsdrv's
// BenchmarkDebianBoot.
func BenchmarkBoot(b *testing.B) {
	img := debimage.Require(b)
	for _, fw := range []string{"bios", "uefi"} {
		b.Run("qemu-"+fw, func(b *testing.B) {
			accel := accelFor(b, fw)
			b.Logf("accelerator %s", accel)
			benchBoot(b, img, fw, func(b *testing.B, nets machine.Networks) machine.Driver {
				return &qemudrv.Driver{Networks: nets, StateDir: filepath.Join(b.TempDir(), "state"), Accel: accel}
			})
		})
	}
	b.Run("ns", func(b *testing.B) {
		benchBoot(b, img, "", func(b *testing.B, nets machine.Networks) machine.Driver {
			return &nsdrv.Driver{Networks: nets, StateDir: filepath.Join(b.TempDir(), "state")}
		})
	})
}

func benchBoot(b *testing.B, img debimage.Image, firmware string, driver func(*testing.B, machine.Networks) machine.Driver) {
	e := machinetest.NewEnv(b, machinetest.Config{Boot: 15 * time.Minute,
		New: func(t testing.TB, nets machine.Networks) machine.Driver { return driver(b, nets) }})
	client := vnettest.Host(b, e.Lab, "cl", "app", "10.91.0.60/24")
	var worst time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		spec := machine.Spec{Name: fmt.Sprintf("%s-deb%d", e.Lab.ID, i), Firmware: firmware, Readdress: true,
			Disks:      []machine.Disk{{Name: "root", Path: debimage.Copy(b, img)}},
			NICs:       []vnet.NIC{{Name: "eth0", Network: "app", Addr: netip.MustParsePrefix("10.91.0.10/24")}},
			Health:     machine.HealthCheck{TCPPort: 5432},
			ConsoleLog: filepath.Join(b.TempDir(), "console.log"), StopTimeout: 2 * time.Minute,
			MemoryMB: 1024, CPUs: 2}
		syscall.Sync() // a restored replica's pages were written back long ago
		b.StartTimer()
		t0 := time.Now()
		m, err := e.Driver.Start(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		err = machine.WaitHealthy(ctx, client, spec)
		cancel()
		took := time.Since(t0)
		b.StopTimer()
		worst = max(worst, took)
		if err != nil {
			m.Stop(context.Background())
			b.Fatalf("%v\nconsole:\n%s", err, testenv.TailFile(m.ConsoleLog()))
		}
		b.Logf("boot %d: Start to TCP 5432 from the client in %v", i, took.Round(10*time.Millisecond))
		if err := m.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(worst.Seconds(), "worst-s")
}
