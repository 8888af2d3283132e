package hostapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/vault"
)

// TestPrepareDiskAfterDroppedCall: a caller gives up on a restore 20 ms
// in (its deadline cuts the call); the same call again joins the restore
// still running on the host instead of starting a second one on the same
// disk: the point's data is fetched once, the disk holds the point, and
// a third call finds it done. A real vault and a real host.Local, no
// root.
func TestPrepareDiskAfterDroppedCall(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fb, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	be := &countingBackend{Backend: fb}
	v, err := vault.Init(ctx, be, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	data := make([]byte, 64<<20)
	rand.Read(data)
	src := filepath.Join(dir, "web.img")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p, _, err := v.Snapshot(ctx, vault.SnapshotOptions{Machine: "web", Disks: []vault.DiskSource{{Name: "root", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := host.NewLocal(filepath.Join(dir, "host"), v, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{B: h, Token: "0123456789abcdef0123", DiskDir: filepath.Join(dir, "disks"), Info: Info{Vault: true}, Grace: time.Minute}
	ts := httptest.NewTLSServer(s.Handler())
	defer ts.Close()
	c := &Client{URL: ts.URL, Token: s.Token, DiskDir: "/srv/disks", HTTP: ts.Client(), Retries: -1}
	req := host.DiskRequest{Machine: "web", Disk: "root", Point: p.ID, Target: "/srv/disks/job/web/root.img"}

	cut, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = c.PrepareDisk(cut, req)
	cancel()
	if err == nil {
		t.Fatal("a 64 MiB restore finished within 20 ms: the call was not cut")
	}
	res, err := c.PrepareDisk(ctx, req)
	if err != nil || res.Method != "restore" {
		t.Fatalf("the call again: %+v %v", res, err)
	}
	// One restore in all: the retry joined the cut one instead of
	// writing the same disk beside it.
	if n := be.fetched.Load(); n > int64(len(data))*3/2 {
		t.Fatalf("%d bytes fetched for a %d-byte disk: the disk was restored twice", n, len(data))
	}
	got, err := os.ReadFile(filepath.Join(s.DiskDir, "job", "web", "root.img"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("prepared disk differs from the point (%v)", err)
	}
	if res, err := c.PrepareDisk(ctx, req); err != nil || res.Method != "existing" {
		t.Fatalf("third call: %+v %v", res, err)
	}
}

// countingBackend counts the pack bytes the vault reads.
type countingBackend struct {
	blob.Backend
	fetched atomic.Int64
}

func (b *countingBackend) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	d, err := b.Backend.Get(ctx, name, off, n)
	if strings.HasPrefix(name, "data/") {
		b.fetched.Add(int64(len(d)))
	}
	return d, err
}
