package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/vault"
)

// CopyConfig is a second vault (3-2-1) that the server keeps current from
// the vault with vault.Copy. The copy must exist, made by
// `haven vault copy --init` (it shares the vault's keys); the server only
// ever adds to it, so its credentials need no delete or overwrite right.
type CopyConfig struct {
	Name  string `yaml:"name"`
	Vault string `yaml:"vault"`
	// PasswordFile opens the copy; empty: the vault's password.
	PasswordFile string `yaml:"password_file"`
	// EnvPrefix: the copy's storage credentials are read as
	// <prefix>AWS_ACCESS_KEY_ID (etc.), falling back to the plain names.
	EnvPrefix string        `yaml:"env_prefix"`
	Interval  time.Duration `yaml:"interval"` // between runs; default 1m
	MaxLag    time.Duration `yaml:"max_lag"`  // alert above; default 1h
	// OnlyNewer: copy only points newer than the copy's newest of their
	// machine, for a copy whose own retention is shorter (vault.CopyOptions).
	OnlyNewer bool `yaml:"only_newer"`
}

var copyNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

func copiesDefaults(c *Config) error {
	seen := map[string]bool{}
	for i := range c.Copies {
		cp := &c.Copies[i]
		if !copyNameRE.MatchString(cp.Name) || seen[cp.Name] {
			return fmt.Errorf("copies[%d].name %q: want a unique name of lower-case letters, digits and '-'", i, cp.Name)
		}
		seen[cp.Name] = true
		if cp.Vault == "" || cp.Vault == c.Vault {
			return fmt.Errorf("copies[%d] (%s): vault: want the URL of a second vault, not empty or the vault itself", i, cp.Name)
		}
		if cp.Interval == 0 {
			cp.Interval = time.Minute
		}
		if cp.MaxLag == 0 {
			cp.MaxLag = time.Hour
		}
		if cp.Interval < 0 || cp.MaxLag < 0 {
			return fmt.Errorf("copies[%d] (%s): interval and max_lag must be positive", i, cp.Name)
		}
	}
	return nil
}

// UseCopy points the server at the named copy instead of the vault, for
// when the vault is lost: failover, test failover and --recover-from-vault
// then read the copy, and the server writes its catalog there. No copy is
// run meanwhile (their source is the lost vault).
func (c *Config) UseCopy(name string) error {
	for _, cp := range c.Copies {
		if cp.Name != name {
			continue
		}
		c.Vault, c.vaultEnv, c.Copies = cp.Vault, cp.EnvPrefix, nil
		if cp.PasswordFile != "" {
			c.PasswordFile = cp.PasswordFile
		}
		return nil
	}
	return fmt.Errorf("%w: no copy named %q under copies:", ErrConfig, name)
}

// openVault opens the vault the server works on.
func (c *Config) openVault(ctx context.Context) (*vault.Vault, error) {
	return openVaultAt(ctx, c.Vault, c.PasswordFile, c.vaultEnv)
}

func openVaultAt(ctx context.Context, url, passwordFile, envPrefix string) (*vault.Vault, error) {
	pw, err := password(passwordFile)
	if err != nil {
		return nil, err
	}
	getenv := os.Getenv
	if envPrefix != "" {
		getenv = blobopen.PrefixedEnv(envPrefix)
	}
	be, err := blobopen.OpenEnv(ctx, url, blob.DefaultLimits(), getenv)
	if err != nil {
		return nil, err
	}
	v, err := vault.Open(ctx, be, pw, vault.Options{Holder: "haven-server"})
	if err != nil {
		be.Close()
		return nil, err
	}
	return v, nil
}

// copier keeps one copy current and remembers how the last runs went.
type copier struct {
	cfg      CopyConfig
	password string // the vault's password file, for a copy without its own
	dst      *vault.Vault

	mu       sync.Mutex
	lastRun  time.Time
	lastOK   time.Time
	failing  time.Time // first failure since the last run that worked
	err      string
	lag      time.Duration
	kept     int
	problems []string
}

func newCopiers(cfg *Config) []*copier {
	var cs []*copier
	for _, cp := range cfg.Copies {
		cs = append(cs, &copier{cfg: cp, password: cfg.PasswordFile})
	}
	return cs
}

// copyLoop runs the copy every interval until ctx ends.
func (s *Server) copyLoop(ctx context.Context, c *copier) {
	defer func() {
		// A server that leads again later opens the copy afresh.
		c.mu.Lock()
		dst := c.dst
		c.dst = nil
		c.mu.Unlock()
		if dst != nil {
			dst.Close()
			dst.Backend().Close()
		}
	}()
	for {
		c.run(ctx, s)
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.cfg.Interval):
		}
	}
}

func (c *copier) run(ctx context.Context, s *Server) {
	start := time.Now().UTC()
	rep, err := c.copyOnce(ctx, s.vault)
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastRun = start
	if err != nil {
		if c.err == "" {
			c.failing = start
		}
		c.err = err.Error()
		s.log.Warn("vault copy failed", "copy", c.cfg.Name, "err", err)
		return
	}
	c.lastOK, c.err, c.lag, c.kept, c.problems = start, "", rep.Lag, rep.Kept, rep.Problems
	if rep.Points > 0 || len(rep.Problems) > 0 {
		s.log.Info("vault copy", "copy", c.cfg.Name, "points", rep.Points, "packs", rep.Packs, "bytes", rep.Bytes,
			"lag", rep.Lag, "problems", len(rep.Problems))
	}
}

func (c *copier) copyOnce(ctx context.Context, src *vault.Vault) (*vault.CopyReport, error) {
	if c.dest() == nil {
		pf := c.cfg.PasswordFile
		if pf == "" {
			pf = c.password
		}
		dst, err := openVaultAt(ctx, c.cfg.Vault, pf, c.cfg.EnvPrefix)
		if errors.Is(err, vault.ErrNoVault) {
			return nil, fmt.Errorf("%w (create it with: haven vault copy --init --from VAULT --to %s)", err, c.cfg.Vault)
		} else if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.dst = dst
		c.mu.Unlock()
	}
	return c.dest().Copy(ctx, src, vault.CopyOptions{OnlyNewer: c.cfg.OnlyNewer})
}

func (c *copier) dest() *vault.Vault {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dst
}

// state is the copy's status and the alert rules' input. The lag is
// measured now, from both vaults' point names, so it grows between runs
// as the vault gets new points; when the copy cannot be listed it is at
// least the last measured lag plus the time since that run.
func (c *copier) state(ctx context.Context, src *vault.Vault, now time.Time) (api.CopyStatus, alert.Copy) {
	measured, merr := time.Duration(0), errors.New("not opened yet")
	if dst := c.dest(); dst != nil {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		measured, merr = vault.Lag(lctx, src, dst)
		cancel()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := api.CopyStatus{Name: c.cfg.Name, Vault: c.cfg.Vault, Error: c.err, Kept: c.kept, Problems: c.problems}
	in := alert.Copy{Name: c.cfg.Name, MaxLag: c.cfg.MaxLag, Err: c.err, FailingSince: c.failing, Problems: c.problems}
	if !c.lastRun.IsZero() {
		t := c.lastRun
		st.LastRun = &t
	}
	if !c.lastOK.IsZero() {
		t := c.lastOK
		st.LastSuccess = &t
		lag := measured
		if merr != nil {
			lag = c.lag + now.Sub(c.lastOK)
		}
		secs := lag.Seconds()
		st.LagSeconds, in.Lag = &secs, &lag
	}
	return st, in
}
