// Command agentbench measures replication cycles of the agent on a disk
// image that lives on a reflink XFS (run.sh prepares it): the cost of a
// cycle when nothing changed and when 1% changed (scattered 4 KiB writes),
// and the highest churn at which a 30 s RPO holds with 15 s points.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/vault"
)

func main() {
	disk := flag.String("disk", "", "disk image on a reflink XFS (modified by the benchmark)")
	work := flag.String("work", "", "work dir for the vault and agent state")
	rates := flag.String("churn", "10,20,40", "churn rates to try, MB/s")
	dur := flag.Duration("churn-time", 75*time.Second, "how long each churn rate runs")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the churn runs here")
	chunk := flag.Int("chunk", 0, "vault chunk size (0: the vault's default)")
	verbose := flag.Bool("v", false, "log every recovery point")
	flag.Parse()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	ctx := context.Background()
	a := setup(ctx, *disk, *work, *chunk)
	fmt.Printf("chunk size %d\ninitial full cycle: %s\n", a.Vault().Config().ChunkSize, cycle(ctx, a))
	for i := range 3 {
		fmt.Printf("unchanged cycle %d: %s\n", i+1, cycle(ctx, a))
	}
	n := scatter(*disk, 0.01)
	fmt.Printf("1%% changed cycle (%d scattered 4 KiB writes): %s\n", n, cycle(ctx, a))
	if *prof != "" {
		f, err := os.Create(*prof)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	for _, r := range strings.Split(*rates, ",") {
		var mbps int
		fmt.Sscan(r, &mbps)
		worst := churn(ctx, a, *disk, mbps, *dur)
		fmt.Printf("churn %d MB/s for %v: worst RPO %.1fs (30s RPO %s)\n", mbps, *dur, worst, map[bool]string{true: "holds", false: "missed"}[worst <= 30])
	}
}

func setup(ctx context.Context, disk, work string, chunk int) *agent.Agent {
	be, err := fileblob.New(filepath.Join(work, "vault"))
	check(err)
	v, err := vault.Init(ctx, be, "bench", vault.Options{ChunkSize: chunk})
	check(err)
	v.Close()
	os.Setenv("HAVEN_PASSWORD", "bench")
	cfg, err := agent.ParseConfig(fmt.Sprintf(`
vault: %s
state_dir: %s
machines:
  - name: bench
    provider: reflink
    disks: [{name: d0, path: %s}]
    policy: {frequency: 15s, rpo_alert: 30s}
`, filepath.Join(work, "vault"), filepath.Join(work, "state"), disk))
	check(err)
	a, err := agent.New(ctx, cfg)
	check(err)
	return a
}

// cycle runs one cycle and reports wall time, CPU time and what it did.
func cycle(ctx context.Context, a *agent.Agent) string {
	cpu0, t0 := cpuTime(), time.Now()
	check(a.Cycle(ctx, "bench"))
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	c := a.Status().Machines[0].LastCycle
	return fmt.Sprintf("wall %.3fs cpu %.3fs (capture %.3fs, tracking %.3fs, disk %d MiB, %d chunks known unchanged, %.1f MiB new, %.1f MiB stored)",
		wall.Seconds(), cpu.Seconds(), c.CaptureSeconds, c.TrackingSeconds, c.DiskBytes>>20, c.KnownChunks, float64(c.NewBytes)/(1<<20), float64(c.StoredBytes)/(1<<20))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scatter overwrites frac of the disk with random 4 KiB blocks at random
// 4 KiB-aligned offsets and returns how many it wrote.
func scatter(disk string, frac float64) int {
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	check(err)
	defer f.Close()
	fi, _ := f.Stat()
	n := int(float64(fi.Size()) * frac / 4096)
	blk := make([]byte, 4096)
	for range n {
		rand.Read(blk)
		_, err := f.WriteAt(blk, randBlock(fi.Size())*4096)
		check(err)
	}
	check(f.Sync())
	return n
}

func randBlock(size int64) int64 {
	b, _ := rand.Int(rand.Reader, big.NewInt(size/4096))
	return b.Int64()
}

// churn writes mbps MB/s of random 4 KiB blocks while the agent runs on
// its schedule, and returns the worst RPO seen.
func churn(ctx context.Context, a *agent.Agent, disk string, mbps int, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	go writeAt(ctx, disk, mbps)
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var worst float64
	for ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		worst = max(worst, a.Status().Machines[0].RPOSeconds)
	}
	<-done
	return worst
}

func writeAt(ctx context.Context, disk string, mbps int) {
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	check(err)
	defer f.Close()
	fi, _ := f.Stat()
	blk := make([]byte, 4096)
	perTick := mbps * 1000 * 1000 / 4096 / 10
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for range perTick {
			rand.Read(blk[:64]) // enough to make every block unique
			f.WriteAt(blk, randBlock(fi.Size())*4096)
		}
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
