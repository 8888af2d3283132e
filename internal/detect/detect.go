// Package detect finds mass encryption in the churn figures each recovery
// point records (vault.Churn). It is pure logic over one machine's points,
// so the server can re-run it from the vault at any time and reach the
// same verdicts.
//
// Encryption rewrites data that exists with data that no longer
// compresses. The signal is therefore, per disk and cycle, the bytes of
// chunks that held data in the previous point and now hold new,
// incompressible data (vault.Churn.OverwrittenIncompressible), or, when
// more, the random-looking 4 KiB blocks in such chunks
// (OverwrittenRandom: files smaller than a chunk, encrypted in place). Ordinary
// heavy work moves other figures: a bulk load writes compressible data,
// mostly into free space; a package upgrade writes compressible files into
// free space; a copy of compressed archives is incompressible but lands in
// free space too. Each disk is compared with its own recent past (a robust
// median and median absolute deviation), so a disk whose normal work
// overwrites some compressed data in place does not alert.
package detect

import (
	"fmt"
	"sort"
	"time"

	"github.com/haven-dr/haven/internal/vault"
)

// Config tunes the detector; zero fields take the defaults.
type Config struct {
	// Window is how many recent clean cycles of a disk form its baseline.
	Window int `yaml:"window" json:"window"`
	// Warmup: a disk's first Warmup cycles with a baseline only learn
	// (a disk whose ordinary work overwrites compressed data in place
	// would otherwise alert before its baseline says so).
	Warmup int `yaml:"warmup" json:"warmup"`
	// K: the signal must exceed the baseline's median by K robust
	// standard deviations (1.4826 × MAD)...
	K float64 `yaml:"k" json:"k"`
	// Factor: ...and be Factor times the median...
	Factor float64 `yaml:"factor" json:"factor"`
	// MinBytes: ...and at least this many bytes in one cycle...
	MinBytes int64 `yaml:"min_bytes" json:"min_bytes"`
	// MinShare: ...and this share of the bytes the cycle changed on
	// the disk (encryption dominates the cycles it runs in).
	MinShare float64 `yaml:"min_share" json:"min_share"`
	// OnsetBytes: once a cycle alerts, the cycles just before it whose
	// signal was at least OnsetBytes and above the baseline's ordinary
	// spread (median + 3 robust deviations, and twice the median) are
	// suspect too, and then the cycles just before those whose random
	// blocks written anywhere (over zeros too) pass the same test against
	// their own baseline: encryption often starts with small files,
	// below MinBytes a cycle and drowned in the file system's metadata
	// writes (no share is asked), and the last clean point must come
	// before its first write. Erring early costs some data; erring late
	// restores encrypted files.
	OnsetBytes int64 `yaml:"onset_bytes" json:"onset_bytes"`
	// OnsetGap: the walk-back passes over up to this many quiet cycles
	// to an earlier suspect one. Encrypted pages reach the disk when the
	// page cache writes them back (up to 30 s later, plus the 5 s flush
	// interval, in bursts), so an attack under way can leave up to three
	// 15 s cycles without a visible write.
	OnsetGap int `yaml:"onset_gap" json:"onset_gap"`
}

// Defaults.
const (
	DefaultWindow   = 30
	DefaultWarmup   = 3
	DefaultK        = 8
	DefaultFactor   = 4
	DefaultMinBytes = 8 << 20
	DefaultMinShare = 0.3
	DefaultOnset    = 16 << 10
	DefaultOnsetGap = 3
)

// Check refuses values that would make the detector blind or meaningless.
func (c Config) Check() error {
	switch {
	case c.Window < 0 || c.Warmup < 0 || c.K < 0 || c.Factor < 0 || c.MinBytes < 0 || c.MinShare < 0 || c.OnsetBytes < 0 || c.OnsetGap < 0:
		return fmt.Errorf("negative value in %+v", c)
	case c.MinShare > 1:
		return fmt.Errorf("min_share %v: a share is at most 1", c.MinShare)
	case c.Window > 0 && c.Warmup > c.Window:
		return fmt.Errorf("warmup %d above window %d", c.Warmup, c.Window)
	}
	return nil
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Warmup <= 0 {
		c.Warmup = DefaultWarmup
	}
	if c.K <= 0 {
		c.K = DefaultK
	}
	if c.Factor <= 0 {
		c.Factor = DefaultFactor
	}
	if c.MinBytes <= 0 {
		c.MinBytes = DefaultMinBytes
	}
	if c.MinShare <= 0 {
		c.MinShare = DefaultMinShare
	}
	if c.OnsetBytes <= 0 {
		c.OnsetBytes = DefaultOnset
	}
	if c.OnsetGap <= 0 {
		c.OnsetGap = DefaultOnsetGap
	}
	return c
}

// Alert is a jump in one machine's incompressible overwrites.
type Alert struct {
	Machine string
	Disk    string // the first disk that jumped
	// Trigger is the point whose churn jumped; FirstSuspect the first
	// point of the run-up to it (see Config.OnsetBytes), often Trigger.
	Trigger      string
	FirstSuspect string
	SuspectTime  time.Time // FirstSuspect's capture instant
	LastClean    string    // the point before it ("" if none is left)
	LastTime     time.Time
	Bytes        int64   // the signal of the trigger point
	Threshold    float64 // what it had to exceed
	Share        float64 // of the disk's changed bytes in that cycle
}

// Reason says why, for the alert's summary and the vault's hold.
func (a Alert) Reason() string {
	return fmt.Sprintf("disk %s: %.1f MiB of existing data overwritten with incompressible data in one cycle "+
		"(%.0f%% of what changed; threshold %.1f MiB from the disk's own baseline)",
		a.Disk, float64(a.Bytes)/(1<<20), a.Share*100, a.Threshold/(1<<20))
}

