package detect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/vault"
)

// recording is what e2e/TestRansomDetection writes (bench/ransom/run.sh):
// one disk's churn per point of a real agent, over benign heavy work and
// then an in-place encryption that began at AttackStart.
type recording struct {
	Points []struct {
		ID    string      `json:"id"`
		Time  time.Time   `json:"time"`
		Churn vault.Churn `json:"churn"`
	} `json:"points"`
	Detection struct {
		AttackStart time.Time `json:"attack_start"`
	} `json:"detection"`
}

// TestRecordedSeries replays recorded runs: the detector with its defaults
// raises exactly one alert, at a point captured after the attack began,
// marks no point taken before it suspect and every point of the attack
// with encrypted-looking overwrites in sight suspect (ransom-5: a slow
// attack on a loaded machine whose page cache left a quiet cycle in the
// middle of it) (the benign workloads of the
// run — bulk load, package unpacking, archive copy — raise nothing).
func TestRecordedSeries(t *testing.T) {
	files, _ := filepath.Glob("testdata/ransom-*.json")
	if len(files) == 0 {
		t.Fatal("no recorded series in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var rec recording
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			var ps []*vault.Point
			for _, p := range rec.Points {
				c := p.Churn
				ps = append(ps, &vault.Point{ID: p.ID, Machine: "db", Time: p.Time, Disks: []vault.Disk{{Name: "data", Churn: &c}}})
			}
			res := Scan(Config{}, ps, nil)
			if len(res.Alerts) != 1 {
				t.Fatalf("%d alerts, want 1: %+v", len(res.Alerts), res.Alerts)
			}
			a := res.Alerts[0]
			if a.SuspectTime.Before(rec.Detection.AttackStart) {
				t.Fatalf("first suspect %s at %s, before the attack began at %s", a.FirstSuspect, a.SuspectTime, rec.Detection.AttackStart)
			}
			for _, p := range ps {
				if res.Suspect[p.ID] && p.Time.Before(rec.Detection.AttackStart) {
					t.Errorf("point %s taken before the attack is suspect", p.ID)
				}
				// Every point of the attack with encrypted blocks in
				// sight comes after the last clean one.
				if c := p.Disks[0].Churn; p.Time.After(rec.Detection.AttackStart) && signal(c) >= DefaultOnset && !res.Suspect[p.ID] {
					t.Errorf("point %s holds %d bytes of encrypted-looking overwrites from the attack and is not suspect", p.ID, signal(c))
				}
			}
			t.Logf("alert at %s (first suspect %s, last clean %s): %s", a.Trigger, a.FirstSuspect, a.LastClean, a.Reason())
		})
	}
}
