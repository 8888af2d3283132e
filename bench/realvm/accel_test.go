package realvm

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/machine/qemudrv"
)

var probes = struct {
	sync.Mutex
	errs map[string]error
}{errs: map[string]error{}}

// accelFor is the accelerator for a VM booting through firmware ("bios"
// or "uefi"): HAVEN_BENCH_ACCEL if set, else what the qemu driver's
// "auto" picks, by the same probe: KVM only if it boots that firmware's
// guest (on some hosts /dev/kvm exists but cannot run a stock boot
// loader), else TCG.
func accelFor(b *testing.B, firmware string) string {
	b.Helper()
	if a := os.Getenv("HAVEN_BENCH_ACCEL"); a != "" {
		return a
	}
	probes.Lock()
	defer probes.Unlock()
	err, done := probes.errs[firmware]
	if !done {
		err = (&qemudrv.Driver{}).ProbeFirmware(context.Background(), "kvm", firmware)
		probes.errs[firmware] = err
	}
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		b.Logf("KVM cannot boot a %s guest here (%s...), using TCG", firmware, msg)
		return "tcg"
	}
	return "kvm"
}
