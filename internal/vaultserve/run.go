package vaultserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/tlsca"
)

// Options are `haven vault serve`'s flags.
type Options struct {
	Dir            string
	Listen         string
	TLSDir         string // auto mode: CA and certificate made here at first start
	CertFile       string // or the operator's own certificate
	KeyFile        string
	AgentTokenFile string // created (0600) at first start if absent
	AdminTokenFile string // optional: without it nothing can delete
	DeleteDelay    time.Duration
}

// ErrOptions: the options are incomplete or contradict each other.
var ErrOptions = errors.New("vault serve")

func (o *Options) check() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: --dir is required", ErrOptions)
	case o.AgentTokenFile == "":
		return fmt.Errorf("%w: --agent-token-file is required", ErrOptions)
	case (o.CertFile == "") != (o.KeyFile == ""):
		return fmt.Errorf("%w: --cert and --key go together", ErrOptions)
	case o.CertFile == "" && o.TLSDir == "":
		return fmt.Errorf("%w: give --tls-dir (a CA is made there) or --cert and --key", ErrOptions)
	case o.DeleteDelay < 0:
		return fmt.Errorf("%w: --delete-delay must not be negative", ErrOptions)
	}
	return nil
}

// Run serves until ctx ends; ready, if set, gets the bound address.
func Run(ctx context.Context, o Options, ready func(net.Addr)) error {
	if err := o.check(); err != nil {
		return err
	}
	cfg := Config{Dir: o.Dir, DeleteDelay: o.DeleteDelay}
	for _, f := range []struct {
		path string
		into *[]string
	}{{o.AgentTokenFile, &cfg.AgentTokens}, {o.AdminTokenFile, &cfg.AdminTokens}} {
		if f.path == "" {
			continue
		}
		tok, created, err := httpauth.LoadOrCreateToken(f.path)
		if err != nil {
			return err
		}
		if created {
			slog.Info("created token file", "path", f.path)
		}
		*f.into = []string{tok}
	}
	if cfg.AgentTokens[0] == firstOr(cfg.AdminTokens) {
		return fmt.Errorf("%w: the agent and admin token files hold the same token", ErrOptions)
	}
	cert, err := loadCert(o)
	if err != nil {
		return err
	}
	srv, err := New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	slog.Info("vault serve listening", "addr", ln.Addr().String(), "dir", o.Dir,
		"admin", o.AdminTokenFile != "", "delete_delay", o.DeleteDelay)
	if ready != nil {
		ready(ln.Addr())
	}
	return srv.Serve(ctx, ln, cert)
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func loadCert(o Options) (*tls.Certificate, error) {
	if o.CertFile != "" {
		c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrOptions, err)
		}
		return &c, nil
	}
	return tlsca.LoadOrMake(o.TLSDir, tlsca.CertHosts(o.Listen))
}
