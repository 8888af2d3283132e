// Package buildinfo says which build of Haven is running. Release builds set
// the version, commit and date with the linker (README, "Install"):
//
//	go build -ldflags "-X github.com/haven-dr/haven/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/haven-dr/haven/internal/buildinfo.commit=$(git rev-parse HEAD) \
//	  -X github.com/haven-dr/haven/internal/buildinfo.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/haven
//
// Any other build falls back to what the Go toolchain records in the binary
// (the module version, and the VCS revision unless built with -buildvcs=false),
// so a bug report from a plain `go build` or `go install` still names its source.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by -ldflags -X at release time; strings because -X sets only strings.
// They are never written at run time.
var (
	version string
	commit  string
	date    string
)

// Unknown stands for a field neither the linker nor the toolchain recorded.
const Unknown = "unknown"

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified,omitempty"` // built from a work tree with uncommitted changes
	BuildDate string `json:"build_date,omitempty"`
	GoVersion string `json:"go_version"`
}

// Read returns the running binary's Info.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, date, bi)
}

// resolve prefers what the linker set and fills the rest from the
// toolchain's record; bi may be nil (a binary built without module support).
func resolve(ldVersion, ldCommit, ldDate string, bi *debug.BuildInfo) Info {
	in := Info{Version: ldVersion, Commit: ldCommit, BuildDate: ldDate, GoVersion: runtime.Version()}
	if bi == nil {
		return fillUnknown(in)
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	if in.Version == "" && bi.Main.Version != "" {
		in.Version = bi.Main.Version // "(devel)" for a build from a work tree
	}
	if in.Commit == "" {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	return fillUnknown(in)
}

func fillUnknown(in Info) Info {
	if in.Version == "" {
		in.Version = Unknown
	}
	if in.Commit == "" {
		in.Commit = Unknown
	}
	return in
}
