package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/server/client"
)

// serverFlags are the flags of every command that talks to `haven server`.
type serverFlags struct {
	addr      string
	tokenFile string
	caFile    string
	json      bool
}

func (f *serverFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.addr, "server", envOr("HAVEN_SERVER", "127.0.0.1:7780"), "server API address ($HAVEN_SERVER)")
	c.Flags().StringVar(&f.tokenFile, "token-file", envOr("HAVEN_TOKEN_FILE", "/var/lib/haven/server/admin.token"), "admin token file ($HAVEN_TOKEN_FILE)")
	c.Flags().StringVar(&f.caFile, "ca-file", os.Getenv("HAVEN_CA_FILE"), "CA certificate the server's TLS certificate is checked against, e.g. its state_dir/tls/ca.crt ($HAVEN_CA_FILE)")
	c.Flags().BoolVar(&f.json, "json", false, "print JSON")
}

func (f *serverFlags) client() (*client.Client, error) {
	tok, err := httpauth.ReadTokenFile(f.tokenFile)
	if err != nil {
		return nil, usageError(fmt.Sprintf("admin token: %v (set --token-file or $HAVEN_TOKEN_FILE)", err))
	}
	c := client.New(f.addr, tok, 0)
	if f.caFile != "" {
		if err := c.TrustCA(f.caFile); err != nil {
			return nil, usageError(err.Error())
		}
	}
	return c, nil
}

// Server errors as exit codes (README): refused requests are usage errors
// or "refused"; a job that failed is its own code.
const (
	exitJobFailed   = 11 // the job stopped at a failed step (retry or cancel it)
	exitRefused     = 12 // conflict with a running job, or not possible in the plan's phase
	exitJobCanceled = 13 // the job followed was canceled: nothing it set out to do holds
	exitJobWaiting  = 14 // the job followed waits at a manual step (haven job approve)
)

type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func serverErr(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case "invalid", "not_found", "unauthorized", "forbidden":
			return usageError(ce.Msg)
		case "conflict", "precondition":
			return &exitErr{exitRefused, err}
		}
	}
	return err
}

func printJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
