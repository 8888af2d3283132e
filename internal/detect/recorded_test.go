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
// and marks no point taken before it suspect (the benign workloads of the
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
			}
			t.Logf("alert at %s (first suspect %s, last clean %s): %s", a.Trigger, a.FirstSuspect, a.LastClean, a.Reason())
		})
	}
}
