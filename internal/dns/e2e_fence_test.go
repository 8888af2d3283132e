package dns

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/fence"
)

// TestEndpointChangesRefuseStaleLeader: after a haven server leader of
// epoch 3 moved traffic, a change from epoch 2 (a deposed leader waking
// up) or from a server without an epoch is refused and the answer stays
// where the new leader put it, across a restart; an operator's change
// passes.
func TestEndpointChangesRefuseStaleLeader(t *testing.T) {
	path := writeConfig(t, stateConfig)
	s := startFrom(t, path)
	at := func(e int64) context.Context { return fence.WithEpoch(context.Background(), e) }
	const prof = "app.example.test"
	if _, err := apiClient(t, s).UpdateEndpoint(at(3), prof, "primary", EndpointPatch{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, fence.ErrStale) {
			t.Fatalf("%s: %v, want a stale leader refusal", what, err)
		}
		if got := answerA(t, s); got != "127.0.0.2" {
			t.Fatalf("after %s: answer %q, want the recovery endpoint still", what, got)
		}
	}
	_, err := apiClient(t, s).UpdateEndpoint(at(2), prof, "primary", EndpointPatch{Enabled: ptr(true)})
	refused("epoch 2 enabling the primary", err)
	if !strings.Contains(err.Error(), "stale leader epoch 2 < 3") {
		t.Fatalf("message: %v", err)
	}
	_, err = apiClient(t, s).ResetEndpoint(at(2), prof, "primary")
	refused("epoch 2 resetting the primary", err)
	_, err = apiClient(t, s).UpdateEndpoint(context.Background(), prof, "primary", EndpointPatch{Enabled: ptr(true)})
	refused("a change without an epoch", err)

	s.Close()
	s = startFrom(t, path)
	_, err = apiClient(t, s).UpdateEndpoint(at(2), prof, "primary", EndpointPatch{Enabled: ptr(true)})
	refused("epoch 2 after a restart", err)

	op, err := NewClient(s.APIURL(), ClientOptions{TokenFile: s.table.Load().files.token, Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.ResetEndpoint(context.Background(), prof, "primary"); err != nil {
		t.Fatalf("operator's reset: %v", err)
	}
	if got := answerA(t, s); got != "127.0.0.1" {
		t.Fatalf("after the operator's reset: %q", got)
	}
}
