package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/haven-dr/haven/internal/store"
)

// CatalogPoints is one machine's point history (what the SLA report
// measures RPO from) in columns: the catalog is rewritten whole on every
// change, and a machine snapshotting every 15 s records 5,760 points a
// day. Entry i of each column is one point.
type CatalogPoints struct {
	Machine string `json:"machine"`
	// Captured is each point's capture time in Unix nanoseconds, the
	// first absolute and each next one as the difference to the one
	// before (records are oldest first).
	Captured []int64 `json:"captured"`
	// IDs are the point IDs; "" stands for the usual ID whose time part
	// is the capture time, of which Suffixes then holds the rest.
	IDs         []string  `json:"ids"`
	Suffixes    []string  `json:"suffixes"`
	Targets     []float64 `json:"targets"` // RPO target seconds, 0: unknown
	Consistency []string  `json:"consistency"`
}

// pointIDTime is the time part of a vault point ID (vault.newPointID).
const pointIDTime = "20060102T150405.000Z"

// catalogPointsSince is where the catalog's point history starts: the
// first of the previous month (UTC), so this month's and last month's
// reports come back whole after a recovery. Older history stays in the
// state only.
func catalogPointsSince(now time.Time) time.Time {
	y, m, _ := now.UTC().Date()
	return time.Date(y, m-1, 1, 0, 0, 0, 0, time.UTC)
}

// packPoints puts a machine's records (oldest first) in columns.
func packPoints(machine string, recs []store.PointRecord) CatalogPoints {
	cp := CatalogPoints{Machine: machine}
	var prev int64
	for i, r := range recs {
		ns := r.Captured.UnixNano()
		if i == 0 {
			cp.Captured = append(cp.Captured, ns)
		} else {
			cp.Captured = append(cp.Captured, ns-prev)
		}
		prev = ns
		id, sfx := r.Point, ""
		if t := r.Captured.UTC().Format(pointIDTime) + "-"; len(id) > len(t) && id[:len(t)] == t {
			id, sfx = "", id[len(t):]
		}
		cp.IDs = append(cp.IDs, id)
		cp.Suffixes = append(cp.Suffixes, sfx)
		cp.Targets = append(cp.Targets, r.TargetSeconds)
		cp.Consistency = append(cp.Consistency, r.Consistency)
	}
	return cp
}

// records unpacks the columns; seen is the recovered records' Seen (the
// catalog's writing: the first time the new state knows of them).
func (cp CatalogPoints) records(seen time.Time) ([]store.PointRecord, error) {
	n := len(cp.Captured)
	if len(cp.IDs) != n || len(cp.Suffixes) != n || len(cp.Targets) != n || len(cp.Consistency) != n {
		return nil, fmt.Errorf("point history of %s: columns of different lengths", cp.Machine)
	}
	out := make([]store.PointRecord, n)
	var ns int64
	for i := range n {
		if i == 0 {
			ns = cp.Captured[0]
		} else {
			ns += cp.Captured[i]
		}
		t := time.Unix(0, ns).UTC()
		id := cp.IDs[i]
		if id == "" {
			id = t.Format(pointIDTime) + "-" + cp.Suffixes[i]
		}
		out[i] = store.PointRecord{Machine: cp.Machine, Point: id, Captured: t, Seen: seen,
			Consistency: cp.Consistency[i], TargetSeconds: cp.Targets[i]}
	}
	return out, nil
}

// catalogHistory reads the drill schedules of the config's plans and
// the point history of its machines since catalogPointsSince.
func catalogHistory(ctx context.Context, st store.Store, doc json.RawMessage, now time.Time) ([]store.DrillSchedule, []CatalogPoints, error) {
	if doc == nil {
		return nil, nil, nil
	}
	var cfg struct {
		Plans []struct {
			Name string `json:"name"`
		} `json:"plans"`
		Machines []struct {
			Name string `json:"name"`
		} `json:"machines"`
	}
	if err := json.Unmarshal(doc, &cfg); err != nil {
		return nil, nil, err
	}
	var scheds []store.DrillSchedule
	for _, p := range cfg.Plans {
		ds, err := st.DrillSchedule(ctx, p.Name)
		if err != nil {
			return nil, nil, err
		}
		if ds.Version > 0 {
			scheds = append(scheds, *ds)
		}
	}
	var pts []CatalogPoints
	since := catalogPointsSince(now)
	for _, m := range cfg.Machines {
		recs, err := st.PointHistory(ctx, m.Name, since, now.Add(24*time.Hour))
		if err != nil {
			return nil, nil, err
		}
		if len(recs) > 0 {
			pts = append(pts, packPoints(m.Name, recs))
		}
	}
	return scheds, pts, nil
}

// putHistory restores drill schedules and point history.
func putHistory(ctx context.Context, st store.Store, c *Catalog) error {
	for _, ds := range c.Schedules {
		ds.Version = 0 // created in the new state
		if err := st.PutDrillSchedule(ctx, &ds); err != nil {
			return fmt.Errorf("drill schedule of %s: %w", ds.Plan, err)
		}
	}
	var errs []error
	for _, cp := range c.Points {
		recs, err := cp.records(c.Written)
		if err == nil {
			err = st.AddPoints(ctx, recs)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
