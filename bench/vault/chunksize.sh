#!/usr/bin/env bash
# chunksize.sh — Haven alone, steps a (first snapshot) and b (snapshot after
# 1 % changed) for each chunk size, each with a fresh vault and a fresh copy
# of the image. Writes chunksize.md (cited by docs/vault-format.md).
#
#   bench/vault/chunksize.sh [KiB ...]     (default: 8 16 32 64)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

sizes=("${@:-8 16 32 64}")
read -r -a sizes <<<"${sizes[*]}"
build_tools
machine_info
for kib in "${sizes[@]}"; do
	fresh_image
	rm -rf "$WORK/vault"
	haven_init "$WORK/vault" $((kib << 10))
	haven_snapshot "cs$kib.a"
	put "cs$kib.a.stored" "$(repo_bytes "$WORK/vault")"
	scatter
	haven_snapshot "cs$kib.b"
	put "cs$kib.b.stored" "$(repo_bytes "$WORK/vault")"
done
python3 "$BENCH_DIR/report.py" chunks "$RESULTS" "$WORK/info" | tee "$BENCH_DIR/chunksize.md"
