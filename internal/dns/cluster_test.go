package dns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/dns/health"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestGenerationOrdersChanges: a change carries its generation; an older
// one for the same endpoint is refused (412, ErrStaleGeneration) and
// changes nothing, an equal one (a replay) is taken, and the generation
// survives a restart in the state file.
func TestGenerationOrdersChanges(t *testing.T) {
	path := writeConfig(t, stateConfig)
	s := startFrom(t, path)
	c := apiClient(t, s)
	ctx := context.Background()
	off, on := false, true
	if _, err := c.UpdateEndpoint(WithGeneration(ctx, 100), "app.example.test", "primary", EndpointPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	_, err := c.UpdateEndpoint(WithGeneration(ctx, 99), "app.example.test", "primary", EndpointPatch{Enabled: &on})
	if !errors.Is(err, ErrStaleGeneration) {
		t.Fatalf("older generation: %v, want ErrStaleGeneration", err)
	}
	if _, err := c.ResetEndpoint(WithGeneration(ctx, 50), "app.example.test", "primary"); !errors.Is(err, ErrStaleGeneration) {
		t.Fatalf("older reset: %v, want ErrStaleGeneration", err)
	}
	if _, err := c.UpdateEndpoint(WithGeneration(ctx, 100), "app.example.test", "primary", EndpointPatch{Enabled: &off}); err != nil {
		t.Fatalf("replay of the same generation: %v", err)
	}
	if got := answerA(t, s); got != "127.0.0.2" {
		t.Fatalf("answer %s after the refused change, want 127.0.0.2", got)
	}
	s.Close()
	s = startFrom(t, path)
	st := s.ClusterState()
	if st.Generation != 100 || len(st.Overrides) != 1 || st.Overrides[0].Generation != 100 {
		t.Fatalf("after restart: %+v", st)
	}
	// A change without a generation (haven dns set) gets one newer.
	es, err := apiClient(t, s).SetPriority(ctx, "app.example.test", "recovery", 3)
	if err != nil || es.Override == nil || es.Override.Generation <= 100 {
		t.Fatalf("operator change: %+v %v", es.Override, err)
	}
}

// TestMergeAdoptsOnlyNewer: POST /v1/state adopts an override only when
// its generation is newer than the one held for that endpoint; a reset
// (empty override) with a newer generation wins over an older change.
func TestMergeAdoptsOnlyNewer(t *testing.T) {
	s := startFrom(t, writeConfig(t, stateConfig))
	c := apiClient(t, s)
	ctx := context.Background()
	off, on := false, true
	p := "app.example.test."
	if _, err := c.PushState(ctx, []EndpointOverride{{Profile: p, Endpoint: "primary", Override: Override{Enabled: &off, Generation: 10}}}); err != nil {
		t.Fatal(err)
	}
	st, err := c.PushState(ctx, []EndpointOverride{{Profile: p, Endpoint: "primary", Override: Override{Enabled: &on, Generation: 9}}})
	if err != nil || st.Generation != 10 {
		t.Fatalf("older push: %+v %v", st, err)
	}
	if got := answerA(t, s); got != "127.0.0.2" {
		t.Fatalf("an older push changed the answer: %s", got)
	}
	if _, err := c.PushState(ctx, []EndpointOverride{{Profile: p, Endpoint: "primary", Override: Override{Generation: 11}}}); err != nil {
		t.Fatal(err)
	}
	if got := answerA(t, s); got != "127.0.0.1" {
		t.Fatalf("a newer reset was not adopted: %s", got)
	}
	if _, err := c.PushState(ctx, []EndpointOverride{{Profile: p, Endpoint: "primary", Override: Override{Enabled: &off, Generation: 10}}}); err != nil {
		t.Fatal(err)
	}
	if got := answerA(t, s); got != "127.0.0.1" {
		t.Fatalf("an older change came back over a newer reset: %s", got)
	}
	bad := 0
	if _, err := c.PushState(ctx, []EndpointOverride{{Profile: p, Endpoint: "primary", Override: Override{Priority: &bad, Generation: 12}}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad override: %v", err)
	}
}

// TestPeersCatchUp: two in-process servers name each other; a change on
// one reaches the other within a few intervals, and a server started
// after a change its peer took answers with it from the start.
func TestPeersCatchUp(t *testing.T) {
	dir := t.TempDir()
	ports := [2][2]int{}
	for i := range ports {
		ports[i] = [2]int{testenv.FreePort(t), testenv.FreePort(t)}
	}
	cfg := func(i int) string {
		tok := filepath.Join(dir, fmt.Sprintf("tok%d", i))
		if err := os.WriteFile(tok, []byte(strings.Repeat(fmt.Sprint(i), 32)), 0o600); err != nil {
			t.Fatal(err)
		}
		j := 1 - i
		// stateConfig's zone and profile, this server's ports and files,
		// and the other server as its peer.
		body := strings.SplitN(stateConfig, "\n", 3)[2]
		return fmt.Sprintf("listen: 127.0.0.1:%d\napi: 127.0.0.1:%d\napi_token_file: %s\nstate_file: %s\n",
			ports[i][0], ports[i][1], tok, filepath.Join(dir, fmt.Sprintf("state%d.json", i))) + body +
			fmt.Sprintf("cluster:\n  name: s%d\n  interval: 200ms\n  peers: [{name: s%d, api: \"http://127.0.0.1:%d\", token_file: %s}]\n",
				i, j, ports[j][1], filepath.Join(dir, fmt.Sprintf("tok%d", j)))
	}
	c0, c1 := cfg(0), cfg(1)
	a := startFrom(t, writeConfig(t, c0))
	off := false
	if _, err := apiClient(t, a).UpdateEndpoint(WithGeneration(context.Background(), 7), "app.example.test", "primary", EndpointPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	b := startFrom(t, writeConfig(t, c1))
	if got := answerA(t, b); got != "127.0.0.2" {
		t.Fatalf("a server started after its peer's change answers %s", got)
	}
	on := true
	if _, err := apiClient(t, b).UpdateEndpoint(WithGeneration(context.Background(), 8), "app.example.test", "primary", EndpointPatch{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the change reaches the peer", func() bool {
		return answerA(t, a) == "127.0.0.1"
	})
	if ps := a.ClusterState().Peers; len(ps) != 1 || !ps[0].Reachable || ps[0].Generation != 8 {
		t.Fatalf("peer status: %+v", ps)
	}
}

func TestQuorumVerdict(t *testing.T) {
	k := key("app.example.test.", "primary")
	view := func(st string) peerView { return peerView{probes: map[string]string{k: st}} }
	D, O, C := health.Degraded, health.Online, health.CheckingEndpoint
	for _, tc := range []struct {
		local  health.State
		peers  []string
		quorum int
		want   health.State
	}{
		{D, []string{"Online", "Online"}, 2, O},     // alone: not down
		{D, []string{"Degraded", "Online"}, 2, D},   // two of three
		{O, []string{"Degraded", "Degraded"}, 2, D}, // the others outvote a working probe
		{D, nil, 2, D}, // peers silent: too few voters, local probes decide
		{D, []string{"Online"}, 3, D},
		{C, []string{"Degraded", "Degraded"}, 2, D}, // a fresh start follows the peers
		{C, []string{"Online"}, 2, O},               // a peer proved it up
		{C, []string{"CheckingEndpoint"}, 2, C},     // nobody knows yet
		{D, []string{"Online"}, 1, D},               // quorum 1: any server
	} {
		var vs []peerView
		for _, p := range tc.peers {
			vs = append(vs, view(p))
		}
		if got := quorumVerdict(tc.local, vs, k, tc.quorum); got != tc.want {
			t.Errorf("local %s, peers %v, quorum %d: %s, want %s", tc.local, tc.peers, tc.quorum, got, tc.want)
		}
	}
}

func TestClusterConfigErrors(t *testing.T) {
	for _, tc := range []struct{ y, want string }{
		{"cluster: {probe_quorum: 3, peers: [{api: 'http://127.0.0.1:1'}]}", "cluster.probe_quorum"},
		{"cluster: {peers: [{name: a}]}", "cluster.peers[0].api"},
		{"cluster: {interval: 10ms}", "cluster.interval"},
		{"cluster: {name: a, peers: [{name: a, api: 'http://x:1'}]}", "cluster.peers[0].name"},
		{"cluster: {peer: []}", "cluster.peer"},
	} {
		_, err := ParseConfig([]byte("listen: 127.0.0.1:0\nzones: [{name: example.test}]\n" + tc.y + "\n"))
		if err == nil {
			var c *Config
			c, _ = ParseConfig([]byte("listen: 127.0.0.1:0\nzones: [{name: example.test}]\n" + tc.y + "\n"))
			_, err = compile(c)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want an error naming %s", tc.y, err, tc.want)
		}
	}
}
