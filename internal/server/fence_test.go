package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
)

// recorder is a Host and an AgentClient that note the epoch each order
// came with (-1: none).
type recorder struct {
	host.Host
	orchestrator.AgentClient
	got []int64
}

func (r *recorder) note(ctx context.Context) error {
	e, ok := fence.From(ctx)
	if !ok {
		e = -1
	}
	r.got = append(r.got, e)
	return nil
}

func (r *recorder) StopMachine(ctx context.Context, site, name string) error { return r.note(ctx) }
func (r *recorder) Stop(ctx context.Context, m string) error                 { return r.note(ctx) }

// TestFencedOrders: the wrappers give the host and the agents each order
// with the leader's epoch while PostgreSQL says it leads, and stop it
// before it leaves once another server took the lease; without HA an
// order leaves as it is.
func TestFencedOrders(t *testing.T) {
	pg := testenv.StartPostgres(t, "fsync=off")
	if _, err := pg.Query(t.Context(), "CREATE DATABASE hvfence"); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	open := func() *store.Postgres {
		s, err := store.OpenPostgres(ctx, pg.URL("hvfence"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := newLease(open()), newLease(open())
	e, ok, err := a.pg.Acquire(ctx, a.holder, "http://a", time.Second)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	a.epoch.Store(e)
	rec := &recorder{}
	h := fencedHost{rec, a.enter}
	ag, _ := fencedAgents(func(protection.Agent) (orchestrator.AgentClient, error) { return rec, nil }, a.enter)(protection.Agent{})
	if err := h.StopMachine(ctx, "rec", "web"); err != nil {
		t.Fatal(err)
	}
	if err := ag.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}

	time.Sleep(1100 * time.Millisecond) // a's lease ends unrenewed (a froze)
	if _, ok, err := b.pg.Acquire(ctx, b.holder, "http://b", time.Minute); err != nil || !ok {
		t.Fatalf("b takes over: %v %v", ok, err)
	}
	if err := h.StopMachine(ctx, "rec", "web"); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's host order: %v", err)
	}
	if err := ag.Stop(ctx, "web"); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("deposed leader's agent order: %v", err)
	}
	a.epoch.Store(0) // the watchdog noticed
	if err := h.StopMachine(ctx, "rec", "web"); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("order after the lease was lost: %v", err)
	}
	var single *lease
	if err := (fencedHost{rec, single.enter}).StopMachine(ctx, "rec", "web"); err != nil {
		t.Fatal(err)
	}
	if want := []int64{e, e, -1}; len(rec.got) != 3 || rec.got[0] != want[0] || rec.got[1] != want[1] || rec.got[2] != want[2] {
		t.Fatalf("orders reached the host and agent with epochs %v, want %v", rec.got, want)
	}
}

// TestEveryOrderIsFenced: every method of the host, an agent and the
// traffic manager that is not a read on a short list goes through the
// fence, so a method added later to one of these interfaces without its
// fenced wrapper fails here instead of slipping past the epoch check.
func TestEveryOrderIsFenced(t *testing.T) {
	deny := errors.New("denied by the fence")
	enter := func(context.Context) (context.Context, error) { return nil, deny }
	ag, _ := fencedAgents(func(protection.Agent) (orchestrator.AgentClient, error) { return nil, nil }, enter)(protection.Agent{})
	tr, _ := fencedTraffic(func(*protection.Traffic) (orchestrator.Traffic, error) { return nil, nil }, enter)(nil)
	for _, c := range []struct {
		iface reflect.Type
		impl  any
		reads []string
	}{
		{reflect.TypeFor[host.Host](), fencedHost{nil, enter}, []string{"SiteNS", "Running", "WaitHealthy"}},
		{reflect.TypeFor[host.OverlayHost](), fencedHost{nil, enter}, []string{"SiteNS", "Running", "WaitHealthy", "UnderlayAddr"}},
		{reflect.TypeFor[host.Fencer](), fencedHost{nil, enter}, nil},
		{reflect.TypeFor[host.BackReplicator](), fencedHost{nil, enter}, []string{"ReplicationReady"}},
		{reflect.TypeFor[orchestrator.AgentClient](), ag, []string{"Status"}},
		{reflect.TypeFor[orchestrator.Traffic](), tr, []string{"Profile", "Answers"}},
	} {
		v := reflect.ValueOf(c.impl)
		for i := range c.iface.NumMethod() {
			m := c.iface.Method(i)
			if slices.Contains(c.reads, m.Name) {
				continue
			}
			if err := callZero(v.MethodByName(m.Name)); !errors.Is(err, deny) {
				t.Errorf("%s.%s is not fenced: %v", c.iface, m.Name, err)
			}
		}
	}
}

// callZero calls fn with a context and zero values; reaching the
// wrapped nil implementation panics, which is reported as an error.
func callZero(fn reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reached the unfenced implementation: %v", r)
		}
	}()
	ft := fn.Type()
	args := make([]reflect.Value, ft.NumIn())
	for i := range args {
		args[i] = reflect.Zero(ft.In(i))
		if ft.In(i) == reflect.TypeFor[context.Context]() {
			args[i] = reflect.ValueOf(context.Background())
		}
	}
	out := fn.Call(args)
	if last := out[len(out)-1]; !last.IsNil() {
		return last.Interface().(error)
	}
	return nil
}

// TestNotLeaderIsRetryable: a write fenced off by a change of leader
// answers 503 `unavailable` with Retry-After (nothing was written, so the
// client sends it again), not a 500.
func TestNotLeaderIsRetryable(t *testing.T) {
	w := httptest.NewRecorder()
	writeError(w, fmt.Errorf("create job: %w", store.ErrNotLeader))
	var e api.Error
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != http.StatusServiceUnavailable ||
		e.Code != api.CodeUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("fenced write answered %d %q (Retry-After %q), want 503 unavailable with Retry-After", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
}
