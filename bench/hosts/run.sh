#!/bin/bash
# RTO of one six-machine plan on 1 recovery host vs 3 (issue 19): real
# `haven host` workers in namespaces of their own, an in-process haven
# server per layout, standby images, RUNS failovers per layout taken
# alternately. Root; mkfs.ext4, mkfs.xfs, losetup, nsenter. Prints the
# table and appends it, with the commit and the machine's load, to
# results.txt beside this script (results.md explains it).
#
#   bash bench/hosts/run.sh                 # RUNS=5 DISK_MIB=512
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$here/results.txt}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
{
	echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$root" && git diff --quiet 2>/dev/null || echo -dirty)"
	echo "load before: $(uptime)"
} >>"$out"
cd "$root"
HAVEN_HOSTS_RUNS=${RUNS:-5} HAVEN_HOSTS_DISK_MIB=${DISK_MIB:-512} \
	go test -run '^$' -bench HostsRTO -benchtime 1x -timeout 1h ./bench/hosts/ 2>&1 | tee "$log"
grep -q '^ok' "$log"
sed -n '/layout  *run/,/^load average/p' "$log" >>"$out"
echo "load after: $(uptime)" >>"$out"
