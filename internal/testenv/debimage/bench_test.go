package debimage

import (
	"context"
	"testing"
	"time"
)

// BenchmarkBuild measures a cold build from the mirror (mmdebstrap keeps no
// package cache between runs) into a scratch cache directory; the shared
// cache is left alone. Run with -benchtime=1x: one build is minutes.
func BenchmarkBuild(b *testing.B) {
	Require(b) // skip early when tools are missing
	saved := CacheDir
	CacheDir = b.TempDir()
	b.Cleanup(func() { CacheDir = saved })
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
		start := time.Now()
		img, err := Ensure(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/build")
		removeStale() // the next iteration builds again
		_ = img
	}
}

// BenchmarkEnsureCached is what every test pays once the image exists.
func BenchmarkEnsureCached(b *testing.B) {
	Require(b)
	for b.Loop() {
		if _, err := Ensure(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopy is a test's private copy of the 2 GiB sparse image.
func BenchmarkCopy(b *testing.B) {
	img := Require(b)
	for b.Loop() {
		Copy(b, img)
	}
}

// BenchmarkBootToReady measures QEMU start to the console's ready marker
// (PostgreSQL accepting connections) per firmware; the copy is not timed.
// HAVEN_TEST_ACCEL=tcg or kvm picks the accelerator; by default KVM, with
// the fallback to TCG where KVM fails firmware boots.
func BenchmarkBootToReady(b *testing.B) {
	img := Require(b)
	for _, fw := range []string{"bios", "uefi"} {
		b.Run(fw, func(b *testing.B) {
			var total time.Duration
			n := 0
			for b.Loop() {
				b.StopTimer()
				disk := Copy(b, img)
				b.StartTimer()
				v := bootVM(b, disk, vmOpts{firmware: fw})
				total += v.waitReady(bootTimeout)
				n++
				b.StopTimer()
				v.powerdown(2 * time.Minute)
				b.StartTimer()
			}
			b.ReportMetric(total.Seconds()/float64(n), "s/ready")
			b.Logf("%s: accel %s, %d boots, mean %.1fs to ready", fw, accel(), n, total.Seconds()/float64(n))
		})
	}
}
