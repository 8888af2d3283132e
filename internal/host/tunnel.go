package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/vnet/wg"
)

func (h *Local) tunnelDir(site string) string { return filepath.Join(h.dir, "tunnels", site) }

// ensureTunnels brings the configured tunnels up on a site with an
// uplink (the recovery site; an isolated test site never gets one), or
// starts one whose process died. A running tunnel is left alone.
func (h *Local) ensureTunnels(site, edge string) error {
	if edge == "" {
		return nil
	}
	e := ParseEdge(edge)
	for _, c := range h.Tunnels {
		if err := wg.Start(h.tunnelDir(site), h.SiteNS(site), e.NS, c); err != nil {
			return fmt.Errorf("host: site %s: %w", site, err)
		}
	}
	return nil
}

func (h *Local) stopTunnels(site string) error { return wg.StopAll(h.tunnelDir(site)) }

// TunnelUp reports whether tunnel name runs for site.
func (h *Local) TunnelUp(site, name string) bool { return wg.Running(h.tunnelDir(site), name) }

// sweepTunnels stops tunnels of sites that no longer exist (they also
// end by themselves once their namespace is deleted; this removes their
// records and covers a namespace name made again since).
func (h *Local) sweepTunnels() error {
	dirs, _ := filepath.Glob(filepath.Join(h.dir, "tunnels", "*"))
	var errs []error
	for _, d := range dirs {
		site := filepath.Base(d)
		var srec siteRecord
		if readJSON(h.siteFile(site), &srec) == nil && nsExists(srec.NS) {
			continue
		}
		errs = append(errs, h.stopTunnels(site))
	}
	return errors.Join(errs...)
}

// sweep removes what sites that no longer exist left outside their
// namespaces; NewLocal runs it, so a server restarted after a crash
// cleans up first.
func (h *Local) sweep() error {
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return err
	}
	return errors.Join(h.sweepPublished(), h.sweepTunnels())
}
