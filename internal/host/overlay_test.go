package host

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/vnet/overlay"
)

// TestLocalOverlayWithoutSite: the server reads a host's underlay address
// from UnderlayAddr (none without an underlay); removing the overlay of
// a site already gone succeeds (an undo run again), with or without an
// underlay; making one without an underlay is refused, naming the key.
func TestLocalOverlayWithoutSite(t *testing.T) {
	h, err := NewLocal(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if a, err := h.UnderlayAddr(ctx); err != nil || a.IsValid() {
		t.Fatalf("no underlay: %v %v", a, err)
	}
	if err := h.EnsureOverlay(ctx, "gone", Overlay{}); err != nil {
		t.Fatalf("removing the overlay of a site that is not there: %v", err)
	}
	want := Overlay{Networks: []overlay.Network{{Name: "rec", VNI: 5000}}}
	if err := h.EnsureOverlay(ctx, "gone", want); err == nil || !strings.Contains(err.Error(), "overlay: local:") {
		t.Fatalf("an overlay on a host without underlay: %v", err)
	}
	h.Underlay = &overlay.Underlay{Local: netip.MustParseAddr("192.0.2.7")}
	if a, err := h.UnderlayAddr(ctx); err != nil || a != h.Underlay.Local {
		t.Fatalf("underlay address %v %v", a, err)
	}
	if err := h.EnsureOverlay(ctx, "gone", Overlay{}); err != nil {
		t.Fatalf("removing the overlay of a site that is not there, with an underlay: %v", err)
	}
	if err := h.EnsureOverlay(ctx, "gone", want); err == nil || !strings.Contains(err.Error(), "no such site") {
		t.Fatalf("an overlay of a site that is not there: %v", err)
	}
}

// TestOverlayTransitChecks: a host refuses a transit link whose VNI one
// of its other sites' networks or transit links has, and a route out
// through another host for a site that has this host's uplink.
func TestOverlayTransitChecks(t *testing.T) {
	h, err := NewLocal(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(h.overlayFile("tst"), Overlay{Networks: []overlay.Network{{Name: "drill", VNI: 5000}},
		Transit: &overlay.Transit{VNI: 5001, Addr: netip.MustParsePrefix("169.254.254.1/24")}}); err != nil {
		t.Fatal(err)
	}
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	edge := siteRecord{Site: "rec", Edge: "@eth0"}
	for _, tc := range []struct {
		rec  siteRecord
		tr   overlay.Transit
		want string
	}{
		{edge, overlay.Transit{VNI: 6000, Addr: p("169.254.254.1/24")}, ""},
		{siteRecord{Site: "rec"}, overlay.Transit{VNI: 6000, Addr: p("169.254.254.2/24"), Via: a("169.254.254.1")}, ""},
		{edge, overlay.Transit{VNI: 6000, Addr: p("169.254.254.2/24"), Via: a("169.254.254.1")}, "has this host's uplink"},
		{siteRecord{Site: "rec"}, overlay.Transit{VNI: 5000, Addr: p("169.254.254.2/24")}, "already tst/drill's"},
		{siteRecord{Site: "rec"}, overlay.Transit{VNI: 5001, Addr: p("169.254.254.2/24")}, "already tst's transit link's"},
		{siteRecord{Site: "rec"}, overlay.Transit{VNI: 6000}, "transit address"},
	} {
		err := h.checkOverlay("rec", tc.rec, Overlay{Transit: &tc.tr})
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v on %+v: %v, want %q", tc.tr, tc.rec, err, tc.want)
		}
	}
}

// TestUplinkOutsideTransitPrefix: a site's uplink /30 is never in the
// transit link's prefix, which the edge host's site holds beside it.
func TestUplinkOutsideTransitPrefix(t *testing.T) {
	moved := 0
	for i := range 100000 {
		ns := fmt.Sprintf("hv%06x-rec", i)
		e, s := transit(ns)
		if overlay.TransitPrefix.Overlaps(e.Masked()) || e.Masked() != s.Masked() || e.Bits() != 30 {
			t.Fatalf("uplink %v / %v", e, s)
		}
		if h := sum(ns); (uint32(h[0])<<8|uint32(h[1]))&0x3fff>>6 == 254 {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no name landed where the transit prefix is: the test proves nothing")
	}
}
