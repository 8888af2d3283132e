// Package fence carries the HA leader's epoch from the server to the
// parts it drives (agents, `haven dns`, the recovery host), which refuse
// an order from a leader older than one they already obeyed.
//
// The store fences the leader's own writes (store.Postgres.Fenced), but a
// leader frozen between a save and a side effect wakes up with the side
// effect still to do, on a lease another server took meanwhile. Every
// mutating call therefore carries the epoch (in a context in process, in
// the Header over HTTP), and each receiver keeps the highest epoch it has
// seen in a Guard, persisted so a restart does not forget it.
//
// A call without an epoch comes from a server without HA (SQLite, or
// PostgreSQL without `ha:`) or from an operator's tool. A receiver that
// never saw an epoch takes it; once it has obeyed an HA leader it refuses
// it (a deposed leader cannot slip past by leaving the epoch out) until
// its guard file is removed. An operator's own call says so with the
// header value Operator and is always taken: a human acting by hand is
// not a stale leader.
package fence

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Header is the HTTP request header that carries the epoch.
const Header = "Haven-Leader-Epoch"

// Operator is the Header value of a call made by an operator's tool
// (the CLI), not by a server.
const Operator = "operator"

// ErrStale is what a receiver answers an order from a deposed leader
// (errors.Is); over HTTP it is a 409 Conflict.
var ErrStale = errors.New("stale leader epoch")

// ErrBadHeader: the Header holds neither an epoch nor Operator (400).
var ErrBadHeader = errors.New("bad " + Header + " header")

// StaleError says which epoch was refused and which the receiver holds.
type StaleError struct {
	Epoch   int64 // 0 when the call carried none
	Seen    int64
	Missing bool   // the call carried no epoch
	File    string // the receiver's guard file, to name in the reset hint
}

func (e *StaleError) Error() string {
	if e.Missing {
		return fmt.Sprintf("%v: the request carries no leader epoch but this receiver obeys HA leaders (epoch %d); "+
			"a server without ha: may drive it only after %s is removed", ErrStale, e.Seen, e.File)
	}
	return fmt.Sprintf("%v %d < %d: another server leads now", ErrStale, e.Epoch, e.Seen)
}

func (e *StaleError) Unwrap() error { return ErrStale }

type ctxKey struct{}

// WithEpoch returns ctx carrying the leader epoch e (> 0).
func WithEpoch(ctx context.Context, e int64) context.Context {
	return context.WithValue(ctx, ctxKey{}, e)
}

// From returns the epoch ctx carries; ok is false without one.
func From(ctx context.Context) (e int64, ok bool) {
	e, ok = ctx.Value(ctxKey{}).(int64)
	return e, ok
}

// SetHeader puts the epoch of req's context into its Header (nothing
// without one).
func SetHeader(req *http.Request) {
	if e, ok := From(req.Context()); ok {
		req.Header.Set(Header, strconv.FormatInt(e, 10))
	}
}

// parse reads the Header: an epoch, none, or the operator's mark.
func parse(r *http.Request) (e int64, has, operator bool, err error) {
	v := strings.TrimSpace(r.Header.Get(Header))
	switch v {
	case "":
		return 0, false, false, nil
	case Operator:
		return 0, false, true, nil
	}
	e, err = strconv.ParseInt(v, 10, 64)
	if err != nil || e <= 0 {
		return 0, false, false, fmt.Errorf("%w: %q is not a positive epoch", ErrBadHeader, v)
	}
	return e, true, false, nil
}
