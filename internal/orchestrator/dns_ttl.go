package orchestrator

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/haven-dr/haven/internal/protection"
)

// maxTTLDrain bounds the wait for resolvers to let go of answers cached
// under a profile's old TTL: a planned failover of a profile with a TTL of
// hours does not wait hours before its stop (those customers see the old
// site for up to the rest of that TTL, as without the lowering).
const maxTTLDrain = 30 * time.Second

// ResDNSTTL: profile Name's TTL, lowered by a planned failover; undo puts
// the config's back.
const ResDNSTTL = "dns-ttl"

// lowerTTL sets the TTL of every profile the plan's planned failover (or
// failback: direction) moves to 0 before anything stops: the cut-over is known in advance, and a resolver
// that cached the primary's answer keeps sending customers there for up to
// its TTL after haven dns changed it (Unbound counts TTLs in whole seconds,
// so a TTL of 1 held answers up to 2 s: bench/planned/PROFILE-planned.md).
// The stop then waits until answers cached under the old TTL have expired
// (drainTTL), while the primaries still serve. cutOver puts the config's
// TTL back once the new answer is out. A traffic manager that cannot do it
// is warned about and the failover goes on as before.
func (r *run) lowerTTL(ctx context.Context, plan *protection.Plan, direction string) error {
	if r.cfg.Traffic == nil {
		return errSkipped
	}
	var profiles []string
	for _, g := range plan.Groups {
		for _, a := range slices.Concat(g.Before, g.After) {
			if a.Type == protection.ActionDNS && a.Applies("planned", direction) && !slices.Contains(profiles, a.Profile) {
				profiles = append(profiles, a.Profile)
			}
		}
	}
	if len(profiles) == 0 {
		return errSkipped
	}
	tr := r.o.traffic(r.cfg.Traffic)
	if !tr.canSetTTL() {
		r.logf("info", "the traffic manager cannot lower a profile's TTL: resolvers keep the old answer up to its TTL after the cut-over")
		return errSkipped
	}
	var drain time.Duration
	for _, name := range profiles {
		prof, err := tr.Profile(ctx, name)
		if err != nil {
			r.warn("DNS: TTL of %s not lowered before the stop: %v", name, err)
			continue
		}
		if prof.TTL == 0 {
			continue
		}
		if err := r.intend(ctx, Resource{Kind: ResDNSTTL, Name: name}); err != nil {
			return err
		}
		if err := tr.SetProfileTTL(ctx, name, ptr(uint32(0))); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.warn("DNS: TTL of %s not lowered before the stop: %v", name, err)
			continue
		}
		// A second more than the TTL: resolvers count it in whole
		// seconds from the second they cached the answer in.
		d := time.Duration(prof.TTL)*time.Second + time.Second
		if d > maxTTLDrain {
			r.warn("DNS: %s has a TTL of %ds; the stop waits %s for resolvers, customers behind others may see the old site up to the rest of it",
				name, prof.TTL, maxTTLDrain)
			d = maxTTLDrain
		}
		drain = max(drain, d)
		r.logf("info", "DNS: TTL of %s lowered from %ds to 0 until the cut-over", name, prof.TTL)
	}
	if drain == 0 {
		return errSkipped
	}
	r.ttlDrain = time.Now().Add(drain)
	return nil
}

// drainTTL waits, before the stop, until answers resolvers cached under
// the old TTL have expired: customers still reach the running primaries
// meanwhile, and after the cut-over none is sent to the stopped ones by a
// cache. A job resumed after a restart of the server does not wait.
func (r *run) drainTTL(ctx context.Context) error {
	d := time.Until(r.ttlDrain)
	if r.ttlDrain.IsZero() || d <= 0 {
		return errSkipped
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
	}
	return nil
}

// restoreTTL puts the config's TTL back on a profile whose TTL this job
// lowered, once the cut-over's answer is out (cached from then on under
// the usual TTL, which is what customers should now get).
func (r *run) restoreTTL(ctx context.Context, profile string) {
	if !slices.ContainsFunc(r.out.Resources, func(x Resource) bool { return x.Kind == ResDNSTTL && x.Name == profile }) {
		return
	}
	if err := r.o.traffic(r.cfg.Traffic).SetProfileTTL(ctx, profile, nil); err != nil {
		r.warn("DNS: the config's TTL of %s not put back after the cut-over (it answers with TTL 0 until `haven dns` is told): %v", profile, err)
		return
	}
	r.logf("info", "DNS: %s answers with its config's TTL again", profile)
}

// undoTTL puts a lowered TTL back (undo of ResDNSTTL); a traffic manager
// that never could lower it has nothing to put back.
func (r *run) undoTTL(ctx context.Context, cfg *protection.Config, x Resource) error {
	if cfg.Traffic == nil {
		return nil
	}
	err := r.o.traffic(cfg.Traffic).SetProfileTTL(ctx, x.Name, nil)
	if errors.Is(err, errNoTTL) {
		return nil
	}
	return err
}
