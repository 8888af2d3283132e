package api

import (
	"fmt"
	"strings"
	"testing"
)

func TestCheckAgentVersion(t *testing.T) {
	cur := AgentAPIVersion()
	prev := fmt.Sprintf("%d.%d", AgentAPIMajor, AgentAPIMinor-1)
	for v, want := range map[string]string{
		"": "", AgentVersionLegacy: "", cur: "", prev: "",
		fmt.Sprintf("%d.%d", AgentAPIMajor, AgentAPIMinor+1): "",
		fmt.Sprintf("%d.0", AgentAPIMajor-1):                 "too old",
		fmt.Sprintf("%d.0", AgentAPIMajor+1):                 "newer",
		"one":                                                "not major.minor",
		"1.x":                                                "not major.minor",
	} {
		err := CheckAgentVersion(v)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v, want accepted", v, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), cur)):
			t.Errorf("%q: %v, want an error saying %q and naming %s", v, err, want, cur)
		}
	}
}
