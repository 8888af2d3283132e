package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// catalogName names the vault objects (catalog/server.<version>) that
// hold the server's state, so a new control plane can be rebuilt from the
// vault when the machine that ran this one is lost (docs/orchestrator.md).
const catalogName = "server"

// catalogSeqFile, in state_dir, holds the newest catalog version this
// state wrote or was recovered from: the floor below which a catalog in
// the vault is a rollback (docs/vault-format.md).
const catalogSeqFile = "catalog-seq"

// catalogJobs bounds the job history kept in the catalog: the newest jobs
// are what an operator asks about after a disaster, and the object is
// rewritten whole on every change.
const catalogJobs = 500

// catalogFormat is the document's format: 2 added Format, Secrets,
// Schedules, Points and whole records of jobs in flight; a document
// without it (format 1) is read with those empty (docs/vault-format.md).
const catalogFormat = 2

// Catalog is what the server writes to the vault's catalog/server.
type Catalog struct {
	Format        int               `json:"format,omitempty"`
	Written       time.Time         `json:"written"`
	ConfigVersion int64             `json:"config_version"`
	Config        json.RawMessage   `json:"config,omitempty"`
	Plans         []store.PlanState `json:"plans,omitempty"`
	Drills        []store.Drill     `json:"drills,omitempty"` // newest first
	Jobs          []CatalogJob      `json:"jobs,omitempty"`   // newest first
	// Schedules are the plans' scheduled-drill states (the newest
	// instant handled, the drill in flight).
	Schedules []store.DrillSchedule `json:"drill_schedules,omitempty"`
	// Points is the point history since catalogPointsSince, per machine.
	Points  []CatalogPoints `json:"points,omitempty"`
	Secrets *CatalogSecrets `json:"secrets,omitempty"`
	// seq is the version it was read as: the vault keeps the counter
	// in the sealed object's header, not in this document.
	seq uint64
}

// CatalogJob is a job's summary: enough to answer "what ran, when, and
// how did it end". A job that a plan's state still names as its failover
// is kept whole (Record), since commit, cancel, reprotect and failback on
// a recovered server act on what it created and the config it ran with;
// so is a job in flight, which a recovered server can retry.
type CatalogJob struct {
	ID      string               `json:"id"`
	Plan    string               `json:"plan"`
	Type    string               `json:"type"`
	State   string               `json:"state"`
	Created time.Time            `json:"created"`
	Ended   *time.Time           `json:"ended,omitempty"`
	Error   string               `json:"error,omitempty"`
	Report  *orchestrator.Report `json:"report,omitempty"`
	Record  *CatalogRecord       `json:"record,omitempty"`
}

// CatalogRecord is the part of a job beyond its summary: its parameters,
// config snapshot, steps and outputs (points, disks, created resources).
type CatalogRecord struct {
	Params  json.RawMessage `json:"params,omitempty"`
	Config  json.RawMessage `json:"config"`
	Steps   []store.Step    `json:"steps"`
	Outputs json.RawMessage `json:"outputs,omitempty"`
}

// catalogWriter saves the catalog off the caller's path: a job ending or
// an apply only signals it, so a slow or unreachable vault never delays or
// fails a failover. A failed write is an alert (catalog-write) and is
// retried every retry until one succeeds, change or no change: the vault
// must not keep a stale catalog just because the plans stay quiet.
type catalogWriter struct {
	st    store.Store
	v     *vault.Vault
	log   *slog.Logger
	retry time.Duration
	kick  chan struct{}

	// seqFile keeps held across restarts ("" in memory only).
	seqFile string
	// secrets reads the credentials for the applied config (nil: none).
	secrets func(doc json.RawMessage) (*CatalogSecrets, error)

	mu      sync.Mutex
	failing *alert.CatalogWrite // nil while the last write worked
	held    uint64              // newest version this state wrote; 0 before loaded
	loaded  bool
}

func newCatalogWriter(st store.Store, v *vault.Vault, log *slog.Logger, retry time.Duration) *catalogWriter {
	return &catalogWriter{st: st, v: v, log: log, retry: retry, kick: make(chan struct{}, 1)}
}

// changed asks for a new catalog; changes that come while one is being
// written fold into the next write.
func (w *catalogWriter) changed() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// failure is the failing write the alert rules report, or nil.
func (w *catalogWriter) failure() *alert.CatalogWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing == nil {
		return nil
	}
	c := *w.failing
	return &c
}

// start writes catalogs until stop. stop then saves a change that came
// in meanwhile (jobs stopping with the server), so call it once jobs have
// stopped and before the vault closes.
func (w *catalogWriter) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var retry <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.kick:
			case <-retry:
			}
			retry = nil
			if !w.write(ctx) && ctx.Err() == nil {
				retry = time.After(w.retry)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		pending := w.failure() != nil
		select {
		case <-w.kick:
			pending = true
		default:
		}
		if pending {
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w.write(fctx)
		}
	}
}

