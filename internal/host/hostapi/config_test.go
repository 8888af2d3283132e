package hostapi

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "host.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := LoadConfig(write("state_dir: /s\ntoken_file: /s/token\ntls: {dir: /s/tls}\nedge: '@eth0'\noverlay: {local: 192.0.2.11, mtu: 1450}\n" +
		"vm_driver: libvirt\nlibvirt_socket: /run/lv/sock\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7443" || c.Overlay.Local != netip.MustParseAddr("192.0.2.11") || c.Overlay.MTU != 1450 || c.Edge != "@eth0" ||
		c.VMDriver != "libvirt" || c.LibvirtSocket != "/run/lv/sock" {
		t.Fatalf("loaded %+v overlay %+v", c, c.Overlay)
	}
	for name, body := range map[string]string{
		"unknown key":     "state_dir: /s\ntoken_file: /s/t\ntls: {dir: /s}\nlisten_on: x\n",
		"no state_dir":    "token_file: /s/t\ntls: {dir: /s}\n",
		"no tls":          "state_dir: /s\ntoken_file: /s/t\n",
		"bad overlay":     "state_dir: /s\ntoken_file: /s/t\ntls: {dir: /s}\noverlay: {local: not-an-ip}\n",
		"overlay no addr": "state_dir: /s\ntoken_file: /s/t\ntls: {dir: /s}\noverlay: {port: 4789}\n",
		"cert alone":      "state_dir: /s\ntoken_file: /s/t\ntls: {cert: /c}\n",
		"bad vm_driver":   "state_dir: /s\ntoken_file: /s/t\ntls: {dir: /s}\nvm_driver: xen\n",
	} {
		if _, err := LoadConfig(write(body)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}
