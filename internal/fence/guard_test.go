package fence

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openGuard(t *testing.T, path string) *Guard {
	t.Helper()
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func seen(t *testing.T, g *Guard) int64 {
	t.Helper()
	e, err := g.Seen()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGuardRefusesStale: a newer epoch is taken and kept across a
// restart (a new Guard on the file), an older one is refused with the
// message operators see, the same one passes again.
func TestGuardRefusesStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leader-epoch")
	g := openGuard(t, path)
	for _, e := range []int64{1, 3, 3} {
		if err := g.Admit(e, true); err != nil {
			t.Fatalf("epoch %d: %v", e, err)
		}
	}
	g = openGuard(t, path) // the receiver restarted
	if got := seen(t, g); got != 3 {
		t.Fatalf("seen %d after restart, want 3", got)
	}
	err := g.Admit(2, true)
	var se *StaleError
	if !errors.Is(err, ErrStale) || !errors.As(err, &se) || se.Epoch != 2 || se.Seen != 3 {
		t.Fatalf("epoch 2 after 3: %v", err)
	}
	if !strings.Contains(err.Error(), "stale leader epoch 2 < 3") {
		t.Fatalf("message %q", err)
	}
	if got := seen(t, g); got != 3 {
		t.Fatalf("a refused epoch changed the guard to %d", got)
	}
}

// TestGuardNoEpoch: a call without an epoch passes while no HA leader
// ever came (a single server) and is refused after one did, so a deposed
// leader cannot leave it out; removing the file resets it.
func TestGuardNoEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leader-epoch")
	g := openGuard(t, path)
	if err := g.Check(context.Background()); err != nil {
		t.Fatalf("no epoch on a fresh guard: %v", err)
	}
	if err := g.Check(WithEpoch(context.Background(), 5)); err != nil {
		t.Fatal(err)
	}
	err := g.Check(context.Background())
	var se *StaleError
	if !errors.As(err, &se) || !se.Missing || !strings.Contains(err.Error(), path) {
		t.Fatalf("no epoch after epoch 5: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(context.Background()); err != nil {
		t.Fatalf("no epoch after reset: %v", err)
	}
}

// TestGuardConcurrent: many goroutines on two Guards of one file (two
// processes sharing a host, each with its own mutex: only the flock
// orders them) admit epochs in mixed order; no lower epoch overwrites a
// higher one, so the highest ends on disk and an older one is refused.
func TestGuardConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leader-epoch")
	gs := []*Guard{openGuard(t, path), openGuard(t, path)}
	var wg sync.WaitGroup
	var refused, taken sync.Map
	for i := range 400 {
		e := int64((i*37)%100 + 1)
		wg.Go(func() {
			if err := gs[i%2].Admit(e, true); err == nil {
				taken.Store(e, true)
			} else if errors.Is(err, ErrStale) {
				refused.Store(e, true)
			} else {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := seen(t, gs[0]); got != 100 {
		t.Fatalf("seen %d, want 100", got)
	}
	if _, ok := taken.Load(int64(100)); !ok {
		t.Fatal("the highest epoch was refused")
	}
	if err := gs[1].Admit(99, true); !errors.Is(err, ErrStale) {
		t.Fatalf("99 after 100: %v", err)
	}
}

// TestGuardHTTP: the middleware answers 409 with the stale message and
// never calls the handler; an operator's mark passes; a bad header is 400.
func TestGuardHTTP(t *testing.T) {
	g := openGuard(t, filepath.Join(t.TempDir(), "leader-epoch"))
	calls := 0
	srv := httptest.NewServer(g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ })))
	defer srv.Close()
	do := func(hdr string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
		if hdr != "" {
			req.Header.Set(Header, hdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error
	}
	if code, _ := do("7"); code != 200 {
		t.Fatalf("epoch 7: %d", code)
	}
	if code, msg := do("6"); code != http.StatusConflict || !strings.Contains(msg, "stale leader epoch 6 < 7") {
		t.Fatalf("epoch 6: %d %q", code, msg)
	}
	if code, _ := do(""); code != http.StatusConflict {
		t.Fatalf("no epoch after 7: %d", code)
	}
	if code, _ := do(Operator); code != 200 {
		t.Fatalf("operator: %d", code)
	}
	if code, _ := do("-1"); code != http.StatusBadRequest {
		t.Fatalf("bad header: %d", code)
	}
	if calls != 2 {
		t.Fatalf("handler called %d times, want 2", calls)
	}
}

// TestSetHeader: the sender's side puts the context's epoch on the wire.
func TestSetHeader(t *testing.T) {
	req := httptest.NewRequestWithContext(WithEpoch(context.Background(), 42), http.MethodPost, "/", nil)
	SetHeader(req)
	if got := req.Header.Get(Header); got != "42" {
		t.Fatalf("header %q", got)
	}
	req = httptest.NewRequest(http.MethodPost, "/", nil)
	SetHeader(req)
	if _, ok := req.Header[Header]; ok {
		t.Fatal("header set without an epoch")
	}
}
