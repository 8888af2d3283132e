package qemudrv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/testenv/debimage"
)

// BenchmarkFirmwareBoot measures Start to healthy (PostgreSQL answering
// on the first NIC, probed from the lab's edge) for the Debian test image
// booted through each firmware and re-addressed by a NoCloud seed onto
// two networks: a failover's first boot. The accelerator is the driver's
// default for firmware boots, "auto" (KVM only if the probe proves it),
// or HAVEN_TEST_QEMU_ACCEL. Copying the image and stopping are not timed.
// Run (root; each boot takes tens of seconds under TCG):
//
//	go test -run '^$' -bench FirmwareBoot -benchtime 3x ./internal/machine/qemudrv/
func BenchmarkFirmwareBoot(b *testing.B) {
	img := debimage.Require(b)
	for _, fw := range []string{"bios", "uefi"} {
		b.Run(fw, func(b *testing.B) {
			l := newRealLab(b)
			var worst time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				spec := l.spec(b, debimage.Copy(b, img), fw, true)
				spec.Name = fmt.Sprintf("%s-%d", spec.Name, i)
				b.StartTimer()
				t0 := time.Now()
				m, err := l.driver.Start(context.Background(), spec)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), realBoot)
				err = machine.WaitHealthy(ctx, l.edge, spec)
				cancel()
				worst = max(worst, time.Since(t0))
				b.StopTimer()
				if err != nil {
					b.Fatalf("%v\n%s", err, tail(m.ConsoleLog()))
				}
				if err := m.Stop(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(worst.Seconds(), "worst-s")
		})
	}
}
