package fence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Guard is a receiver's memory of the highest leader epoch it obeyed, in
// a file. Several processes may share one guard file (the servers of one
// machine share its recovery host): a flock on path+".lock" makes their
// check-and-raise one step, the mutex does the same between goroutines.
//
// The check is taken when a call arrives, not held while it runs: a call
// that passed before a newer leader's first call may still finish after
// it. The new leader re-runs the step that was cut, and every step is a
// reconcile, so what it does last is what stays.
type Guard struct {
	path string
	mu   sync.Mutex
	mem  int64 // the epoch of a guard without a file
}

// Open returns the guard kept in path (created on the first epoch, in a
// directory that must exist then); with path "" it is kept in memory
// only, for a receiver that keeps no state.
func Open(path string) (*Guard, error) {
	if path == "" {
		return &Guard{}, nil
	}
	g := &Guard{path: path}
	if _, err := g.read(); err != nil {
		return nil, err
	}
	return g, nil
}

// Path is the guard file; removing it (receiver stopped) resets the
// guard, for a deployment that leaves HA.
func (g *Guard) Path() string { return g.path }

// Seen is the highest epoch obeyed so far (0: none).
func (g *Guard) Seen() (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.read()
}

// Admit takes a call of epoch e (has false: the call carried none) or
// refuses it with a *StaleError. A newer epoch is on disk before Admit
// returns, so a restart cannot forget it.
func (g *Guard) Admit(e int64, has bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !has {
		// Only a raise needs the lock: the file is replaced whole, so a
		// read sees an epoch some call was admitted with.
		seen, err := g.read()
		if err == nil && seen > 0 {
			err = &StaleError{Seen: seen, Missing: true, File: g.path}
		}
		return err
	}
	unlock, err := g.lock()
	if err != nil {
		return err
	}
	defer unlock()
	seen, err := g.read()
	switch {
	case err != nil:
		return err
	case e == seen:
		return nil
	case e < seen:
		return &StaleError{Epoch: e, Seen: seen, File: g.path}
	}
	if g.path == "" {
		g.mem = e
		return nil
	}
	return writeAtomic(g.path, []byte(strconv.FormatInt(e, 10)+"\n"))
}

// Check admits the epoch ctx carries (none if it carries none).
func (g *Guard) Check(ctx context.Context) error {
	e, ok := From(ctx)
	return g.Admit(e, ok)
}

// CheckRequest admits the epoch of an HTTP request's Header; a call an
// operator marked as theirs passes.
func (g *Guard) CheckRequest(r *http.Request) error {
	e, has, operator, err := parse(r)
	if err != nil || operator {
		return err
	}
	return g.Admit(e, has)
}

// Wrap guards next: a request from a stale leader is answered 409
// Conflict with {"error": "stale leader epoch N < M: ..."}, before next
// sees it.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := g.CheckRequest(r)
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		code := http.StatusInternalServerError
		var se *StaleError
		switch {
		case errors.As(err, &se):
			code = http.StatusConflict
		case errors.Is(err, ErrBadHeader):
			code = http.StatusBadRequest
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // "N < M" stays readable in a raw body
		enc.Encode(map[string]string{"error": err.Error()})
	})
}

func (g *Guard) read() (int64, error) {
	if g.path == "" {
		return g.mem, nil
	}
	b, err := os.ReadFile(g.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fence: %w", err)
	}
	e, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || e < 0 {
		return 0, fmt.Errorf("fence: %s: not an epoch: %q", g.path, b)
	}
	return e, nil
}

func (g *Guard) lock() (unlock func(), err error) {
	if g.path == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(g.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fence: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("fence: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// writeAtomic leaves the old or the new epoch after a crash, never a torn
// or empty file (which would read as "no epoch yet").
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fence: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
