package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

const locksPrefix = "locks/"

// Lock leases: a writer refreshes its lock every LockRefresh; a lock not
// refreshed for LockLease belongs to a dead process and is ignored.
var (
	LockLease   = 90 * time.Second
	LockRefresh = 20 * time.Second
)

// Lock kinds. Snapshots take shared locks (any number at once). Prune takes
// an exclusive lock and deletes data only if no shared lock is live, so it
// can never delete what a running snapshot is about to reference.
const (
	lockShared    = "shared"
	lockExclusive = "exclusive"
)

type lockFile struct {
	Kind    string    `json:"kind"`
	Holder  string    `json:"holder"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Lock is a held lease, refreshed in the background until Release.
type Lock struct {
	v     *Vault
	name  string
	file  lockFile
	stop  chan struct{}
	done  sync.WaitGroup
	once  sync.Once
	Peers []lockFile // other live locks seen when acquired
}

func (v *Vault) writeLock(ctx context.Context, name string, lf *lockFile) error {
	lf.Expires = time.Now().Add(LockLease).UTC()
	data, err := encodeSigned(lf, nil)
	if err != nil {
		return err
	}
	return v.be.Put(ctx, name, data)
}

// liveLocks returns the other holders' unexpired locks. A lock that cannot be
// read is treated as a live exclusive lock until it is older than the lease:
// when in doubt, do not delete.
func (v *Vault) liveLocks(ctx context.Context, self string) ([]lockFile, error) {
	var infos []blob.Info
	if err := v.be.List(ctx, locksPrefix, func(fi blob.Info) error {
		infos = append(infos, fi)
		return nil
	}); err != nil {
		return nil, err
	}
	var live []lockFile
	now := time.Now()
	for _, fi := range infos {
		if fi.Name == self {
			continue
		}
		data, err := v.be.Get(ctx, fi.Name, 0, -1)
		if errors.Is(err, blob.ErrNotFound) {
			continue // released meanwhile
		} else if err != nil {
			return nil, err
		}
		var lf lockFile
		if err := decodeSigned(fi.Name, data, nil, &lf); err != nil {
			if now.Sub(fi.ModTime) < LockLease {
				live = append(live, lockFile{Kind: lockExclusive, Holder: "unreadable " + fi.Name})
			}
			continue
		}
		if now.Before(lf.Expires) {
			live = append(live, lf)
		}
	}
	return live, nil
}

// acquire writes a lock of kind, then looks at the others (write first, then
// list: of two racing lockers at least one sees the other). A shared lock
// waits while an exclusive one is live; an exclusive lock waits while another
// exclusive one is live and reports live shared locks in Peers.
func (v *Vault) acquire(ctx context.Context, kind string, wait time.Duration) (*Lock, error) {
	host, _ := os.Hostname()
	holder := v.holder
	if holder == "" {
		holder = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	l := &Lock{v: v, name: locksPrefix + randomHex(16), stop: make(chan struct{}),
		file: lockFile{Kind: kind, Holder: holder, Host: host, PID: os.Getpid(), Created: time.Now().UTC()}}
	deadline := time.Now().Add(wait)
	for {
		if err := v.writeLock(ctx, l.name, &l.file); err != nil {
			return nil, fmt.Errorf("write lock: %w", err)
		}
		peers, err := v.liveLocks(ctx, l.name)
		if err != nil {
			v.be.Delete(context.WithoutCancel(ctx), l.name)
			return nil, err
		}
		blocker := ""
		for _, p := range peers {
			if p.Kind == lockExclusive {
				blocker = p.Holder
			}
		}
		if blocker == "" {
			l.Peers = peers
			l.done.Add(1)
			go l.refresh()
			return l, nil
		}
		// Step back so the exclusive holder can finish, then try again.
		v.be.Delete(context.WithoutCancel(ctx), l.name)
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (exclusive lock held by %s)", ErrLocked, blocker)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (l *Lock) refresh() {
	defer l.done.Done()
	t := time.NewTicker(LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), LockRefresh)
			l.v.writeLock(ctx, l.name, &l.file)
			cancel()
		}
	}
}

// Release stops refreshing and removes the lock.
func (l *Lock) Release() {
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l.v.be.Delete(ctx, l.name)
	})
}

func sharedWithOthers(peers []lockFile) string {
	var hs []string
	for _, p := range peers {
		hs = append(hs, p.Holder)
	}
	return strings.Join(hs, ", ")
}
