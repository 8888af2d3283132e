package qemudrv

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

// TestProbeFirmwareTCG: under TCG, which always works, both firmware
// probes must pass, so a failing KVM probe means KVM, not the probe.
func TestProbeFirmwareTCG(t *testing.T) {
	qemu := testenv.LookPath(t, "qemu-system-x86_64")
	d := &Driver{QEMU: qemu}
	if _, err := d.ovmf(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	for _, fw := range []string{"bios", "uefi"} {
		if err := d.ProbeFirmware(context.Background(), "tcg", fw); err != nil {
			t.Errorf("%s: %v", fw, err)
		}
	}
}

// TestProbeFirmwareFails: a machine that never shows the marker (QEMU
// that is not there, or a boot that does not get there) is no proof.
func TestProbeFirmwareFails(t *testing.T) {
	d := &Driver{QEMU: "/nonexistent/qemu"}
	if err := d.ProbeFirmware(context.Background(), "tcg", "bios"); err == nil {
		t.Fatal("probe passed without QEMU")
	}
	for script, wantOK := range map[string]bool{
		"echo firmware banner; exec sleep 10":             false,
		"echo KVM internal error >&2; exec sleep 10":      false,
		"echo x; echo " + probeMarker + "; exec sleep 10": true,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := runUntil(ctx, testCmd(ctx, script), probeMarker)
		cancel()
		if (err == nil) != wantOK {
			t.Errorf("%q: err %v", script, err)
		}
	}
}

func testCmd(ctx context.Context, script string) *exec.Cmd {
	return exec.CommandContext(ctx, "sh", "-c", script)
}
