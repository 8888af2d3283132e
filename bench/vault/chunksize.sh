#!/usr/bin/env bash
# chunksize.sh — Haven alone, steps a (first snapshot) and b (snapshot after
# 1 % changed) for each chunk size, each with a fresh vault and a fresh copy
# of the image. Writes chunksize.md (cited by docs/vault-format.md).
#
#   bench/vault/chunksize.sh [KiB ...]     (default: 8 16 32 64)
#   RUNS=3 CHUNKSIZE_MD=/tmp/x.md HAVEN_BIN=... bench/vault/chunksize.sh 16
#                                          (repeat, medians; other output file)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

sizes=("${@:-8 16 32 64}")
read -r -a sizes <<<"${sizes[*]}"
build_tools
machine_info
one_size() {
	local kib=$1
	fresh_image
	rm -rf "$WORK/vault"
	haven_init "$WORK/vault" $((kib << 10))
	haven_snapshot "cs$kib.a"
	put "cs$kib.a.stored" "$(repo_bytes "$WORK/vault")"
	scatter
	haven_snapshot "cs$kib.b"
	put "cs$kib.b.stored" "$(repo_bytes "$WORK/vault")"
}

for ((run = 1; run <= ${RUNS:-1}; run++)); do
	for kib in "${sizes[@]}"; do
		log "run $run of ${RUNS:-1}, $kib KiB"
		one_size "$kib"
	done
done
python3 "$BENCH_DIR/report.py" chunks "$RESULTS" "$WORK/info" | tee "${CHUNKSIZE_MD:-$BENCH_DIR/chunksize.md}"
