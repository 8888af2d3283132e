package orchestrator

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// Sites are shared: every plan's failover uses the recovery site and every
// drill the test site, because the recovery networks are one set for all
// plans (a plan's web server may talk to another plan's database). A site
// is counted by what runs on it, not by a stored counter: undo removes it
// only when no machine of any plan runs there (the host says), and every
// step that starts a machine makes sure its site exists first. Both hold
// siteMu, so a removal cannot fall between another job's check and its
// start. A crash cannot skew the count, since nothing is counted.

// ensureSite records the site as the job's and makes sure it exists.
func (r *run) ensureSite(ctx context.Context, site string, test bool) error {
	r.out.Site = site
	if err := r.intend(ctx, Resource{Kind: ResSite, Site: site}); err != nil {
		return err
	}
	r.o.siteMu.Lock()
	defer r.o.siteMu.Unlock()
	return r.makeSite(ctx, site, test)
}

// makeSite asks the host for the site with this job's networks; the host
// adds networks in place and refuses to remake a site machines run on.
// The caller holds siteMu.
func (r *run) makeSite(ctx context.Context, site string, test bool) error {
	edge := r.o.Edge
	if test {
		edge = "" // a test network is isolated: no uplink at all
	}
	return r.o.Host.EnsureSite(ctx, site, r.networks(test), edge)
}

// releaseSite removes the site unless machines still run on it, which it
// then names.
func (r *run) releaseSite(ctx context.Context, site string) ([]string, error) {
	r.o.siteMu.Lock()
	defer r.o.siteMu.Unlock()
	var users []string
	for _, m := range r.knownMachines(ctx) {
		if r.o.Host.Running(site, m) {
			users = append(users, m)
		}
	}
	if len(users) > 0 {
		return users, nil
	}
	return nil, r.o.Host.RemoveSite(ctx, site)
}

// knownMachines lists every machine a job may have started: those of the
// applied config, of this job's and of every active job's config.
func (r *run) knownMachines(ctx context.Context) []string {
	var out []string
	add := func(c *protection.Config) {
		for _, m := range c.Machines {
			if !slices.Contains(out, m.Name) {
				out = append(out, m.Name)
			}
		}
	}
	add(r.cfg)
	if c, _, err := r.o.Config(ctx); err == nil {
		add(c)
	}
	jobs, _ := r.o.Store.Jobs(ctx, store.JobFilter{Active: true})
	for _, j := range jobs {
		var c protection.Config
		if json.Unmarshal(j.Config, &c) == nil {
			add(&c)
		}
	}
	return out
}
