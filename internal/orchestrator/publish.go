package orchestrator

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/protection"
)

// publishes says whether any of machines publishes a service.
func publishes(cfg *protection.Config, machines []string) bool {
	return slices.ContainsFunc(machines, func(m string) bool {
		mc := cfg.Machine(m)
		return mc != nil && len(mc.Publish) > 0
	})
}

// publish installs the machines' published services on the recovery
// host, each recorded first so cancel and failback remove it. A test
// failover never gets here (its steps have no publish step) and the host
// refuses a site without an uplink besides.
func (r *run) publish(ctx context.Context, site string, machines []string) error {
	for _, m := range machines {
		mc := r.cfg.Machine(m)
		if mc == nil || len(mc.Publish) == 0 {
			continue
		}
		mr := r.out.Machines[m]
		if mr == nil {
			return fmt.Errorf("publish %s: the machine has no recovery address recorded", m)
		}
		addr, err := netip.ParseAddr(mr.Address)
		if err != nil {
			return fmt.Errorf("publish %s: address %q: %w", m, mr.Address, err)
		}
		var rules []host.PublishRule
		var shown []string
		for _, p := range mc.Publish {
			rules = append(rules, host.PublishRule{Proto: p.Proto, On: p.On.AddrPort, To: netip.AddrPortFrom(addr, p.Port)})
			shown = append(shown, fmt.Sprintf("%s %s -> %s:%d", p.Proto, p.On, addr, p.Port))
		}
		h, err := r.hostOf(ctx, m)
		if err != nil {
			return err
		}
		if err := r.intend(ctx, Resource{Kind: ResPublish, Site: site, Name: m, Host: h.Name}); err != nil {
			return err
		}
		if err := h.Host.Publish(ctx, site, m, rules); err != nil {
			return hostCall(h, err)
		}
		r.logf("info", "published %s: %s", m, strings.Join(shown, ", "))
	}
	return nil
}

// publishedAddrs are the host addresses the config publishes services on.
func publishedAddrs(cfg *protection.Config) []string {
	var out []string
	for _, m := range cfg.Machines {
		for _, p := range m.Publish {
			if a := p.On.Addr().String(); !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}
