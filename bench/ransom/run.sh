#!/bin/sh
# Encryption detection on a real filesystem: runs e2e/TestRansomDetection
# (PostgreSQL on an ext4 image on a reflink XFS, a real haven agent every
# 15 s, a real haven server), keeps its JSON report beside this script and
# prints the per-point churn. As root, from the repository root.
set -eu
out=${1:-bench/ransom/last-run.json}
HAVEN_RANSOM_BENCH=1 HAVEN_RANSOM_REPORT=$(realpath -m "$out") CI=true go test -count=1 -v -timeout 30m -run '^TestRansomDetection$' ./e2e/
echo "report: $out"
