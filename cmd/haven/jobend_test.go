package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/servertest"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// TestJobEndExitCodes: following a job exits 0 only when it ended as the
// command asked; canceled, waiting for approval and failed each have
// their own code (README, "Exit codes").
func TestJobEndExitCodes(t *testing.T) {
	for _, tc := range []struct {
		state, done string
		want        int
	}{
		{api.JobSucceeded, api.JobSucceeded, exitOK},
		{api.JobFailed, api.JobSucceeded, exitJobFailed},
		{api.JobCanceled, api.JobSucceeded, exitJobCanceled},
		{api.JobWaiting, api.JobSucceeded, exitJobWaiting},
		{api.JobCanceled, api.JobCanceled, exitOK}, // haven job cancel
		{api.JobFailed, api.JobCanceled, exitJobFailed},
		{"unheard-of", api.JobSucceeded, exitFailure},
	} {
		err := jobEnd(&api.Job{ID: "j1", State: tc.state, Error: "boom"}, tc.done)
		if got := exitCode(err); got != tc.want {
			t.Errorf("job %s (want %s): exit %d (%v), want %d", tc.state, tc.done, got, err, tc.want)
		}
	}
	codes := map[int]bool{}
	for _, c := range []int{exitFailure, exitUsage, exitNoVault, exitPassword, exitVersion, exitMissing, exitCorrupt,
		exitUnavailable, exitLocked, exitNoPoint, exitJobFailed, exitRefused, exitJobCanceled, exitJobWaiting} {
		if codes[c] {
			t.Errorf("exit code %d is used twice", c)
		}
		codes[c] = true
	}
}

// TestFollowExitCodesCLI: `haven job watch` against a real server exits
// with the code of the state the job ended in.
func TestFollowExitCodesCLI(t *testing.T) {
	dir := t.TempDir()
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(context.Background(), be, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	cfg := &server.Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(dir, "state"), Vault: "file://" + filepath.Join(dir, "vault"),
		PasswordFile: filepath.Join(dir, "password"), Standby: &off}
	if err := cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	r := servertest.Start(t, cfg, server.Options{})
	s, ln, ctx := r.Server, r.Addr, context.Background()
	now := time.Now().UTC()
	for state, want := range map[store.JobState]int{store.Succeeded: exitOK, store.Failed: exitJobFailed,
		store.Canceled: exitJobCanceled, store.Waiting: exitJobWaiting} {
		j := &store.Job{ID: "j-" + string(state), Plan: "p-" + string(state), Type: "test-failover", State: state, Created: now, Updated: now}
		if err := s.Orchestrator().Store.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		out, err := runCLI("job", "watch", j.ID, "--server", ln, "--token-file", cfg.TokenFile)
		if got := exitCode(err); got != want {
			t.Errorf("haven job watch of a %s job: exit %d (%v), want %d\n%s", state, got, err, want, out)
		}
	}
}
