#!/usr/bin/env bash
# Recovery site (internal/vnet, internal/machine): kernel features and apt
# lists the tests need. Packages come from .ci/apt-packages.d/site.txt; the
# test image, the guest binary and the QEMU kernel + initramfs are built by
# the tests themselves and cached in /var/cache/haven-test.
set -euo pipefail
# Modules may be built in or unavailable in a container: best effort.
for m in loop tun bridge veth; do modprobe -q "$m" 2>/dev/null || true; done
[ -e /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }
# qemudrv.PrepareBoot resolves linux-image-amd64 with apt-cache: make sure
# the package lists are there even when every package was already installed.
if ! apt-cache depends linux-image-amd64 2>/dev/null | grep -q 'Depends: linux-image-'; then
	apt-get update -qq
fi
mkdir -p /var/cache/haven-test
