#!/usr/bin/env bash
# run.sh — agent replication cycle cost on the 4 GiB image of the vault
# benchmark, against restic's backup of the same image after `touch`.
#   bench/agent/run.sh            (as root; installs restic and xfsprogs with apt if missing)
# Results go to stdout and bench/agent/results.txt (or $OUT); arguments go
# to bench/agent/main.go (-churn 10,20,40 -churn-time 75s -chunk N -v -cpuprofile F).
# SKIP_RESTIC=1 leaves restic out (for churn runs such as -churn 100).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v restic >/dev/null || apt-get install -y restic >&2
command -v mkfs.xfs >/dev/null || apt-get install -y xfsprogs >&2
IMG=/var/cache/haven-bench/ext4-4g.img
bench/vault/mkimage.sh "$IMG"
WORK=$(mktemp -d /var/tmp/hvagentbench.XXXXXX)
MNT=$WORK/hvmnt
DEV=""
cleanup() {
	umount "$MNT" 2>/dev/null || true
	[[ -n $DEV ]] && losetup -d "$DEV" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s 16G "$WORK/hvxfs.img"
mkfs.xfs -q -m reflink=1 "$WORK/hvxfs.img"
DEV=$(losetup --find --show "$WORK/hvxfs.img")
mkdir "$MNT" && mount -t xfs "$DEV" "$MNT"
cp --sparse=always "$IMG" "$MNT/disk.img"
go build -o "$WORK/agentbench" ./bench/agent
out=${OUT:-bench/agent/results.txt}
{
	echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $(uname -r)"
	echo "## haven agent (reflink on XFS, vault on local disk)"
	"$WORK/agentbench" -disk "$MNT/disk.img" -work "$WORK" "$@"
	[[ -n ${SKIP_RESTIC:-} ]] && exit 0 # the churn runs alone (issue 20 item 5)
	echo "## restic $(restic version | cut -d' ' -f2) (repository on local disk)"
	export RESTIC_REPOSITORY=$WORK/restic RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache
	restic init -q
	cp --sparse=always "$IMG" "$WORK/restic-src.img"
	/usr/bin/time -f "restic first backup: wall %es cpu %Us user + %Ss sys" restic backup -q "$WORK/restic-src.img" 2>&1
	for i in 1 2; do
		touch "$WORK/restic-src.img"
		/usr/bin/time -f "restic backup after touch $i: wall %es cpu %Us user + %Ss sys" restic backup -q "$WORK/restic-src.img" 2>&1
	done
} | tee "$out"
