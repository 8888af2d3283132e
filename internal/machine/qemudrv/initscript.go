package qemudrv

// initScript is the initramfs /init: load the few modules a virtio guest
// needs, configure NICs from the kernel command line (so the host never
// has to reach into the guest), mount the root disk and switch to its init.
// Command line: haven.root=/dev/vda haven.init=/sbin/init haven.host=NAME
// haven.nic=MAC,ADDR/LEN,GATEWAY (repeatable); haven.probe only prints a
// marker and powers off (the KVM check).
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
nic() {
	for d in /sys/class/net/*; do
		[ "$(cat $d/address)" = "$1" ] || continue
		dev=${d##*/}
		ip link set $dev up
		ip addr add $2 dev $dev
		ip route add default via $3 dev $dev 2>/dev/null
		arping -U -c 1 -I $dev ${2%/*} >/dev/null 2>&1 &
	done
}
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
if grep -q haven.probe /proc/cmdline; then echo haven-probe-ok; poweroff -f; fi
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
root=/dev/vda; init=/sbin/init
for arg in $(cat /proc/cmdline); do
	case $arg in
	haven.root=*) root=${arg#haven.root=} ;;
	haven.init=*) init=${arg#haven.init=} ;;
	haven.host=*) hostname ${arg#haven.host=} ;;
	haven.nic=*) set -- $(echo ${arg#haven.nic=} | tr , ' '); nic "$@" ;;
	esac
done
ip link set lo up
i=0; while [ ! -b $root ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
mkdir -p /newroot
mount -t ext4 $root /newroot || { echo "haven-initramfs: cannot mount $root"; poweroff -f; }
[ -d /newroot/dev ] && mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot $init
`
