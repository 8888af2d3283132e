package detect

import (
	"fmt"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/vault"
)

const mib = 1 << 20

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// pt makes point i of machine m with one disk's churn.
func pt(i int, c vault.Churn) *vault.Point {
	c.Baseline = true
	return &vault.Point{ID: fmt.Sprintf("p%03d", i), Machine: "db", Time: t0.Add(time.Duration(i) * 15 * time.Second),
		Disks: []vault.Disk{{Name: "data", Churn: &c}}}
}

// quiet is an ordinary cycle: some compressible updates in place.
func quiet(i int) *vault.Point {
	return pt(i, vault.Churn{Changed: 2 * mib, Overwritten: 2 * mib, New: 2 * mib, NewStored: mib / 2})
}

// encrypt is a cycle of in-place encryption.
func encrypt(i int, n int64) *vault.Point {
	return pt(i, vault.Churn{Changed: n, Overwritten: n, New: n, NewStored: n, Incompressible: n, OverwrittenIncompressible: n})
}

func TestEncryptionAlertsAtTheJump(t *testing.T) {
	var ps []*vault.Point
	for i := range 10 {
		ps = append(ps, quiet(i))
	}
	ps = append(ps, encrypt(10, 120*mib), encrypt(11, 300*mib), quiet(12))
	res := Scan(Config{}, ps, nil)
	if len(res.Alerts) != 1 {
		t.Fatalf("alerts %+v, want one", res.Alerts)
	}
	a := res.Alerts[0]
	if a.FirstSuspect != "p010" || a.LastClean != "p009" || a.Disk != "data" || a.Bytes != 120*mib || a.Share != 1 {
		t.Fatalf("alert %+v", a)
	}
	for i := range 13 {
		id := fmt.Sprintf("p%03d", i)
		if res.Suspect[id] != (i >= 10) {
			t.Errorf("point %s suspect=%v", id, res.Suspect[id])
		}
	}
}

// TestBenignHeavyWork: a bulk load (compressible, into free space), a
// package upgrade (compressible small files, some replaced in place) and a
// copy of compressed archives (incompressible, into free space) do not
// alert however large they are.
func TestBenignHeavyWork(t *testing.T) {
	ps := []*vault.Point{quiet(0), quiet(1), quiet(2), quiet(3)}
	ps = append(ps,
		pt(4, vault.Churn{Changed: 900 * mib, Overwritten: 60 * mib, New: 900 * mib, NewStored: 90 * mib, Incompressible: 0}),
		pt(5, vault.Churn{Changed: 400 * mib, Overwritten: 40 * mib, New: 400 * mib, NewStored: 150 * mib, Incompressible: 20 * mib, OverwrittenIncompressible: 2 * mib}),
		pt(6, vault.Churn{Changed: 700 * mib, Overwritten: 10 * mib, New: 700 * mib, NewStored: 700 * mib, Incompressible: 700 * mib, OverwrittenIncompressible: 6 * mib}),
		quiet(7))
	if res := Scan(Config{}, ps, nil); len(res.Alerts) != 0 || len(res.Suspect) != 0 {
		t.Fatalf("benign work alerted: %+v", res.Alerts)
	}
	// The same cycles overwriting in place what they write would alert.
	for _, p := range ps[4:7] {
		c := p.Disks[0].Churn
		c.Overwritten, c.OverwrittenIncompressible = c.Changed, c.Incompressible
	}
	// (p005's 20 MiB of it, below the threshold, are its run-up.)
	if res := Scan(Config{}, ps, nil); len(res.Alerts) != 1 || res.Alerts[0].Trigger != "p006" || res.Alerts[0].FirstSuspect != "p005" {
		t.Fatalf("in-place incompressible copy: %+v, want an alert at p006 from p005 on", res.Alerts)
	}
}

// TestOwnBaseline: a disk whose normal work overwrites compressed data in
// place (around 40 MiB a cycle) alerts on a jump far above that, not on
// its ordinary ups and downs.
func TestOwnBaseline(t *testing.T) {
	var ps []*vault.Point
	for i := range 20 {
		ps = append(ps, encrypt(i, int64(35+i%3*5)*mib))
	}
	ps = append(ps, encrypt(20, 60*mib), encrypt(21, 45*mib))
	if res := Scan(Config{}, ps, nil); len(res.Alerts) != 0 {
		t.Fatalf("ordinary variation alerted: %+v", res.Alerts)
	}
	ps = append(ps, encrypt(22, 900*mib))
	res := Scan(Config{}, ps, nil)
	if len(res.Alerts) != 1 || res.Alerts[0].FirstSuspect != "p022" || res.Alerts[0].LastClean != "p021" {
		t.Fatalf("alerts %+v, want one at p022", res.Alerts)
	}
}

