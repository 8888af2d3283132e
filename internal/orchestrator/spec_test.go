package orchestrator

import (
	"os"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// A machine keeping its primary address boots untouched; one given another
// address (static here) is re-addressed by the driver, and the firmware
// choice reaches the spec.
func TestSpecReaddressAndFirmware(t *testing.T) {
	b, err := os.ReadFile("../protection/testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(b), "    driver: ns\n", "    driver: qemu\n    firmware: uefi\n", 1)
	doc = strings.Replace(doc, "        address: 10.1.0.20/24\n", "        address: 10.1.0.20/24\n        recovery: static\n        static: 10.1.0.77\n", 1)
	cfg, err := protection.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r := &run{o: &Orchestrator{Options: Options{DiskDir: t.TempDir()}}, job: &store.Job{ID: "j"}, cfg: cfg, out: &Outputs{}}
	db, err := r.spec("db", false)
	if err != nil {
		t.Fatal(err)
	}
	if db.Readdress || db.Firmware != "uefi" {
		t.Errorf("db keeps 10.1.0.10 on uefi: readdress=%v firmware=%q", db.Readdress, db.Firmware)
	}
	web, err := r.spec("web", false)
	if err != nil {
		t.Fatal(err)
	}
	if !web.Readdress || web.NICs[0].Addr.Addr().String() != "10.1.0.77" {
		t.Errorf("web moves to 10.1.0.77: readdress=%v nics=%v", web.Readdress, web.NICs)
	}
}
