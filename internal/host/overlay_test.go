package host

import (
	"context"
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