// TestClosedAlertResumes: once an operator closes an alert, points after
// the close are judged again (and a later jump is a new alert); points
// without a baseline (first point, agent restart) are never judged, nor a
// disk's warm-up cycles.
func TestClosedAlertResumes(t *testing.T) {
	first := encrypt(0, 500*mib)
	first.Disks[0].Churn.Baseline = false
	ps := []*vault.Point{first, quiet(1), quiet(2), quiet(3), encrypt(4, 200*mib), quiet(5), quiet(6), quiet(7), encrypt(8, 200*mib)}
	res := Scan(Config{}, ps, nil)
	if len(res.Alerts) != 1 || res.Alerts[0].FirstSuspect != "p004" || len(res.Suspect) != 5 {
		t.Fatalf("open alert: %+v, suspect %v", res.Alerts, res.Suspect)
	}
	res = Scan(Config{}, ps, map[string]time.Time{"p004": ps[5].Time.Add(time.Second)})
	if len(res.Alerts) != 2 || res.Alerts[1].FirstSuspect != "p008" || res.Alerts[1].LastClean != "p007" {
		t.Fatalf("after close: %+v", res.Alerts)
	}
	if !res.Suspect["p005"] || res.Suspect["p006"] || !res.Suspect["p008"] {
		t.Fatalf("suspect after close: %v", res.Suspect)
	}
}

func TestThreshold(t *testing.T) {
	cfg := Config{MinBytes: 1, K: 2, Factor: 1.5}
	for _, c := range []struct {
		hist []float64
		want float64
	}{
		{nil, 1},
		{[]float64{10, 10, 10}, 15},             // MAD 0: Factor × median
		{[]float64{8, 10, 12}, 10 + 2*1.4826*2}, // median 10, MAD 2
	} {
		if got := Threshold(cfg, c.hist); abs(got-c.want) > 1e-9 {
			t.Errorf("Threshold(%v) = %v, want %v", c.hist, got, c.want)
		}
	}
}

// TestOnsetBeforeTrigger: encryption that starts with small files stays
// below the alert threshold for a few cycles; when it alerts, those cycles
// are suspect too and the last clean point comes before them.
func TestOnsetBeforeTrigger(t *testing.T) {
	var ps []*vault.Point
	for i := range 6 {
		ps = append(ps, quiet(i))
	}
	ps = append(ps, encrypt(6, 3*mib), encrypt(7, 5*mib), encrypt(8, 150*mib), quiet(9))
	res := Scan(Config{}, ps, nil)
	if len(res.Alerts) != 1 {
		t.Fatalf("alerts %+v", res.Alerts)
	}
	a := res.Alerts[0]
	if a.Trigger != "p008" || a.FirstSuspect != "p006" || a.LastClean != "p005" || !res.Suspect["p006"] || !res.Suspect["p007"] || res.Suspect["p005"] {
		t.Fatalf("alert %+v, suspect %v; want trigger p008, first suspect p006, last clean p005", a, res.Suspect)
	}
	// A quiet cycle between the small start and the jump (the page
	// cache had not written the next encrypted files back yet) does not
	// end the run-up...
	ps[7] = quiet(7)
	if a := Scan(Config{}, ps, nil).Alerts[0]; a.FirstSuspect != "p006" || a.LastClean != "p005" {
		t.Fatalf("alert %+v; want the run-up to pass over the quiet p007", a)
	}
	// ...nor do three (write-back delay and flush interval)...
	ps = append(ps[:6:6], encrypt(6, 3*mib), quiet(7), quiet(8), quiet(9), encrypt(10, 150*mib))
	if a := Scan(Config{}, ps, nil).Alerts[0]; a.FirstSuspect != "p006" || a.LastClean != "p005" {
		t.Fatalf("alert %+v; want the run-up to pass over three quiet cycles", a)
	}
	// ...but four quiet cycles do.
	ps = append(ps[:6:6], encrypt(6, 3*mib), quiet(7), quiet(8), quiet(9), quiet(10), encrypt(11, 150*mib))
	if a := Scan(Config{}, ps, nil).Alerts[0]; a.FirstSuspect != "p011" || a.LastClean != "p010" {
		t.Fatalf("alert %+v; want the run-up to stop at four quiet cycles", a)
	}
}

