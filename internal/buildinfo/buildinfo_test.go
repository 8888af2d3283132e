package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/haven-dr/haven", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name                  string
		ldVer, ldCommit, date string
		bi                    *debug.BuildInfo
		want                  Info
	}{
		{"linker wins", "v1.2.3", "f00d", "2026-12-06T08:00:00Z", vcs,
			Info{Version: "v1.2.3", Commit: "f00d", BuildDate: "2026-12-06T08:00:00Z", GoVersion: "go1.99.1"}},
		{"toolchain fallback", "", "", "", vcs,
			Info{Version: "(devel)", Commit: "abc123", Modified: true, GoVersion: "go1.99.1"}},
		{"go install module@version", "", "", "", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v0.4.0"}},
			Info{Version: "v0.4.0", Commit: Unknown, GoVersion: "go1.99.1"}},
		{"no build info", "", "", "", nil,
			Info{Version: Unknown, Commit: Unknown, GoVersion: runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolve(tt.ldVer, tt.ldCommit, tt.date, tt.bi); got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}
