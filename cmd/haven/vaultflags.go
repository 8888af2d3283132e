package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// vaultFlags are shared by every command that opens a vault.
type vaultFlags struct {
	url          string
	passwordFile string
	json         bool
	limits       blob.Limits
	getenv       func(string) string // credentials; nil: the environment
}

func (f *vaultFlags) register(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.url, "vault", "", "vault URL: file:///path, azblob://container?..., s3://bucket?... (default $HAVEN_VAULT)")
	fs.StringVar(&f.passwordFile, "password-file", "", "read the vault password from this file (default $HAVEN_PASSWORD, else a prompt)")
	fs.BoolVar(&f.json, "json", false, "print results as JSON")
	f.limits = blob.DefaultLimits()
	addStorageFlags(fs, &f.limits)
}

func (f *vaultFlags) backend(ctx context.Context) (blob.Backend, error) {
	u := f.url
	if u == "" {
		u = os.Getenv("HAVEN_VAULT")
	}
	if u == "" {
		return nil, usageError("no vault given: use --vault URL or set HAVEN_VAULT")
	}
	getenv := f.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	be, err := blobopen.OpenEnv(ctx, u, f.limits, getenv)
	if errors.Is(err, blobopen.ErrBadURL) {
		return nil, usageError(err.Error())
	}
	return be, err
}

// password comes from $HAVEN_PASSWORD, --password-file, or a terminal prompt
// (twice when creating, so a typo cannot lock the owner out).
func (f *vaultFlags) password(confirm bool) (string, error) {
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return "", usageError(fmt.Sprintf("password file: %v", err))
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if p := os.Getenv("HAVEN_PASSWORD"); p != "" {
		return p, nil
	}
	return promptPassword("vault password: ", confirm)
}

func promptPassword(prompt string, confirm bool) (string, error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", usageError("no password: set HAVEN_PASSWORD, use --password-file, or run on a terminal")
	}
	fmt.Fprint(os.Stderr, prompt)
	p, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	if confirm {
		fmt.Fprint(os.Stderr, "again: ")
		q, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		if string(p) != string(q) {
			return "", usageError("passwords do not match")
		}
	}
	return string(p), nil
}

// open opens the vault for a command; the caller closes it.
func (f *vaultFlags) open(ctx context.Context) (*vault.Vault, error) {
	be, err := f.backend(ctx)
	if err != nil {
		return nil, err
	}
	pw, err := f.password(false)
	if err != nil {
		return nil, err
	}
	return vault.Open(ctx, be, pw, vault.Options{KDF: kdfFromEnv()})
}
