package orchestrator

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/protection"
)

func (r *run) runAction(ctx context.Context, name string, a protection.Action, machines []string, site, typ, dir string) error {
	switch a.Type {
	case protection.ActionManual:
		if r.out.Approved[name] {
			return nil
		}
		msg := a.Message
		if msg == "" {
			msg = "manual step"
		}
		r.logf("info", "waiting for approval: %s (haven job approve %s)", msg, r.job.ID)
		return errWaiting
	case protection.ActionWaitHealth:
		if dir == "failback" {
			return errSkipped // the primary is probed by the traffic manager
		}
		return r.waitHealthy(ctx, site, machines, typ == "test")
	case protection.ActionScript:
		return r.script(ctx, a, site, typ, dir)
	case protection.ActionDNS:
		return r.cutOver(ctx, a, dir)
	}
	return fmt.Errorf("unknown action type %q", a.Type)
}

// scriptEnvKept are the only variables of the server's environment a
// script sees: the server's may hold HAVEN_PASSWORD or cloud credentials,
// and a script's output lands in the job log every viewer reads.
var scriptEnvKept = []string{"PATH", "HOME", "LANG"}

func scriptBaseEnv() []string {
	env := []string{}
	for _, k := range scriptEnvKept {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// script runs through /bin/sh with the job's facts in its environment
// (docs/orchestrator.md lists them) and nothing else of the server's;
// each machine's recovery address is HAVEN_ADDR_<NAME> (upper case, - as
// _), and HAVEN_SITE_NS is the namespace the machines are reached from.
func (r *run) script(ctx context.Context, a protection.Action, site, typ, dir string) error {
	t := a.Timeout
	if t == 0 {
		t = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", a.Run)
	cmd.Env = append(scriptBaseEnv(), "HAVEN_JOB="+r.job.ID, "HAVEN_PLAN="+r.job.Plan,
		"HAVEN_FAILOVER_TYPE="+typ, "HAVEN_DIRECTION="+dir, "HAVEN_SITE="+site)
	if site != "" {
		cmd.Env = append(cmd.Env, "HAVEN_SITE_NS="+r.o.edgeHost().Host.SiteNS(site))
	}
	for m, mr := range r.out.Machines {
		k := strings.ToUpper(strings.ReplaceAll(m, "-", "_"))
		cmd.Env = append(cmd.Env, "HAVEN_ADDR_"+k+"="+mr.Address)
	}
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			r.logf("info", "script: %s", l)
		}
	}
	if err != nil {
		return fmt.Errorf("script %q: %w", a.Run, err)
	}
	return nil
}

// cutOver makes a.Endpoint the profile's only answer and waits until a
// majority of the traffic manager's servers answers with it over DNS
// (the others are named in a warning and Outputs.DNSServers). The endpoints' previous settings are
// recorded first, so cancel can put them back.
func (r *run) cutOver(ctx context.Context, a protection.Action, dir string) error {
	tr := r.o.traffic(r.cfg.Traffic)
	prof, err := tr.Profile(ctx, a.Profile)
	if err != nil {
		return fmt.Errorf("traffic manager: profile %s: %w", a.Profile, err)
	}
	var target string
	for _, e := range prof.Endpoints {
		if e.Name == a.Endpoint {
			target = e.Target
		}
	}
	if target == "" {
		return fmt.Errorf("traffic manager: profile %s has no endpoint %q with a target", a.Profile, a.Endpoint)
	}
	if pub := publishedAddrs(r.cfg); dir == "failover" && len(pub) > 0 && !slices.Contains(pub, target) {
		// Customers go where DNS sends them; with services published
		// at the recovery site that is normally one of their addresses.
		r.warn("DNS endpoint %s/%s targets %s, which is none of the addresses the recovery site publishes on (%s)",
			a.Profile, a.Endpoint, target, strings.Join(pub, ", "))
	}
	for _, e := range prof.Endpoints {
		want := dns.EndpointPatch{Enabled: ptr(e.Name == a.Endpoint)}
		if e.Name == a.Endpoint {
			want.Priority = ptr(1)
		}
		already := e.Enabled == *want.Enabled && (want.Priority == nil || e.Priority == *want.Priority)
		if !already {
			if err := r.intend(ctx, Resource{Kind: ResDNS, Name: a.Profile + "/" + e.Name,
				Enabled: ptr(e.Enabled), Priority: ptr(e.Priority)}); err != nil {
				return err
			}
		} else if len(tr.servers) == 1 {
			continue
		}
		// Sent again when the newest server has it already: the others
		// may not (a resumed step after a crash between two servers).
		if err := tr.UpdateEndpoint(ctx, a.Profile, e.Name, want); err != nil {
			return fmt.Errorf("traffic manager: %s/%s: %w", a.Profile, e.Name, err)
		}
	}
	r.logf("info", "DNS: %s -> %s (%s); waiting for the answer to change", a.Profile, a.Endpoint, target)
	t := a.Timeout
	if t == 0 {
		t = 2 * time.Minute
	}
	deadline := time.Now().Add(t)
	for {
		ans := tr.answersEach(ctx, a.Profile)
		ok, others := onlyTarget(ans, target)
		if ok >= tr.quorum() {
			now := time.Now().UTC()
			r.out.DNSAt, r.out.DNSServers = &now, ans
			r.logf("info", "DNS answers %s with %s after %s (%d of %d servers)", a.Profile, target,
				now.Sub(r.out.Started).Round(time.Millisecond), ok, len(ans))
			if len(others) > 0 {
				r.warn("DNS: servers not yet answering %s with %s: %s; they catch up from their peers or the server's reconcile",
					a.Profile, target, strings.Join(others, ", "))
			}
			r.restoreTTL(ctx, a.Profile)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("DNS: only %d of %d servers answer %s with %s after %s, %d needed: %s",
				ok, len(ans), a.Profile, target, t, tr.quorum(), strings.Join(others, ", "))
		}
		// Asked again soon: a server answers the change within
		// milliseconds, and every tick waited here is customers' outage.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ptr[T any](v T) *T { return &v }
