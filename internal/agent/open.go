package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/vault"
)

// New opens the vault named by cfg and prepares the machines. When the
// storage cannot be reached the agent is returned all the same: Run keeps
// trying to open the vault, and until it can, the status says why and
// reports every RPO as unknown, which raises the alert (an agent that
// exited instead would report nothing at all).
func New(ctx context.Context, cfg *Config) (*Agent, error) {
	pw, err := readPassword(cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	lim := blob.DefaultLimits()
	lim.UploadBytesPerSec = cfg.UploadLimit()
	be, err := blobopen.Open(ctx, cfg.Vault, lim)
	if err != nil {
		return nil, err
	}
	a := newAgent(cfg, nil)
	a.be, a.password, a.board.vault = be, pw, be.Location()
	if err := a.open(ctx); err != nil && !errors.Is(err, blob.ErrUnavailable) {
		be.Close()
		return nil, err
	}
	return a, nil
}

// open opens the vault; a failure is recorded against every machine.
func (a *Agent) open(ctx context.Context) error {
	v, err := vault.Open(ctx, a.be, a.password, vault.Options{Holder: lockHolder()})
	if err != nil {
		for _, g := range a.groups {
			for _, m := range g.machines {
				a.fail(m, fmt.Errorf("opening the vault: %w", err))
			}
		}
		return err
	}
	a.vaultp.Store(v)
	return nil
}

// waitVault retries opening the vault until it is open or ctx ends.
func (a *Agent) waitVault(ctx context.Context) bool {
	for a.Vault() == nil {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(a.openEvery):
		}
		a.open(ctx)
	}
	return true
}

// lockHolder names this agent process in the vault's lock files. It is
// unique per process (host, pid and a random part, as a pid can be reused
// and a container's host name repeated), so a lock left by one agent is
// never taken for another's.
func lockHolder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("haven-agent@%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
}

func readPassword(file string) (string, error) {
	p, err := vault.LoadPassword(file)
	if errors.Is(err, vault.ErrNoPassword) {
		return "", fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return p, err
}