// Result is the verdict on one machine's points.
type Result struct {
	Alerts []Alert // every jump found, oldest first
	// Suspect: points captured while an alert was open (the first
	// suspect and everything after it, until its close).
	Suspect map[string]bool
}

// Scan runs the detector over one machine's points. closed holds the
// alerts operators closed, by first suspect or trigger point; an alert already
// known by its first suspect point is reported again with the same ID, so
// the caller can tell new ones by FirstSuspect.
func Scan(cfg Config, points []*vault.Point, closed map[string]time.Time) Result {
	cfg = cfg.WithDefaults()
	ps := append([]*vault.Point(nil), points...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Time.Before(ps[j].Time) })
	res := Result{Suspect: map[string]bool{}}
	hist := map[string][]float64{} // disk -> clean signals, oldest first
	newRandomHist := map[string][]float64{}
	var open *Alert
	free := 0 // points before it belong to an earlier alert
	for i, p := range ps {
		if open != nil {
			t, ok := closed[open.FirstSuspect]
			if !ok {
				t, ok = closed[open.Trigger]
			}
			if !ok || !p.Time.After(t) {
				res.Suspect[p.ID] = true
				continue
			}
			open = nil
		}
		if a, ok := judge(cfg, p, hist); ok {
			first := i
			for j, gap := i-1, 0; j >= free && gap <= cfg.OnsetGap; j-- {
				if onset(cfg, ps[j], hist, signal) {
					first, gap = j, 0
				} else {
					gap++
				}
			}
			// Random blocks written where zeros were (vault.Churn.NewRandom):
			// ciphertext over a database's preallocated, zero-filled files
			// overwrites nothing the agent saw as data, yet a last clean
			// point taken then restores encrypted files. Alone such writes
			// are a compressed file's copy into free space, so they only
			// extend the run-up by the cycles just before it, with no gap.
			for first > free && onset(cfg, ps[first-1], newRandomHist, newRandom) {
				first--
			}
			a.FirstSuspect, a.SuspectTime = ps[first].ID, ps[first].Time
			if first > 0 {
				a.LastClean, a.LastTime = ps[first-1].ID, ps[first-1].Time
			}
			for _, q := range ps[first : i+1] {
				res.Suspect[q.ID] = true
			}
			res.Alerts = append(res.Alerts, a)
			open = &res.Alerts[len(res.Alerts)-1]
			free = i + 1
			continue
		}
		learn(cfg, p, hist, newRandomHist)
	}
	return res
}

// onset reports whether p looks like the quiet start of an attack: some
// disk's signal (sig of its churn) at least OnsetBytes and above the
// baseline's ordinary spread (median + 3 robust deviations, and twice the
// median). hist is that signal's baseline at the alert (it may include p:
// the median is robust to a few such cycles).
func onset(cfg Config, p *vault.Point, hist map[string][]float64, sig func(*vault.Churn) int64) bool {
	for _, d := range p.Disks {
		c := d.Churn
		if c == nil || !c.Baseline || c.Changed == 0 {
			continue
		}
		h := hist[d.Name]
		med := median(h)
		if s := float64(sig(c)); s >= float64(cfg.OnsetBytes) && s > max(med+3*1.4826*mad(h, med), 2*med) {
			return true
		}
	}
	return false
}

// judge checks p's disks against their baselines.
func judge(cfg Config, p *vault.Point, hist map[string][]float64) (Alert, bool) {
	for _, d := range p.Disks {
		c := d.Churn
		if c == nil || !c.Baseline || c.Changed == 0 || len(hist[d.Name]) < cfg.Warmup {
			continue
		}
		sig := float64(signal(c))
		thr := Threshold(cfg, hist[d.Name])
		share := sig / float64(c.Changed)
		if sig > thr && share >= cfg.MinShare {
			return Alert{Machine: p.Machine, Disk: d.Name, Trigger: p.ID, FirstSuspect: p.ID, SuspectTime: p.Time,
				Bytes: signal(c), Threshold: thr, Share: share}, true
		}
	}
	return Alert{}, false
}

// signal is a cycle's existing data overwritten with what looks
// encrypted: whole incompressible chunks, or random blocks when those
// are more (points of older agents have only the former).
func signal(c *vault.Churn) int64 {
	return max(c.OverwrittenIncompressible, c.OverwrittenRandom)
}

func newRandom(c *vault.Churn) int64 { return c.NewRandom }

// learn adds a clean point's signals to its disks' baselines.
func learn(cfg Config, p *vault.Point, hist, newRandomHist map[string][]float64) {
	for _, d := range p.Disks {
		if c := d.Churn; c != nil && c.Baseline {
			hist[d.Name] = window(cfg, append(hist[d.Name], float64(signal(c))))
			newRandomHist[d.Name] = window(cfg, append(newRandomHist[d.Name], float64(c.NewRandom)))
		}
	}
}

func window(cfg Config, h []float64) []float64 {
	if len(h) > cfg.Window {
		return h[len(h)-cfg.Window:]
	}
	return h
}

// Threshold is the signal a disk with baseline hist must exceed:
// max(MinBytes, median + K·1.4826·MAD, Factor·median).
func Threshold(cfg Config, hist []float64) float64 {
	cfg = cfg.WithDefaults()
	med := median(hist)
	return max(float64(cfg.MinBytes), med+cfg.K*1.4826*mad(hist, med), cfg.Factor*med)
}

// mad is the median absolute deviation of xs from their median med.
func mad(xs []float64, med float64) float64 {
	dev := make([]float64, len(xs))
	for i, x := range xs {
		dev[i] = abs(x - med)
	}
	return median(dev)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