// TestSmallFilesSeenThroughRandomBlocks: the encryption's first small
// files leave their chunks compressible (no incompressible overwrite),
// but their random-looking blocks make the cycle part of the run-up, so
// the last clean point comes before them. Points of older agents (no
// random-block figure) are judged as before.
func TestSmallFilesSeenThroughRandomBlocks(t *testing.T) {
	var ps []*vault.Point
	for i := range 6 {
		ps = append(ps, quiet(i))
	}
	small := quiet(6)
	small.Disks[0].Churn.OverwrittenRandom = 96 << 10 // 24 files of 4 KiB
	ps = append(ps, small, encrypt(7, 150*mib), quiet(8))
	res := Scan(Config{}, ps, nil)
	if len(res.Alerts) != 1 || res.Alerts[0].FirstSuspect != "p006" || res.Alerts[0].LastClean != "p005" {
		t.Fatalf("alerts %+v; want the run-up from p006 (random blocks only)", res.Alerts)
	}
	small.Disks[0].Churn.OverwrittenRandom = 0
	if a := Scan(Config{}, ps, nil).Alerts[0]; a.FirstSuspect != "p007" {
		t.Fatalf("without the figure: %+v, want the first suspect at the jump", a)
	}
	// Only small files, many of them: the random blocks alone alert.
	ps = ps[:6]
	for i := 6; i < 9; i++ {
		p := quiet(i)
		c := p.Disks[0].Churn
		c.Changed, c.Overwritten, c.OverwrittenRandom = 40*mib, 40*mib, 20*mib
		ps = append(ps, p)
	}
	if res := Scan(Config{}, ps, nil); len(res.Alerts) != 1 || res.Alerts[0].Trigger != "p006" {
		t.Fatalf("small-file encryption only: %+v, want an alert at p006", res.Alerts)
	}
}

// TestCiphertextOverZerosStartsTheRunUp: the attack's first cycle wrote
// its ciphertext where the files held zeros (a database's preallocated
// log), so nothing counts as overwritten; its random blocks new to the
// vault still make it the first suspect. A disk that writes that much
// random data into free space every cycle (compressed backups landing on
// it) keeps it in its baseline, and the walk-back does not take it; a
// copy of archives a few cycles before the attack (recorded: a full run
// on 2026-12-06, 17:19) is not taken across the quiet cycles between;
// nor does random data in free space alone ever alert.
func TestCiphertextOverZerosStartsTheRunUp(t *testing.T) {
	var ps []*vault.Point
	for i := range 6 {
		ps = append(ps, quiet(i))
	}
	zeros := quiet(6)
	zeros.Disks[0].Churn.NewRandom = 400 << 10
	ps = append(ps, zeros, encrypt(7, 150*mib), quiet(8))
	res := Scan(Config{}, ps, nil)
	if len(res.Alerts) != 1 || res.Alerts[0].FirstSuspect != "p006" || res.Alerts[0].LastClean != "p005" || !res.Suspect["p006"] {
		t.Fatalf("alerts %+v, suspect %v; want the run-up from p006 (random blocks over zeros)", res.Alerts, res.Suspect)
	}
	for _, p := range ps[:6] {
		p.Disks[0].Churn.NewRandom = 380 << 10
	}
	if res := Scan(Config{}, ps, nil); len(res.Alerts) != 1 || res.Alerts[0].FirstSuspect != "p007" {
		t.Fatalf("with random writes in the baseline: %+v, want the first suspect at the jump", res.Alerts)
	}
	ps = ps[:6]
	for _, p := range ps {
		p.Disks[0].Churn.NewRandom = 0
	}
	archives := quiet(6)
	archives.Disks[0].Churn.Changed, archives.Disks[0].Churn.NewRandom = 131*mib, 130*mib
	small := quiet(9)
	small.Disks[0].Churn.OverwrittenRandom = 7 * mib
	ps = append(ps, archives, quiet(7), quiet(8), small, quiet(10), encrypt(11, 130*mib))
	if res := Scan(Config{}, ps, nil); len(res.Alerts) != 1 || res.Alerts[0].FirstSuspect != "p009" || res.Alerts[0].LastClean != "p008" {
		t.Fatalf("archive copy before the attack: %+v, want the run-up from p009", res.Alerts)
	}
	ps = ps[:6]
	for i := 6; i < 10; i++ {
		p := quiet(i)
		p.Disks[0].Churn.Changed, p.Disks[0].Churn.NewRandom = 700*mib, 700*mib
		ps = append(ps, p)
	}
	if res := Scan(Config{}, ps, nil); len(res.Alerts) != 0 {
		t.Fatalf("random data into free space alerted: %+v", res.Alerts)
	}
}
