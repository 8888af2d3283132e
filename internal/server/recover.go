package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// ErrStateExists: recovering would replace a server's state.
var ErrStateExists = errors.New("a server's state already exists")

// ErrCatalogRollback: the newest catalog in the vault that verifies is
// older than the one this state already holds.
var ErrCatalogRollback = errors.New("the vault's catalog is older than this state")

// RecoverFromVault rebuilds the server's state (state.db) from the catalog
// the last control plane wrote to the vault: the applied config, plan
// states, drill history and schedules, point history, and jobs (ended
// ones as records; a failover in flight as failed, to retry or cancel);
// and the credentials a blank machine lacks (token files the config
// names, token hashes, the TLS CA), which are written before the state.
// It refuses when state.db exists, unless force, which moves it aside
// (nothing is deleted). The new state.db appears whole or not at all. With
// a PostgreSQL state (cfg.State) it fills that database, which must be empty.
func RecoverFromVault(ctx context.Context, cfg *Config, force bool, log *slog.Logger) error {
	if cfg.State != "" {
		return recoverPostgres(ctx, cfg, force, log)
	}
	db := filepath.Join(cfg.StateDir, "state.db")
	_, err := os.Stat(db)
	exists := err == nil
	if exists && !force {
		return fmt.Errorf("%w: %s exists; --recover-from-vault would replace it (add --force to move it aside first)", ErrStateExists, db)
	}
	c, err := readCatalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := restoreSecrets(cfg, c.Secrets, log); err != nil {
		return err
	}
	tmp := filepath.Join(cfg.StateDir, ".recovering")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := fillStore(ctx, filepath.Join(tmp, "state.db"), c, log); err != nil {
		return fmt.Errorf("rebuild state: %w", err)
	}
	if exists {
		aside := db + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		if err := moveDB(db, aside); err != nil {
			return err
		}
		log.Warn("existing state moved aside", "to", aside)
	}
	if err := moveDB(filepath.Join(tmp, "state.db"), db); err != nil {
		return err
	}
	logRecovered(log, c)
	return writeCatalogSeq(filepath.Join(cfg.StateDir, catalogSeqFile), c.seq)
}

// recoverPostgres fills an empty database. It cannot be moved aside or
// swapped in whole like a file, so a database that holds a config is
// refused even with force, and the config goes in last: a recovery cut
// short is seen as one by the next try instead of as a server's state.
func recoverPostgres(ctx context.Context, cfg *Config, force bool, log *slog.Logger) error {
	if force {
		return fmt.Errorf("%w: --force moves a SQLite state.db aside; with a PostgreSQL state, recover into an empty database", ErrConfig)
	}
	st, err := store.OpenPostgres(ctx, cfg.State)
	if err != nil {
		return err
	}
	defer st.Close()
	if v, _, err := st.Config(ctx); err == nil {
		return fmt.Errorf("%w: the state database already holds config version %d; recover into an empty database", ErrStateExists, v)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if jobs, err := st.Jobs(ctx, store.JobFilter{Limit: 1}); err != nil {
		return err
	} else if len(jobs) > 0 {
		return fmt.Errorf("%w: the state database holds jobs but no config (a recovery cut short?); recover into an empty database", ErrStateExists)
	}
	c, err := readCatalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := restoreSecrets(cfg, c.Secrets, log); err != nil {
		return err
	}
	if err := putCatalog(ctx, st, c, log); err != nil {
		return fmt.Errorf("rebuild state: %w", err)
	}
	logRecovered(log, c)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return err
	}
	return writeCatalogSeq(filepath.Join(cfg.StateDir, catalogSeqFile), c.seq)
}

func logRecovered(log *slog.Logger, c *Catalog) {
	log.Info("state recovered from the vault", "catalog_version", c.seq, "catalog_format", max(c.Format, 1), "catalog_written", c.Written,
		"config_version", c.ConfigVersion, "plans", len(c.Plans), "drills", len(c.Drills), "drill_schedules", len(c.Schedules),
		"machines_with_point_history", len(c.Points), "jobs", len(c.Jobs))
}

