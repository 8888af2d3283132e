package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/protection"
)

// CatalogSecrets are the credentials a control plane needs to reach its
// agents and traffic managers and to be reached by them: on a blank
// machine nothing else holds them. They travel only inside the sealed
// catalog (encrypted with the vault's key); nothing here is ever logged.
type CatalogSecrets struct {
	// TokenHashes is state_dir/tokens.json: the admin's and the
	// viewer's token as SHA-256 digests (never the tokens).
	TokenHashes map[string]string `json:"token_hashes,omitempty"`
	// Files are the token files the applied config names (agents',
	// traffic managers'), with their contents.
	Files []SecretFile `json:"files,omitempty"`
	// CA is the auto-TLS CA (state_dir/tls), so agents and CLIs that
	// trust it trust the recovered server.
	CA *CatalogCA `json:"ca,omitempty"`
}

// SecretFile is one token file: where the config names it, what it held.
type SecretFile struct {
	For  string `json:"for"` // "agent prim", "traffic 127.0.0.1:8053"
	Path string `json:"path"`
	Data []byte `json:"data"`
}

// CatalogCA is the CA's certificate and key, PEM.
type CatalogCA struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
}

// collectSecrets reads what cfg and the applied config doc name. A token
// file missing on this server is left out (its agent cannot be reached
// today either); one that cannot be read fails the catalog write, which
// is then an alert rather than a catalog silently short of a credential.
func collectSecrets(cfg *Config, doc json.RawMessage) (*CatalogSecrets, error) {
	s := &CatalogSecrets{}
	h, err := readTokenHashes(tokensPath(cfg))
	if err != nil {
		return nil, err
	}
	if len(h) > 0 {
		s.TokenHashes = h
	}
	if cfg.TLS.Mode == "auto" {
		dir := filepath.Join(cfg.StateDir, "tls")
		crt, err1 := os.ReadFile(filepath.Join(dir, "ca.crt"))
		key, err2 := os.ReadFile(filepath.Join(dir, "ca.key"))
		if err := errors.Join(err1, err2); err == nil {
			s.CA = &CatalogCA{Cert: crt, Key: key}
		} else if !errors.Is(err1, os.ErrNotExist) && !errors.Is(err2, os.ErrNotExist) {
			return nil, err
		}
	}
	if len(doc) == 0 {
		return s, nil
	}
	var pc protection.Config
	if err := json.Unmarshal(doc, &pc); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	add := func(what, path string) error {
		if path == "" || seen[path] {
			return nil
		}
		seen[path] = true
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return fmt.Errorf("token file of %s: %w", what, err)
		}
		s.Files = append(s.Files, SecretFile{For: what, Path: path, Data: b})
		return nil
	}
	for _, a := range pc.Agents {
		if err := add("agent "+a.Name, a.TokenFile); err != nil {
			return nil, err
		}
	}
	if pc.Traffic != nil {
		for _, ts := range pc.Traffic.List() {
			if err := add("traffic "+ts.Name, ts.TokenFile); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// restoreSecrets writes what a blank machine lacks: token files (0600,
// their directories 0700), tokens.json and the CA. A file that exists is
// never replaced: the same contents are fine, other contents are kept and
// named in a warning (an operator's newer token wins over the catalog's).
func restoreSecrets(cfg *Config, s *CatalogSecrets, log *slog.Logger) error {
	if s == nil {
		log.Warn("the catalog holds no credentials (written by an older haven): token files, token hashes and the TLS CA are not restored; new admin and viewer tokens are made at start")
		return nil
	}
	var errs []error
	for _, f := range s.Files {
		errs = append(errs, restoreFile(f.Path, f.Data, 0o600, f.For, log))
	}
	if len(s.TokenHashes) > 0 {
		b, err := json.MarshalIndent(s.TokenHashes, "", "  ")
		if err != nil {
			return err
		}
		errs = append(errs, restoreFile(tokensPath(cfg), append(b, '\n'), 0o600, "the admin and viewer token hashes", log))
	}
	if s.CA != nil && cfg.TLS.Mode == "auto" {
		dir := filepath.Join(cfg.StateDir, "tls")
		// Key first: a CA whose certificate is missing is made anew.
		errs = append(errs, restoreFile(filepath.Join(dir, "ca.key"), s.CA.Key, 0o600, "the TLS CA key", log),
			restoreFile(filepath.Join(dir, "ca.crt"), s.CA.Cert, 0o644, "the TLS CA certificate", log))
	}
	return errors.Join(errs...)
}

func restoreFile(path string, data []byte, mode os.FileMode, what string, log *slog.Logger) error {
	cur, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(cur, data):
		return nil
	case err == nil:
		log.Warn("file exists with other contents than the catalog's; kept as it is", "file", path, "holds", what)
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("restore %s: %w", what, err)
	}
	log.Info("restored from the catalog", "file", path, "holds", what)
	return nil
}
