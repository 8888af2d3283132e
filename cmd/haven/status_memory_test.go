package main

import (
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/api"
)

func TestRecoveredLine(t *testing.T) {
	base := api.RecoveredMachine{Plan: "shop", Site: "rec", Host: "a", Running: true}
	cases := []struct {
		mem     *api.MemoryStatus
		running bool
		err     string
		want    []string
	}{
		{mem: &api.MemoryStatus{Source: "cgroup", LimitMB: 64, UsageMB: 63, AtLimit: 9, OOMKills: 2}, running: true,
			want: []string{"machine db", "plan shop", "host a", "63 of 64 MiB", "9 times", "2 processes OOM-killed", "IT WENT OVER ITS MEMORY LIMIT"}},
		{mem: &api.MemoryStatus{Source: "cgroup", LimitMB: 64, UsageMB: 3}, running: true, want: []string{"3 of 64 MiB", "0 processes"}},
		{mem: &api.MemoryStatus{Source: "vm", LimitMB: 1024}, running: true, want: []string{"VM of 1024 MiB", "not seen"}},
		{mem: &api.MemoryStatus{}, running: true, want: []string{"no memory limit"}},
		{want: []string{"not running"}},
		{err: "host b: unreachable", want: []string{"cannot tell: host b: unreachable"}},
	}
	for _, c := range cases {
		r := base
		r.Memory, r.Running, r.Error = c.mem, c.running, c.err
		got := recoveredLine("db", r)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v: %q lacks %q", c, got, w)
			}
		}
		if c.mem == nil || c.mem.OOMKills == 0 {
			if strings.Contains(got, "OVER") {
				t.Errorf("%q: says over its limit without kills", got)
			}
		}
	}
}
