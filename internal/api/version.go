package api

import (
	"fmt"
	"strconv"
	"strings"
)

// AgentVersionHeader carries the agent's API version (major.minor) on
// every request it sends the server. Agents released before the header
// existed send none: they speak AgentVersionLegacy.
const AgentVersionHeader = "Haven-Agent-Api"

// The agent API this build speaks. The server accepts agents of the same
// major version whose minor is the one before this one or later
// (docs/api.md, docs/upgrade.md); a change a previous-minor agent cannot
// follow needs a new major version.
const (
	AgentAPIMajor = 1
	AgentAPIMinor = 1
)

// AgentVersionLegacy is the version of an agent that sends no header.
const AgentVersionLegacy = "1.0"

// AgentAPIVersion is this build's agent API version as the header carries it.
func AgentAPIVersion() string { return fmt.Sprintf("%d.%d", AgentAPIMajor, AgentAPIMinor) }

// CheckAgentVersion tells whether a server of this build accepts an agent
// that sent header value v ("" for none); the error names both versions.
func CheckAgentVersion(v string) error {
	if v == "" {
		v = AgentVersionLegacy
	}
	major, minor, ok := parseVersion(v)
	if !ok {
		return fmt.Errorf("agent API version %q is not major.minor; this server speaks %s", v, AgentAPIVersion())
	}
	switch {
	case major == AgentAPIMajor && minor >= AgentAPIMinor-1:
		// A newer minor only adds what this server ignores.
		return nil
	case major > AgentAPIMajor:
		return fmt.Errorf("agent API version %s is newer than this server's (%s): upgrade the server before its agents", v, AgentAPIVersion())
	}
	return fmt.Errorf("agent API version %s is too old for this server (API %s, accepts %d.%d and later): upgrade the agent",
		v, AgentAPIVersion(), AgentAPIMajor, max(AgentAPIMinor-1, 0))
}

func parseVersion(v string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(v, ".")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	return major, minor, err1 == nil && err2 == nil && major >= 0 && minor >= 0
}
