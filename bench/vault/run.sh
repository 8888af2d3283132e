#!/usr/bin/env bash
# run.sh — Haven's vault against restic 0.18.1 on the same 4 GiB ext4 image,
# both on the local-directory backend of the same file system, each with a
# fresh repository: (a) first snapshot, (b) snapshot after 1 % of the image
# is overwritten with random 4 KiB blocks, (c) full restore to a new file,
# verified by SHA-256. Prints a Markdown table and writes results.md, and
# the raw figures with the machine's load to results.txt.
#
#   bench/vault/run.sh            (as root; installs restic 0.18.1 with go install if missing)
#   RESTIC=/path/restic bench/vault/run.sh      (use another restic binary)
#   HAVEN_BIN=/path/haven bench/vault/run.sh   (use a prebuilt binary)
#   RUNS=3 bench/vault/run.sh                  (repeat; the report shows medians)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

locate_restic
build_tools
machine_info
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-bench-password}
export RESTIC_REPOSITORY=$WORK/restic-repo RESTIC_CACHE_DIR=$WORK/restic-cache
restic version >>"$WORK/info"

verify() { # verify NAME FILE
	local got
	got=$(sha256sum "$2" | cut -d' ' -f1)
	[[ $got == "$CHANGED_SHA" ]] || { log "$1 restore: sha256 $got != $CHANGED_SHA"; exit 1; }
	log "$1 restore: sha256 matches"
	put "$1.c.verified" 1
	rm -rf "$2"
}
one_run() {
	rm -rf "$WORK/haven-vault" "$RESTIC_REPOSITORY" "$RESTIC_CACHE_DIR"
	fresh_image
	haven_init "$WORK/haven-vault"
	restic init >"$WORK/restic-init.log"
	put haven.empty "$(repo_bytes "$WORK/haven-vault")"
	put restic.empty "$(repo_bytes "$RESTIC_REPOSITORY")"

	# a: first snapshot
	haven_snapshot haven.a
	timed restic.a restic backup "$IMG"
	put haven.a.stored "$(repo_bytes "$WORK/haven-vault")"
	put restic.a.stored "$(repo_bytes "$RESTIC_REPOSITORY")"

	# b: 1 % changed
	scatter
	CHANGED_SHA=$(sha256sum "$IMG" | cut -d' ' -f1)
	haven_snapshot haven.b
	timed restic.b restic backup "$IMG"
	put haven.b.stored "$(repo_bytes "$WORK/haven-vault")"
	put restic.b.stored "$(repo_bytes "$RESTIC_REPOSITORY")"

	# c: full restore of the latest point to a new file, then verify
	timed haven.c "$HAVEN" restore --machine bench --disk root --to "$WORK/haven-restore.img" --json
	verify haven "$WORK/haven-restore.img"
	timed restic.c restic restore latest --target "$WORK/restic-restore"
	verify restic "$WORK/restic-restore$IMG"
}

for ((run = 1; run <= ${RUNS:-1}; run++)); do
	log "run $run of ${RUNS:-1}"
	one_run
done
echo "load_at_end=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >>"$WORK/info"
python3 "$BENCH_DIR/report.py" compare "$RESULTS" "$WORK/info" | tee "$BENCH_DIR/results.md"
# The raw records (KEY VALUE; *.load1 is the 1-minute load as each step
# started) after the run's info as comments: report.py reads this file too.
{ sed 's/^/# /' "$WORK/info"; cat "$RESULTS"; } >"$BENCH_DIR/results.txt"