// moveDB renames a SQLite file with its journal files, if any.
func moveDB(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if err := os.Rename(from+sfx, to+sfx); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// readCatalog reads the newest catalog version that verifies, saying
// which newer ones it passed over, and refuses one older than the version
// the state in cfg.StateDir already holds (a rollback).
func readCatalog(ctx context.Context, cfg *Config, log *slog.Logger) (*Catalog, error) {
	held, err := readCatalogSeq(filepath.Join(cfg.StateDir, catalogSeqFile))
	if err != nil {
		return nil, err
	}
	v, err := cfg.openVault(ctx)
	if err != nil {
		return nil, err
	}
	defer v.Backend().Close()
	defer v.Close()
	seq, b, skipped, err := v.LatestCatalog(ctx, catalogName)
	for _, e := range skipped {
		log.Warn("catalog version does not verify (damaged, or replaced by someone who can write to the vault); using an older one", "err", e)
	}
	if errors.Is(err, vault.ErrMissing) {
		return nil, fmt.Errorf("no server catalog in the vault (%w): no control plane has applied a config with this vault yet", err)
	} else if err != nil {
		return nil, fmt.Errorf("no server catalog in the vault verifies: %w", err)
	}
	if seq < held {
		return nil, fmt.Errorf("%w: the newest catalog in the vault that verifies is version %d, older than version %d that this state already holds (%s): "+
			"newer versions were deleted or replaced; refusing to roll the control plane back", ErrCatalogRollback, seq, held,
			filepath.Join(cfg.StateDir, catalogSeqFile))
	}
	c := Catalog{seq: seq}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("server catalog version %d: %w", seq, err)
	}
	if len(c.Config) == 0 {
		return nil, fmt.Errorf("the vault's catalog (version %d, written %s) holds no applied config: nothing to recover", seq, c.Written.Format(time.RFC3339))
	}
	return &c, nil
}

func fillStore(ctx context.Context, path string, c *Catalog, log *slog.Logger) error {
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return err
	}
	return errors.Join(putCatalog(ctx, st, c, log), st.Close())
}

func putCatalog(ctx context.Context, st store.Store, c *Catalog, log *slog.Logger) error {
	for _, ps := range c.Plans {
		if ps.Test != "" {
			// The test copy ran on the lost machine; cleanup has
			// nothing to remove, and a held test would block failover.
			log.Warn("plan had a test failover up; its copy is gone with the old server", "plan", ps.Plan, "job", ps.Test)
			ps.Test = ""
		}
		if err := st.PutPlanState(ctx, &ps); err != nil {
			return err
		}
	}
	for i := len(c.Drills) - 1; i >= 0; i-- { // oldest first: Drills lists newest first
		if err := st.AddDrill(ctx, c.Drills[i]); err != nil {
			return err
		}
	}
	for i := len(c.Jobs) - 1; i >= 0; i-- {
		j := recoveredJob(c.Jobs[i], c.Written)
		if store.Active(j.State) {
			log.Warn("job was in flight when the control plane was lost; recovered as failed: haven job retry runs it again here, haven job cancel undoes it",
				"job", j.ID, "plan", j.Plan, "type", j.Type)
		}
		if err := st.CreateJob(ctx, j); err != nil {
			return err
		}
	}
	if err := putHistory(ctx, st, c); err != nil {
		return err
	}
	_, err := st.PutConfig(ctx, c.Config)
	return err
}

// recoveredJob is a catalog entry as a job. A failover kept whole keeps
// its config snapshot, steps and outputs, so the jobs that follow it
// (commit, cancel, reprotect, failback) can load it. A job in flight when
// the catalog was written ran on the lost machine: with its whole record
// (format 2) it comes back failed, holding its plan, with every step to
// run again (each is a reconcile: it does on this server's host what is
// missing), so `haven job retry` finishes it and `haven job cancel` undoes
// it; one being canceled goes on with its undo at start. A test copy's
// jobs and those without a record end canceled.
func recoveredJob(cj CatalogJob, written time.Time) *store.Job {
	j := &store.Job{ID: cj.ID, Plan: cj.Plan, Type: store.JobType(cj.Type), State: store.JobState(cj.State), Created: cj.Created,
		Updated: written, Ended: cj.Ended, Error: cj.Error}
	if cj.Report != nil {
		j.Report, _ = json.Marshal(cj.Report)
	}
	if rec := cj.Record; rec != nil {
		j.Params, j.Config, j.Steps, j.Outputs = rec.Params, rec.Config, rec.Steps, rec.Outputs
	}
	if j.State == store.Canceling && cj.Record != nil && !testJob(j.Type) {
		return j // the server resumes its undo at start, as after a restart
	}
	if store.Active(j.State) && cj.Record != nil && !testJob(j.Type) {
		j.Error = fmt.Sprintf("was %s when the control plane was lost (recovered from the vault): haven job retry runs it again, haven job cancel undoes it", cj.State)
		if cj.Error != "" {
			j.Error += ": " + cj.Error
		}
		j.State, j.Ended = store.Failed, nil
		orchestrator.RerunAll(j)
		return j
	}
	if store.Active(j.State) {
		j.Error = fmt.Sprintf("was %s when the control plane was lost (recovered from the vault, not resumed)", cj.State)
		if cj.Error != "" {
			j.Error += ": " + cj.Error
		}
		j.State = store.Canceled
	}
	if j.Ended == nil {
		j.Ended = &written
	}
	return j
}

// testJob: a drill's jobs, whose copy was on the lost machine.
func testJob(t store.JobType) bool {
	return t == orchestrator.TestFailover || t == orchestrator.TestCleanup
}
