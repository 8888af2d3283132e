package agent

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestControlRefusesStaleLeader: once an HA leader of epoch 2 gave an
// order, an order of epoch 1 (a deposed leader waking up) is refused
// with 409 for each kind of order and changes nothing: no hook runs, no
// point is taken, the disk is not written. An order without an epoch is
// refused too, and an unauthenticated one cannot raise the epoch.
func TestControlRefusesStaleLeader(t *testing.T) {
	f := newCtlFixture(t, ProviderNone, t.TempDir(), true)
	if err := f.a.Cycle(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	f.epoch = "2"
	if code, msg := f.post(t, "/v1/machines/m1/stop", nil, &struct{}{}); code != http.StatusOK {
		t.Fatalf("stop at epoch 2: %d %s", code, msg)
	}
	var snap SnapshotResult
	if code, msg := f.post(t, "/v1/machines/m1/snapshot", nil, &snap); code != http.StatusOK {
		t.Fatalf("snapshot at epoch 2: %d %s", code, msg)
	}
	points, disk := pointCount(t, f.v), fileSum(t, f.disk)

	f.epoch = "1"
	for _, o := range []struct {
		path string
		in   any
	}{
		{"/v1/machines/m1/stop", nil},
		{"/v1/machines/m1/start", nil},
		{"/v1/machines/m1/snapshot", nil},
		{"/v1/machines/m1/restore", RestoreRequest{Point: snap.Points["m1"]}},
	} {
		code, msg := f.post(t, o.path, o.in, nil)
		if code != http.StatusConflict || !strings.Contains(msg, "stale leader epoch 1 < 2") {
			t.Fatalf("%s at epoch 1: %d %s", o.path, code, msg)
		}
	}
	f.epoch = ""
	if code, msg := f.post(t, "/v1/machines/m1/start", nil, nil); code != http.StatusConflict || !strings.Contains(msg, "no leader epoch") {
		t.Fatalf("start without an epoch: %d %s", code, msg)
	}
	f.epoch = "100"
	if code, _ := f.call(t, http.MethodPost, "/v1/machines/m1/start", "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("start without a token: %d", code)
	}
	if lines(t, f.stops) != 1 || lines(t, f.starts) != 0 || pointCount(t, f.v) != points || fileSum(t, f.disk) != disk {
		t.Fatalf("refused orders changed the machine: stops %d starts %d points %d (was %d)",
			lines(t, f.stops), lines(t, f.starts), pointCount(t, f.v), points)
	}
	f.epoch = "3" // the new leader; an unauthenticated 100 raised nothing
	if code, msg := f.post(t, "/v1/machines/m1/start", nil, &struct{}{}); code != http.StatusOK || lines(t, f.starts) != 1 {
		t.Fatalf("start at epoch 3: %d %s", code, msg)
	}
}
