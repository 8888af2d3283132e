package debimage

import (
	"os"
	"testing"
)

// selfTest gates the image's own boot tests. Every CI run boots the image
// anyway, through the drivers (qemudrv's TestFirmwareReaddress boots it
// with SeaBIOS re-addressed and with OVMF keeping its addresses; nsdrv's
// Debian tests run its root), and each boot here costs half a minute of
// TCG. Set HAVEN_IMAGE_SELFTEST=1 after changing the recipe.
func selfTest(t *testing.T) {
	t.Helper()
	if os.Getenv("HAVEN_IMAGE_SELFTEST") != "1" {
		t.Skip("image self-test: set HAVEN_IMAGE_SELFTEST=1 (the drivers' tests boot this image in every run)")
	}
}
