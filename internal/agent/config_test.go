package agent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const exampleConfig = `
vault: file:///srv/haven-vault
password_file: /etc/haven/password
state_dir: /var/lib/haven/agent
listen: 127.0.0.1:7717
bandwidth: 20MiB
machines:
  - name: db1
    group: shop
    provider: reflink
    disks:
      - {name: root, path: /images/db1-root.img}
      - {name: data, path: /images/db1-data.img}
    freeze: [/mnt/db1]
    hooks:
      pre: "psql -c CHECKPOINT"
      timeout: 30s
    policy:
      frequency: 15s
      app_frequency: 5m
      rpo_alert: 1m
      retention: {keep_within: 2h, keep_hourly: 24, keep_daily: 7}
  - name: web1
    group: shop
    provider: none
    disks: [{name: root, path: /images/web1.img}]
`

func TestConfigExample(t *testing.T) {
	c, err := ParseConfig(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Machines[0]
	if c.UploadLimit() != 20<<20 || m.Policy.Frequency != 15*time.Second || m.Policy.Retention.Within != 2*time.Hour ||
		m.Policy.Retention.Daily != 7 || m.Hooks.Timeout != 30*time.Second || m.CloneDir != "/images/.haven-clones" {
		t.Fatalf("parsed %+v", c)
	}
	if w := c.Machines[1]; w.Policy.Frequency != 5*time.Minute || w.Policy.RPOAlert != 10*time.Minute {
		t.Fatalf("defaults: %+v", w.Policy)
	}
}

func TestConfigQemu(t *testing.T) {
	c, err := ParseConfig(`
vault: /v
state_dir: /var/lib/haven/agent
machines:
  - name: vm1
    provider: qemu
    qmp: /run/vm1/qmp.sock
    guest_agent: /run/vm1/qga.sock
  - name: vm2
    provider: qemu
    qmp: /run/vm2/qmp.sock
    disks: [{name: root, device: drive0}, {name: data, device: hvnode1}]
`)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Machines[0]; len(m.Disks) != 0 || m.CloneDir != "/var/lib/haven/agent/vm1/fleece" || m.GuestAgent != "/run/vm1/qga.sock" {
		t.Fatalf("parsed %+v", m)
	}
	if m := c.Machines[1]; m.Disks[1].Device != "hvnode1" {
		t.Fatalf("parsed %+v", m)
	}
	for _, tc := range []struct{ text, want string }{
		{"machines: [{name: m, provider: qemu, qmp: /q, disks: [{name: a, device: x}, {name: b, device: x}]}]", "listed twice"},
		{"machines: [{name: m, provider: qemu, qmp: /q, libvirt_domain: web}]", "not both"},
		{"machines: [{name: m, provider: qemu, libvirt_domain: web, libvirt_socket: sock}]", "not absolute"},
		{"machines: [{name: m, provider: qemu, qmp: /q, libvirt_socket: /s}]", "libvirt_socket without libvirt_domain"},
		{"machines: [{name: m, provider: none, libvirt_domain: web, disks: [{name: a, path: /a.img}]}]", "are for provider qemu"},
		{"machines: [{name: m, provider: qemu, qmp: /q, disks: [{name: a, path: /a.img}]}]", "device missing"},
		{"machines: [{name: m, provider: qemu, qmp: /q, disks: [{name: a, device: x, path: a.img}]}]", "not absolute"},
		{"machines: [{name: m, provider: none, disks: [{name: a, path: /a.img, device: x}]}]", "device is for provider qemu"},
		{"state_dir: /" + strings.Repeat("x", 120) + "\nmachines: [{name: m, provider: qemu, qmp: /q}]", "too long"},
	} {
		_, err := ParseConfig("vault: /v\n" + tc.text + "\n")
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	base := "vault: /v\nmachines:\n  - name: m\n    disks: [{name: d, path: /d.img}]\n"
	for _, tc := range []struct{ extra, want string }{
		{"", "provider: missing"},
		{"    provider: fast\n", "want reflink"},
		{"    provider: none\n    policy: {frequency: 5s}\n", "below the minimum"},
		{"    provider: fsfreeze\n", "needs freeze"},
		{"    provider: hooks\n", "needs hooks.pre"},
		{"    provider: none\n    policy: {frequency: 1m, app_frequency: 30s}\n", "app_frequency"},
		{"    provider: none\n    colour: blue\n", "colour"},
		{"    provider: none\nlisten: 0.0.0.0:7717\n", "loopback"},
		{"    provider: reflink\n    freeze: [/]\n", "holds clone_dir"},
		{"    provider: none\n    qmp: /run/vm.qmp\n", "for provider qemu"},
		{"    provider: qemu\n", "needs qmp"},
		{"    provider: qemu\n    qmp: vm.qmp\n", "not absolute"},
		{"    provider: qemu\n    qmp: /run/vm.qmp\n", "device missing"},
		{"    provider: qemu\n    qmp: /run/vm.qmp\n    guest_agent: qga.sock\n", "guest_agent \"qga.sock\" is not absolute"},
		{"    provider: qemu\n    qmp: /run/vm.qmp\n    freeze: [/mnt]\n", "through guest_agent"},
	} {
		_, err := ParseConfig(base + tc.extra)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.extra, err, tc.want)
		}
	}
}
