// Package debimage builds, caches and hands out a small Debian bookworm
// disk image for tests and benchmarks of real machines: it boots under
// QEMU with SeaBIOS and with OVMF through its own bootloaders, and its root
// partition can be run by a container driver (systemd as PID 1, no
// kernel). Test harness only.
//
// # Image contract
//
// Raw image, 2 GiB apparent size (sparse, about 0.6 GiB of data), GPT,
// disk GUID and partition UUIDs fixed (every copy is a clone):
//
//   - Partition 1 (Image.ESPPartition), 256 MiB, EFI system partition,
//     FAT32 labelled ESP: systemd-boot as \EFI\BOOT\BOOTX64.EFI (the
//     removable-media path OVMF boots without NVRAM entries) and
//     \EFI\systemd\systemd-bootx64.efi, \loader\loader.conf (timeout 0),
//     \loader\entries\debian.conf, and the kernel and initrd beside them.
//   - Partition 2 (Image.RootPartition), the rest, GPT type Linux root
//     x86-64 with the legacy-BIOS-bootable attribute, PARTUUID
//     Image.RootPartUUID: ext4 (no 64bit feature, which syslinux cannot
//     read), label root, UUID Image.RootFSUUID, with extlinux in
//     /boot/extlinux; syslinux's gptmbr.bin is the protective MBR's boot
//     code, so SeaBIOS boots it.
//   - Both bootloaders pass Image.Cmdline: root=PARTUUID=<root> rw
//     console=ttyS0,115200 net.ifnames=0 (NICs are eth0, eth1... in PCI
//     order). /etc/fstab mounts nothing.
//
// Inside: systemd as PID 1, udev, dbus; /etc/machine-id empty, so each
// boot makes one up and commits it (no first-boot presets). PostgreSQL 15
// (cluster 15/main) enabled, listen_addresses='*', role haven with
// password haven owning database haven, reachable over TCP from anywhere
// with scram-sha-256; JIT off (libLLVM is left out). qemu-guest-agent is
// started by udev when the virtio-serial port org.qemu.guest_agent.0
// appears. systemd-networkd is enabled (wait-online is not). cloud-init
// 22.4 with the networkd renderer and only the quick modules (no ssh, apt,
// users): a seed, either a vfat or iso9660 filesystem labelled cidata or
// the directory /var/lib/cloud/seed/nocloud-net/ (as LXD gives
// containers), holding meta-data (instance-id), user-data (#cloud-config)
// and network-config (v2, ethernets matched by macaddress, static
// addresses, routes or gateway4) makes the guest take those addresses; a
// new instance-id applies a new seed's network config; with no seed,
// ds-identify disables cloud-init and the .network files the last seed
// wrote stay in force. Name each ethernets entry after the NIC it matches
// (eth0, eth1...): cloud-init renames the matched NIC to the entry's key.
// datasource_list is [ NoCloud, ConfigDrive ]: both local, never a
// network metadata service; the second entry only keeps ds-identify from
// enabling a lone datasource unconditionally (which would make a boot
// without seed fall back to DHCP). A container runtime must leave the
// container CAP_NET_ADMIN (systemd-nspawn: --capability=CAP_NET_ADMIN) or
// networkd and cloud-init cannot configure its NICs.
// haven-ready.service (after PostgreSQL) prints ReadyMarker to
// /dev/console once pg_isready succeeds: the serial console log shows
// boot completion. The hostname is haven-test; root cannot log in (locked password).
//
// # Cache
//
// Images live in CacheDir, named by a hash of the recipe (package list,
// dpkg excludes, the files under recipe/, the layout, builderVersion and
// the host's apt sources), so a recipe change rebuilds and the older
// image is removed. Builds are serialized by a flock in CacheDir.
package debimage
