// Package site benchmarks the recovery-site runtime: time from Start to a
// machine's health check passing, for one machine and for ten started
// together, with each driver. Run (root):
//
//	go test -run '^$' -bench . -benchtime 5x ./bench/site/
//
// QEMU benchmarks boot real VMs under TCG; use -benchtime 1x for them.
package site

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
)

func nsConfig() machinetest.Config {
	return machinetest.Config{Boot: time.Minute,
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &nsdrv.Driver{Networks: nets, StateDir: filepath.Join(t.TempDir(), "state")}
		}}
}

func qemuConfig(b *testing.B) machinetest.Config {
	bf, err := qemudrv.PrepareBoot(machinetest.CacheDir)
	if err != nil {
		b.Skip(err)
	}
	return machinetest.Config{Boot: 5 * time.Minute,
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &qemudrv.Driver{Networks: nets, Boot: bf, StateDir: filepath.Join(t.TempDir(), "state")}
		}}
}

func BenchmarkNSOne(b *testing.B)   { benchStart(b, nsConfig(), 1) }
func BenchmarkNSTen(b *testing.B)   { benchStart(b, nsConfig(), 10) }
func BenchmarkQEMUOne(b *testing.B) { benchStart(b, qemuConfig(b), 1) }
func BenchmarkQEMUTen(b *testing.B) { benchStart(b, qemuConfig(b), 10) }

// benchStart measures Start..all healthy for n machines; images are built
// and machines stopped outside the timer.
func benchStart(b *testing.B, cfg machinetest.Config, n int) {
	e := machinetest.NewEnv(b, cfg)
	var worst time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		specs := make([]machine.Spec, n)
		for j := range specs {
			specs[j] = e.Spec(fmt.Sprintf("b%d-%d", i, j), "app", fmt.Sprintf("10.91.0.%d/24", 10+j))
		}
		b.StartTimer()
		t0 := time.Now()
		ms := startAll(b, e, specs)
		worst = max(worst, time.Since(t0))
		b.StopTimer()
		stopAll(ms)
		b.StartTimer()
	}
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
}

func startAll(b *testing.B, e *machinetest.Env, specs []machine.Spec) []machine.Instance {
	ms := make([]machine.Instance, len(specs))
	var wg sync.WaitGroup
	for j, s := range specs {
		wg.Go(func() {
			m, err := e.Driver.Start(context.Background(), s)
			if err != nil {
				b.Error(err)
				return
			}
			ms[j] = m
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := machine.WaitHealthy(ctx, e.Edge, s); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	return ms
}

func stopAll(ms []machine.Instance) {
	var wg sync.WaitGroup
	for _, m := range ms {
		if m != nil {
			wg.Go(func() { m.Stop(context.Background()) })
		}
	}
	wg.Wait()
}
