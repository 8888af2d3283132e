package main

import (
	"testing"

	"github.com/haven-dr/haven/internal/api"
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
