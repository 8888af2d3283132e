// Command agentbench measures replication cycles of the agent on a disk
// image that lives on a reflink XFS (run.sh prepares it): the cost of a
// cycle when nothing changed and when 1% changed (scattered 4 KiB writes),
// and the highest churn at which a 30 s RPO holds with 15 s points.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zeebo/blake3"

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
	fmt.Printf("load: %s\n", loadAvg())
	fmt.Printf("read + keyed BLAKE3 of the whole disk, %d threads: %s\n", runtime.GOMAXPROCS(0), hashRate(*disk, a.Vault().Config().ChunkSize))
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
		worst, written, cycles := churn(ctx, a, *disk, mbps, *dur)
		fmt.Printf("churn %d MB/s for %v (written %.1f MB/s): worst RPO %.1fs (30s RPO %s); %s; load %s\n", mbps, *dur, float64(written)/1e6/dur.Seconds(),
			worst, map[bool]string{true: "holds", false: "missed"}[worst <= 30], cycles, loadAvg())
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
// its schedule, and returns the worst RPO seen, the bytes the writer got
// written, and the cycles' durations.
func churn(ctx context.Context, a *agent.Agent, disk string, mbps int, d time.Duration) (float64, int64, string) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var written atomic.Int64
	go writeAt(ctx, disk, mbps, &written)
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var worst float64
	var cycles []string
	var last time.Time
	if c := a.Status().Machines[0].LastCycle; c != nil {
		last = c.Start // the cycle before the churn is not one of its
	}
	for ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		m := a.Status().Machines[0]
		worst = max(worst, m.RPOSeconds)
		if c := m.LastCycle; c != nil && c.Start.After(last) {
			last = c.Start
			cycles = append(cycles, fmt.Sprintf("%.1fs/%dMiB", c.Seconds, c.NewBytes>>20))
		}
	}
	<-done
	return worst, written.Load(), "cycles (wall/new): " + strings.Join(cycles, " ")
}

// hashRate reads the disk as a cycle does (chunks of size) and hashes
// every chunk with keyed BLAKE3 on all threads: the most a cycle that
// reads the whole disk can do on this machine.
func hashRate(disk string, size int) string {
	f, err := os.Open(disk)
	check(err)
	defer f.Close()
	fi, _ := f.Stat()
	key := make([]byte, 32)
	var next atomic.Int64
	t0 := time.Now()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			h, _ := blake3.NewKeyed(key)
			for {
				off := next.Add(int64(size)) - int64(size)
				if off >= fi.Size() {
					return
				}
				n, _ := f.ReadAt(buf, off)
				h.Reset()
				h.Write(buf[:n])
				h.Sum(nil)
			}
		}()
	}
	wg.Wait()
	s := time.Since(t0).Seconds()
	return fmt.Sprintf("%d MiB in %.2fs = %.0f MB/s (page cache as the cycle finds it)", fi.Size()>>20, s, float64(fi.Size())/1e6/s)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func writeAt(ctx context.Context, disk string, mbps int, written *atomic.Int64) {
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	check(err)
	defer f.Close()
	fi, _ := f.Stat()
	blk := make([]byte, 4096)
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
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
			// A fast generator: crypto/rand and big.Int per block held
			// the writer to ~22 MB/s on this machine, below the rates
			// asked for.
			for i := 0; i < 64; i += 8 {
				binary.LittleEndian.PutUint64(blk[i:], rng.Uint64()) // enough to make every block unique
			}
			if n, err := f.WriteAt(blk, rng.Int64N(fi.Size()/4096)*4096); err == nil {
				written.Add(int64(n))
			}
		}
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
