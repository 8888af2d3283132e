package debimage

import (
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

// bootTimeout is generous: TCG on a loaded 2-core CI machine boots a full
// Debian several times slower than KVM.
const bootTimeout = 6 * time.Minute

// TestBoot boots a copy of the image with each firmware through its own
// bootloader (extlinux for SeaBIOS, systemd-boot for OVMF), waits for
// PostgreSQL to be up (the console marker), checks the guest agent
// answers, and powers the guest off over ACPI.
func TestBoot(t *testing.T) {
	selfTest(t)
	img := Require(t)
	for _, fw := range []string{"bios", "uefi"} {
		t.Run(fw, func(t *testing.T) {
			v := bootVM(t, Copy(t, img), vmOpts{firmware: fw})
			took := v.waitReady(bootTimeout)
			t.Logf("%s/%s: ready after %v", fw, v.accel, took.Round(time.Millisecond))
			b := v.consoleText()
			switch fw {
			case "bios":
				if strings.Contains(b, "efi: EFI v") {
					t.Errorf("SeaBIOS boot went through an EFI stub?\n%s", testenv.Tail([]byte(b)))
				}
			case "uefi":
				if !strings.Contains(b, "efi: EFI v") {
					t.Errorf("OVMF boot shows no EFI kernel messages:\n%s", testenv.Tail([]byte(b)))
				}
			}
			v.guestPing(time.Minute)
			v.powerdown(2 * time.Minute)
		})
	}
}
