// Package orchtest holds in-memory fakes of what the orchestrator drives
// (the recovery host, the primary sites' agents and the traffic manager),
// with failure injection and a record of every call, so engine tests run
// in seconds without root. It does not import the orchestrator: the fakes
// satisfy its interfaces structurally, and in-package tests of
// internal/orchestrator wire them in.
//
// Points are real: the fake agents snapshot small disk files into a real
// file vault and the fake host restores them from it, so point selection,
// reprotect's replication back and failback's restore run the real code.
package orchtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrInjected is the error an injected failure returns unless the test
// gave another.
var ErrInjected = errors.New("orchtest: injected failure")

// Call is one recorded call to a fake. Method names the fake's method
// ("EnsureSite", "StartMachine", "Agent.Stop", "Traffic.UpdateEndpoint"
// ...); the other fields are what it acted on, empty when not relevant.
type Call struct {
	Method  string
	Site    string
	Machine string // machine, or profile/endpoint for Traffic
	Disk    string
	Path    string
	Point   string
	Agent   string
	Err     error // what the call returned
}

func (c Call) String() string {
	return fmt.Sprintf("%s(site=%s machine=%s disk=%s path=%s point=%s agent=%s) err=%v",
		c.Method, c.Site, c.Machine, c.Disk, c.Path, c.Point, c.Agent, c.Err)
}

// Faults records calls and injects failures. Every fake embeds one; its
// methods are safe for concurrent use.
type Faults struct {
	mu     sync.Mutex
	calls  []*Call
	n      map[string]int
	fails  map[string]map[int]error
	blocks map[string][]*Blocker
	hook   func(ctx context.Context, c Call) error
	// lost: the fake stopped answering (a dead machine): every call fails.
	lost error
}

// Lose makes the fake stop answering, as a machine that died: every
// call from now fails with err (ErrInjected when nil).
func (f *Faults) Lose(err error) {
	if err == nil {
		err = ErrInjected
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost = err
}

// Back makes a lost fake answer again, as a machine that came back with
// what it kept on disk.
func (f *Faults) Back() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost = nil
}

// Ping fails once the fake is lost.
func (f *Faults) Ping(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lost
}

// Blocker holds the next call of a method until Release.
type Blocker struct {
	// Entered is closed when the blocked call arrives.
	Entered chan struct{}
	release chan struct{}
	once    sync.Once
}

// Release lets the blocked call (and any later one this blocker holds) go.
func (b *Blocker) Release() { b.once.Do(func() { close(b.release) }) }

// FailNth makes the nth call of method (1-based, counted from the fake's
// creation, see Count) return err once; nil err means ErrInjected.
func (f *Faults) FailNth(method string, n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails == nil {
		f.fails = map[string]map[int]error{}
	}
	if f.fails[method] == nil {
		f.fails[method] = map[int]error{}
	}
	f.fails[method][n] = err
}

// FailNext makes the next call of method return err once.
func (f *Faults) FailNext(method string, err error) {
	f.FailNth(method, f.Count(method)+1, err)
}

// Block holds the next call of method until the blocker is released or
// the call's context ends (the call then returns the context's error).
func (f *Faults) Block(method string) *Blocker {
	b := &Blocker{Entered: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocks == nil {
		f.blocks = map[string][]*Blocker{}
	}
	f.blocks[method] = append(f.blocks[method], b)
	return b
}

// SetHook installs fn, called before every call with what it is about to
// do; a non-nil error fails the call with it. A test "crashes" the server
// there (closes the orchestrator) or checks an invariant. nil removes it.
func (f *Faults) SetHook(fn func(ctx context.Context, c Call) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = fn
}

// Count is how many calls of method were made (failed ones included).
func (f *Faults) Count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[method]
}

// Calls returns a copy of the record.
func (f *Faults) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Call, len(f.calls))
	for i, c := range f.calls {
		out[i] = *c
	}
	return out
}

// ResetCalls forgets the record (not the counts FailNth refers to).
func (f *Faults) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// enter counts and records c, runs the hook, waits at a blocker and
// returns an injected failure if one is due. The fake does the work only
// when it returns nil; done records the outcome.
func (f *Faults) enter(ctx context.Context, c Call) (done func(error) error, err error) {
	f.mu.Lock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[c.Method]++
	nth := f.n[c.Method]
	injected := f.fails[c.Method][nth]
	delete(f.fails[c.Method], nth)
	var b *Blocker
	if bs := f.blocks[c.Method]; len(bs) > 0 {
		b, f.blocks[c.Method] = bs[0], bs[1:]
	}
	hook := f.hook
	rec := &c
	f.calls = append(f.calls, rec)
	f.mu.Unlock()
	done = func(err error) error {
		f.mu.Lock()
		rec.Err = err
		f.mu.Unlock()
		return err
	}
	if err := ctx.Err(); err != nil {
		// As a real client: a canceled caller's call does nothing.
		return done, done(err)
	}
	if err := f.Ping(ctx); err != nil {
		return done, done(err)
	}
	if hook != nil {
		if err := hook(ctx, c); err != nil {
			return done, done(err)
		}
	}
	if b != nil {
		close(b.Entered)
		select {
		case <-b.release:
		case <-ctx.Done():
			return done, done(ctx.Err())
		}
	}
	if injected != nil {
		return done, done(injected)
	}
	return done, nil
}
