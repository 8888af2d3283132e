package orchestrator

import (
	"context"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/protection"
)

// TrafficServerState is one traffic manager server as the control plane
// sees it.
type TrafficServerState struct {
	Name       string `json:"name"`
	Reachable  bool   `json:"reachable"`
	Error      string `json:"error,omitempty"`
	Generation uint64 `json:"generation"` // its newest endpoint change
	// Pushed: changes it lacked and was sent by this reconcile.
	Pushed int `json:"pushed,omitempty"`
	// Answers: profile -> what it answers over DNS (TrafficServers only).
	Answers map[string]ServerAnswer `json:"answers,omitempty"`
}

// ReconcileTraffic brings every reachable server of t up to the newest
// change any of them holds, per endpoint by generation: a server that
// was down or cut off gets what the others acknowledged meanwhile. The
// servers adopt only newer changes, so running it at any time, or
// against a server that is ahead, changes nothing else.
func (o *Orchestrator) ReconcileTraffic(ctx context.Context, t *protection.Traffic) []TrafficServerState {
	q := o.traffic(t)
	states := make([]dns.ClusterState, len(q.servers))
	errs := q.each(func(i int, tr Traffic) (err error) {
		st, ok := tr.(StatefulTraffic)
		if !ok {
			return nil // a traffic manager without /v1/state: nothing to reconcile
		}
		states[i], err = st.State(ctx)
		return err
	})
	desired := map[[2]string]dns.EndpointOverride{}
	for i, st := range states {
		if errs[i] != nil {
			continue
		}
		for _, ov := range st.Overrides {
			k := [2]string{ov.Profile, ov.Endpoint}
			if ov.Generation > desired[k].Generation {
				desired[k] = ov
			}
		}
	}
	out := make([]TrafficServerState, len(q.servers))
	for i, s := range q.servers {
		out[i] = TrafficServerState{Name: s.name, Reachable: errs[i] == nil, Generation: states[i].Generation}
		if errs[i] != nil {
			out[i].Error = errs[i].Error()
			continue
		}
		missing := lacking(states[i], desired)
		st, ok := s.tr.(StatefulTraffic)
		if len(missing) == 0 || !ok {
			continue
		}
		after, err := st.PushState(ctx, missing)
		if err != nil {
			out[i].Error = "re-push: " + err.Error()
			continue
		}
		out[i].Pushed, out[i].Generation = len(missing), after.Generation
		o.log.Info("traffic manager server caught up", "server", s.name, "changes", len(missing), "generation", after.Generation)
	}
	return out
}

// lacking is the desired overrides newer than the server's.
func lacking(st dns.ClusterState, desired map[[2]string]dns.EndpointOverride) []dns.EndpointOverride {
	have := map[[2]string]uint64{}
	for _, ov := range st.Overrides {
		have[[2]string{ov.Profile, ov.Endpoint}] = ov.Generation
	}
	var out []dns.EndpointOverride
	for k, ov := range desired {
		if ov.Generation > have[k] {
			out = append(out, ov)
		}
	}
	return out
}

// TrafficServers reconciles t's servers and reports each with what it
// answers over DNS for each of names.
func (o *Orchestrator) TrafficServers(ctx context.Context, t *protection.Traffic, names []string) []TrafficServerState {
	out := o.ReconcileTraffic(ctx, t)
	q := o.traffic(t)
	for _, n := range names {
		for i, a := range q.answersEach(ctx, n) {
			if out[i].Answers == nil {
				out[i].Answers = map[string]ServerAnswer{}
			}
			out[i].Answers[n] = a
		}
	}
	return out
}
