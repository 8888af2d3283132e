package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkQemuCycle measures one run (use -benchtime=1x) of a 4 GiB VM
// disk full of data: the existing full-read path (provider none, data
// already in the vault, so read and hash only), the first qemu point
// (whole disk over NBD), an unchanged qemu cycle, and a cycle after 1 %
// scattered churn (random 64 KiB guest writes through qemu-io).
//
//	go test -run XXX -bench QemuCycle -benchtime=1x ./internal/agent/
func BenchmarkQemuCycle(b *testing.B) {
	size := int64(4 << 30)
	if s := os.Getenv("HAVEN_BENCH_DISK_MIB"); s != "" {
		var mib int64
		fmt.Sscan(s, &mib)
		size = mib << 20
	}
	for b.Loop() {
		benchQemuCycle(b, size)
	}
}

func benchQemuCycle(b *testing.B, size int64) {
	dir := b.TempDir()
	disk := filepath.Join(dir, "disk0.raw")
	fillRandom(b, disk, size)
	v := newVault(b, nil)
	ctx := context.Background()
	timed := func(name string, a *Agent) (float64, int64) {
		start := time.Now()
		if err := a.Cycle(ctx, "m1"); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		s := a.Status().Machines[0].LastCycle
		sec := time.Since(start).Seconds()
		b.Logf("%-22s %7.2fs  read %6d MiB  known %d chunks", name, sec, s.ReadBytes>>20, s.KnownChunks)
		return sec, s.ReadBytes
	}
	full := newAgent(benchConfig(b, ProviderNone, disk, ""), v)
	timed("store (none)", full)
	fullSec, _ := timed("full read (none)", full)

	vm := startVM(b, vmDisk{id: "disk0", path: disk, format: "raw"})
	defer vm.kill()
	q := newAgent(benchConfig(b, ProviderQemu, "", vm.AgentQ), v)
	firstSec, firstRead := timed("qemu first (full)", q)
	idleSec, idleRead := timed("qemu unchanged", q)
	writes := size / 100 / (64 << 10)
	rng := rand.New(rand.NewPCG(1, 2))
	for range writes {
		vm.write("disk0", byte(rng.IntN(255)+1), rng.Int64N(size/(64<<10))*(64<<10), 64<<10)
	}
	churnSec, churnRead := timed(fmt.Sprintf("qemu 1%% churn (%d)", writes), q)
	b.ReportMetric(fullSec, "full-read-s")
	b.ReportMetric(firstSec, "qemu-first-s")
	b.ReportMetric(idleSec, "qemu-unchanged-s")
	b.ReportMetric(churnSec, "qemu-churn-s")
	b.ReportMetric(float64(firstRead>>20), "qemu-first-MiB")
	b.ReportMetric(float64(idleRead), "qemu-unchanged-B")
	b.ReportMetric(float64(churnRead>>20), "qemu-churn-MiB")
	b.ReportMetric(idleSec/fullSec, "unchanged/full")
	b.ReportMetric(churnSec/fullSec, "churn/full")
}

func fillRandom(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 8<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		rng.Read(buf)
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			b.Fatal(err)
		}
	}
}

func benchConfig(b *testing.B, provider, disk, qmpSock string) *Config {
	text := fmt.Sprintf("vault: /unused\nstate_dir: %s\nmachines:\n  - name: m1\n    provider: %s\n", b.TempDir(), provider)
	if provider == ProviderQemu {
		text += "    qmp: " + qmpSock + "\n"
	} else {
		text += "    disks: [{name: disk0, path: " + disk + "}]\n"
	}
	cfg, err := ParseConfig(text)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}