// write saves the catalog and reports whether it did.
func (w *catalogWriter) write(ctx context.Context) bool {
	err := w.save(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		if w.failing != nil {
			w.log.Info("catalog saved to the vault again", "failing_since", w.failing.Since)
		}
		w.failing = nil
		return true
	case ctx.Err() != nil:
		w.changed() // cut short by stop: the final flush writes it
	default:
		if w.failing == nil {
			w.failing = &alert.CatalogWrite{Since: time.Now().UTC(), Retry: w.retry}
		}
		w.failing.Err = err.Error()
		w.log.Warn("catalog not saved to the vault", "err", err, "retry_in", w.retry)
	}
	return false
}

// save writes the catalog as a new version above every version in the
// vault and every version this state wrote, never over an existing one.
func (w *catalogWriter) save(ctx context.Context) error {
	c, err := buildCatalog(ctx, w.st)
	if err != nil {
		return err
	}
	if w.secrets != nil {
		if c.Secrets, err = w.secrets(c.Config); err != nil {
			return err
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if !w.loaded {
		if w.held, err = readCatalogSeq(w.seqFile); err != nil {
			return err
		}
		w.loaded = true
	}
	seqs, err := w.v.CatalogVersions(ctx, catalogName)
	if err != nil {
		return err
	}
	newest := uint64(0)
	if len(seqs) > 0 {
		newest = seqs[0]
	}
	if newest < w.held {
		w.log.Error("the vault lost catalog versions this server wrote (deleted by someone who can delete in the vault?); writing a newer one",
			"vault_newest", newest, "written_here", w.held)
	}
	next := max(newest, w.held)
	if next == math.MaxUint64 {
		return fmt.Errorf("catalog version %d in the vault: no version above it", next)
	}
	next++
	if err := w.v.WriteCatalog(ctx, catalogName, next, b); err != nil {
		return err
	}
	w.held = next
	return writeCatalogSeq(w.seqFile, next)
}

// readCatalogSeq reads the version a state holds; no file is 0.
func readCatalogSeq(file string) (uint64, error) {
	if file == "" {
		return 0, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %v (it holds the newest catalog version this state knows)", file, err)
	}
	return n, nil
}

func writeCatalogSeq(file string, seq uint64) error {
	if file == "" {
		return nil
	}
	return atomicfile.WriteFile(file, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600)
}

func buildCatalog(ctx context.Context, st store.Store) (*Catalog, error) {
	c := &Catalog{Format: catalogFormat, Written: time.Now().UTC()}
	var err error
	if c.ConfigVersion, c.Config, err = st.Config(ctx); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if c.Plans, err = planStates(ctx, c.Config, st); err != nil {
		return nil, err
	}
	if c.Drills, err = st.Drills(ctx, ""); err != nil {
		return nil, err
	}
	if c.Schedules, c.Points, err = catalogHistory(ctx, st, c.Config, c.Written); err != nil {
		return nil, err
	}
	jobs, err := st.Jobs(ctx, store.JobFilter{Limit: catalogJobs})
	if err != nil {
		return nil, err
	}
	if jobs, err = withHeld(ctx, st, c.Plans, jobs); err != nil {
		return nil, err
	}
	held := heldJobs(c.Plans)
	for _, j := range jobs {
		cj := CatalogJob{ID: j.ID, Plan: j.Plan, Type: string(j.Type), State: string(j.State), Created: j.Created, Ended: j.Ended, Error: j.Error}
		if rep, err := orchestrator.BuildReport(j); err == nil {
			cj.Report = rep
		}
		if held[j.ID] || store.Active(j.State) {
			cj.Record = &CatalogRecord{Params: j.Params, Config: j.Config, Steps: j.Steps, Outputs: j.Outputs}
		}
		c.Jobs = append(c.Jobs, cj)
	}
	return c, nil
}

// heldJobs are the failovers the plans' states name.
func heldJobs(plans []store.PlanState) map[string]bool {
	held := map[string]bool{}
	for _, ps := range plans {
		if ps.Failover != "" {
			held[ps.Failover] = true
		}
	}
	return held
}

// withHeld adds to jobs (newest first) the held and active jobs older
// than the newest catalogJobs: a plan failed over long ago still needs
// its failover's record, and a job failed long ago still holds its plan.
func withHeld(ctx context.Context, st store.Store, plans []store.PlanState, jobs []*store.Job) ([]*store.Job, error) {
	have := map[string]bool{}
	for _, j := range jobs {
		have[j.ID] = true
	}
	active, err := st.Jobs(ctx, store.JobFilter{Active: true})
	if err != nil {
		return nil, err
	}
	for _, j := range active {
		if !have[j.ID] {
			have[j.ID] = true
			jobs = append(jobs, j)
		}
	}
	for id := range heldJobs(plans) {
		if have[id] {
			continue
		}
		j, err := st.Job(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func planStates(ctx context.Context, doc json.RawMessage, st store.Store) ([]store.PlanState, error) {
	if doc == nil {
		return nil, nil
	}
	var cfg struct {
		Plans []struct {
			Name string `json:"name"`
		} `json:"plans"`
	}
	if err := json.Unmarshal(doc, &cfg); err != nil {
		return nil, err
	}
	var out []store.PlanState
	for _, p := range cfg.Plans {
		ps, err := st.PlanState(ctx, p.Name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, *ps)
	}
	return out, nil
}
