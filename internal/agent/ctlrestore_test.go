package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobtest"
)

// TestControlRestorePreserveKey: a restore that fails after keeping the
// disks' state answers that point with its error; a retry under the same
// key uses it again instead of preserving the half-written disks, and
// finishes the restore.
func TestControlRestorePreserveKey(t *testing.T) {
	var fault *blobtest.Fault
	v := newVault(t, func(be blob.Backend) blob.Backend { fault = blobtest.NewFault(be); return fault })
	f := newCtlFixtureOn(t, v, ProviderNone, t.TempDir(), true)
	if code, msg := f.post(t, "/v1/machines/m1/stop", nil, &struct{}{}); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, msg)
	}
	var snap SnapshotResult
	if code, msg := f.post(t, "/v1/machines/m1/snapshot", nil, &snap); code != http.StatusOK {
		t.Fatalf("snapshot: %d %s", code, msg)
	}
	final := snap.Points["m1"]
	atFinal := pointSum(t, f.v, final)
	writeRandom(t, f.disk, 4<<20) // the old primary wrote everywhere since
	diverged := fileSum(t, f.disk)

	// Fail the restore's third read of packed data: the disk is then
	// partly written.
	var gets atomic.Int32
	fault.Set(func(_ context.Context, op, name string) error {
		if op == "get" && strings.HasPrefix(name, "data/") && gets.Add(1) > 2 {
			return errors.New("injected: storage gone")
		}
		return nil
	})
	n := pointCount(t, f.v)
	req := RestoreRequest{Point: final, Preserve: true, PreserveKey: "job1/m1"}
	code, body := f.raw(t, "/v1/machines/m1/restore", req)
	var failed struct{ Error, Preserved string }
	if err := json.Unmarshal(body, &failed); err != nil || code/100 == 2 || failed.Preserved == "" {
		t.Fatalf("failed restore answered %d %s; want an error naming the preserved point", code, body)
	}
	fault.Set(nil)
	if fileSum(t, f.disk) == diverged {
		t.Fatalf("setup: the failed restore wrote nothing (%s)", failed.Error)
	}
	if pointSum(t, f.v, failed.Preserved) != diverged {
		t.Fatal("the preserved point is not the disk before the restore")
	}
	if pointCount(t, f.v) != n+1 {
		t.Fatalf("points: %d, want %d", pointCount(t, f.v), n+1)
	}

	var res RestoreResult
	if code, msg := f.post(t, "/v1/machines/m1/restore", req, &res); code != http.StatusOK {
		t.Fatalf("retry: %d %s", code, msg)
	}
	if res.Preserved != failed.Preserved || pointCount(t, f.v) != n+1 {
		t.Fatalf("retry preserved %s (points %d); want %s again and no new point", res.Preserved, pointCount(t, f.v), failed.Preserved)
	}
	if fileSum(t, f.disk) != atFinal {
		t.Fatal("the retry did not finish the restore")
	}
	if len(res.Disks) != 1 || res.Disks[0].Differing == 0 {
		t.Fatalf("retry result %+v: the differing bytes are counted against the preserved state", res.Disks)
	}
	// Another key is another restore: its disks' state is kept anew.
	if code, msg := f.post(t, "/v1/machines/m1/restore", RestoreRequest{Point: final, Preserve: true, PreserveKey: "job2/m1"}, &res); code != http.StatusOK || res.Preserved == failed.Preserved {
		t.Fatalf("restore under another key: %d %s, preserved %s", code, msg, res.Preserved)
	}
}

// raw POSTs in and returns the status and the body as is.
func (f *ctlFixture) raw(t *testing.T, path string, in any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, f.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
