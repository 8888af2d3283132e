package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
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

// ensureSite records the site as the job's and makes sure it exists on
// every recovery host that answers (a host that does not gets no machine;
// one that comes back gets the site when a machine is started on it).
func (r *run) ensureSite(ctx context.Context, site string, test bool) error {
	r.out.Site = site
	if err := r.intend(ctx, Resource{Kind: ResSite, Site: site}); err != nil {
		return err
	}
	down := r.o.HostHealth(ctx)
	r.o.siteMu.Lock()
	defer r.o.siteMu.Unlock()
	return r.siteOnHosts(ctx, site, test, down)
}

// siteOnHosts makes the site on every host that answers (down: those
// that do not) and joins them by the overlay. The caller holds siteMu.
func (r *run) siteOnHosts(ctx context.Context, site string, test bool, down map[string]error) error {
	var up []SiteHost
	for _, h := range r.o.hosts() {
		if err := down[h.Name]; err != nil {
			r.warn("host %s does not answer (%v): no %s site there; its machines are placed on the others", h.Name, err, site)
			continue
		}
		if err := r.makeSite(ctx, h, site, test); err != nil {
			return hostCall(h, err)
		}
		up = append(up, h)
	}
	return r.joinOverlay(ctx, site, test, up)
}

// makeSite asks host h for the site with this job's networks; the host
// adds networks in place and refuses to remake a site machines run on.
// Only an edge host gets the uplink. The caller holds siteMu.
func (r *run) makeSite(ctx context.Context, h SiteHost, site string, test bool) error {
	edge := ""
	if r.uplinkOn(h, test) {
		edge = r.o.Edge
	}
	return h.Host.EnsureSite(ctx, site, r.networks(test), edge)
}

// uplinkOn says whether the site has its uplink on host h: only an edge
// host's recovery site; a test network is isolated, no uplink at all.
func (r *run) uplinkOn(h SiteHost, test bool) bool {
	return !test && h.Edge && r.o.Edge != ""
}

// releaseSite removes the site from every host where no machine runs on
// it; it names the machines that still run (on any host). A host that
// does not answer is skipped: its site goes when it is removed or back.
func (r *run) releaseSite(ctx context.Context, site string) ([]string, error) {
	down := r.o.HostHealth(ctx)
	r.o.siteMu.Lock()
	defer r.o.siteMu.Unlock()
	known := r.knownMachines(ctx)
	var users []string
	var errs []error
	for _, h := range r.o.hosts() {
		if err := down[h.Name]; err != nil {
			r.warn("host %s does not answer (%v): the %s site there is left for when it is back", h.Name, err, site)
			continue
		}
		var here []string
		for _, m := range known {
			if h.Host.Running(site, m) {
				here = append(here, m)
			}
		}
		if len(here) > 0 {
			users = append(users, here...)
			continue
		}
		errs = append(errs, hostCall(h, h.Host.RemoveSite(ctx, site)))
	}
	return users, errors.Join(errs...)
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
