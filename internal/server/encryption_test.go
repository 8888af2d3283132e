package server_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/vault"
)

// TestEncryptionAlert: points whose churn shows text overwritten in
// place with random bytes (what encryption does) raise an encryption
// alert in the status, mark the points from there on suspect and name the
// point before as the last clean one; the operator closes it through the
// API with a note, and the alert ends while the record stays.
func TestEncryptionAlert(t *testing.T) {
	var ids []string
	e := newEnv(t, func(v *vault.Vault) {
		ctx := context.Background()
		img := filepath.Join(t.TempDir(), "db-root.img")
		const mib = 1 << 20
		if err := os.WriteFile(img, []byte(strings.Repeat("haven recovery point ", 4*mib/21)), 0o600); err != nil {
			t.Fatal(err)
		}
		var prev map[string][]vault.ID
		base := time.Now().Add(-time.Hour)
		take := func(i int, change func(f *os.File)) {
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			change(f)
			f.Close()
			res, err := v.SnapshotKnown(ctx, vault.SnapshotOptions{Machine: "db", Time: base.Add(time.Duration(i) * time.Minute),
				Disks: []vault.DiskSource{{Name: "root", Path: img}}, Consistency: vault.CrashConsistent, Previous: prev}, nil)
			if err != nil {
				t.Fatal(err)
			}
			prev = res.IDs
			ids = append(ids, res.Point.ID)
		}
		take(0, func(*os.File) {})
		for i := 1; i <= 5; i++ { // ordinary updates: text over text
			take(i, func(f *os.File) {
				f.WriteAt([]byte(strings.Repeat("update "+string(rune('a'+i))+" ", 20000)), int64(i)*100000)
			})
		}
		take(6, func(f *os.File) { // encryption: 3 MiB of text become random bytes
			b := make([]byte, 3*mib)
			rand.Read(b)
			f.WriteAt(b, 0)
		})
		take(7, func(f *os.File) { f.WriteAt([]byte("more"), 3*mib+5) })
	})
	e.cfg.EncryptionDetection.MinBytes = 1 << 20
	r := e.start(t)
	r.mustApply(t, e.doc())
	st := status(t, r)
	db := machineStatus(t, st, "db")
	if db.LastClean != ids[5] || len(db.Encryption) != 1 || !db.Encryption[0].Open || db.Encryption[0].FirstSuspect != ids[6] ||
		db.Encryption[0].Suspect != 2 || db.Encryption[0].Disk != "root" {
		t.Fatalf("db status: last clean %q, alerts %+v; want last clean %s, one open alert from %s with 2 suspect points", db.LastClean, db.Encryption, ids[5], ids[6])
	}
	if !hasAlert(st, "machine db: mass encryption suspected from point "+ids[6]) {
		t.Fatalf("alerts %q lack the encryption alert", st.Alerts)
	}
	if web := machineStatus(t, st, "web"); web.LastClean != "" || len(web.Encryption) != 0 {
		t.Fatalf("web without points has alerts: %+v", web.Encryption)
	}
	var pts []api.PointView
	r.admin(t, "GET", "/v1/machines/db/points", nil).decode(t, &pts)
	for _, p := range pts {
		wantSuspect := p.ID == ids[6] || p.ID == ids[7]
		if p.Suspect != wantSuspect || p.LastClean != (p.ID == ids[5]) {
			t.Errorf("point %s: suspect %v, last clean %v", p.ID, p.Suspect, p.LastClean)
		}
	}
	if a := r.admin(t, "POST", "/v1/machines/db/encryption-alerts/nope/close", nil); a.status != http.StatusNotFound {
		t.Fatalf("closing an unknown alert: %d %s", a.status, a.body)
	}
	if a := r.admin(t, "POST", "/v1/machines/db/encryption-alerts/"+ids[6]+"/close", []byte(`{"bogus":1}`)); a.status != http.StatusBadRequest {
		t.Fatalf("closing with a bad body: %d %s", a.status, a.body)
	}
	a := r.admin(t, "POST", "/v1/machines/db/encryption-alerts/"+ids[6]+"/close", []byte(`{"note":"failed over to the last clean point"}`))
	var closed api.EncryptionAlert
	a.decode(t, &closed)
	if a.status != http.StatusOK || closed.Open || closed.Note != "failed over to the last clean point" {
		t.Fatalf("close: %d %+v", a.status, closed)
	}
	var audit []api.AuditEntry
	r.admin(t, "GET", "/v1/audit", nil).decode(t, &audit)
	if len(audit) == 0 || audit[0].Action != "encryption-alert.close" || audit[0].Target != "db" {
		t.Fatalf("audit log %+v: want the close first", audit)
	}
	st = status(t, r)
	db = machineStatus(t, st, "db")
	if hasAlert(st, "machine db: mass encryption") || db.LastClean != "" || len(db.Encryption) != 1 || db.Encryption[0].Open {
		t.Fatalf("after close: alerts %q, db %+v", st.Alerts, db)
	}
}
