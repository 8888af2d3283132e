#!/bin/bash
# Planned failover of the demo's shop under customer load (issue 20 item 3):
# builds haven, runs `haven demo --planned` (primary site with a web shop and
# PostgreSQL, customers ordering every 100 ms through Unbound, haven agent,
# server and dns; protect, then `haven failover planned`) RUNS times and
# appends each report, with the machine's load, to results.txt beside this
# script. Root; PostgreSQL, Unbound, xfsprogs (docs/scenario.md).
#
#   bash bench/planned/run.sh            # RUNS=1 by default
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${RUNS:-1}
out=${OUT:-$here/results.txt}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/haven" ./cmd/haven)
{
	echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet || echo -dirty)"
	echo "load before: $(uptime)"
} >>"$out"
for i in $(seq 1 "$runs"); do
	"$tmp/haven" demo --planned >"$tmp/progress.$i" 2>&1 || {
		tail -50 "$tmp/progress.$i" >&2
		exit 1
	}
	sed -n '/^== planned failover/,$p' "$tmp/progress.$i" | grep -v '^-- removing' >>"$out"
	echo "load after run $i: $(uptime)" >>"$out"
done
