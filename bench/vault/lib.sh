# lib.sh — shared by run.sh and chunksize.sh (sourced, not run).
# Sets up a temp dir removed on exit, builds haven and the scatter tool,
# and provides timed steps that start from a cold page cache.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
CACHE_IMG=${HAVEN_BENCH_IMAGE:-/var/cache/haven-bench/ext4-4g.img}
SEED=${SCATTER_SEED:-2}
export PATH=/usr/local/go/bin:$PATH:/usr/sbin:/sbin

[[ $(id -u) == 0 ]] || { echo "needs root (drop_caches)" >&2; exit 1; }

# The work dir sits on the same file system as /var/cache so image and
# repositories share a disk; it is removed on exit, the cached image is kept.
WORK=$(mktemp -d /var/tmp/hvbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.txt
: >"$RESULTS"

log() { echo "[$(date +%T)] $*" >&2; }

# put KEY VALUE records a number for the report (repeated keys: the report
# takes the median).
put() { echo "$1 $2" >>"$RESULTS"; }

build_tools() {
	"$BENCH_DIR/mkimage.sh" "$CACHE_IMG"
	SRC_SHA=$(cat "$CACHE_IMG.sha256")
	if [[ -n ${HAVEN_BIN:-} ]]; then
		HAVEN=$HAVEN_BIN
		HAVEN_COMMIT=${HAVEN_COMMIT:-prebuilt}
	else
		log "building haven from $REPO_ROOT"
		(cd "$REPO_ROOT" && go build -o /tmp/haven-bench ./cmd/haven)
		HAVEN=/tmp/haven-bench
		HAVEN_COMMIT=$(git -C "$REPO_ROOT" describe --always --dirty)
	fi
	(cd "$REPO_ROOT" && go build -o "$WORK/scatter" ./bench/vault/scatter)
	IMG_SIZE=$(stat -c %s "$CACHE_IMG")
}

# fresh_image copies the cached image (sparse) to $WORK/disk.img.
fresh_image() {
	rm -f "$WORK/disk.img"
	cp --sparse=always "$CACHE_IMG" "$WORK/disk.img"
	IMG=$WORK/disk.img
}

# RESTIC_VERSION is the peer every figure is measured against (issue 20):
# Debian's 0.14 is slower, so the bench installs this one with go install.
RESTIC_VERSION=${RESTIC_VERSION:-0.18.1}

# locate_restic makes `restic` the wanted version: $RESTIC if set, else
# $(go env GOPATH)/bin/restic, installed with go install when missing or
# another version. It prints the version it found.
locate_restic() {
	local bin=${RESTIC:-$(go env GOPATH)/bin/restic}
	if [[ -z ${RESTIC:-} ]] && ! "$bin" version 2>/dev/null | grep -q "restic $RESTIC_VERSION "; then
		log "installing restic $RESTIC_VERSION with go install"
		GOFLAGS=-mod=mod go install "github.com/restic/restic/cmd/restic@v$RESTIC_VERSION" >&2
	fi
	restic() { "$RESTIC_BIN" "$@"; }
	RESTIC_BIN=$bin
	export -f restic
	export RESTIC_BIN
	log "peer: $(restic version)"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# timed KEY CMD...: drop the page cache, run CMD followed by sync (so data
# left dirty in the page cache is paid for by the step that wrote it), and
# record KEY.wall, KEY.cpu (user+sys seconds), KEY.user, KEY.sys. Output goes to $WORK/KEY.log.
timed() {
	local key=$1
	shift
	drop_caches
	put "$key.load1" "$(cut -d' ' -f1 /proc/loadavg)" # the shared machine's load as the step starts
	log "$key: $*"
	/usr/bin/time -f '%e %U %S' -o "$WORK/$key.time" \
		bash -c '"$@" >"$0" 2>&1 && sync' "$WORK/$key.log" "$@" ||
		{ cat "$WORK/$key.log" >&2; log "$key failed"; exit 1; }
	read -r wall user sys <"$WORK/$key.time"
	put "$key.wall" "$wall"
	put "$key.cpu" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')"
	put "$key.user" "$user"
	put "$key.sys" "$sys"
	log "$key: ${wall}s wall, user ${user}s sys ${sys}s"
}

repo_bytes() { du -sb "$1" | cut -f1; }

# scatter changes 1 % of $IMG and records the bytes written.
scatter() {
	put changed "$("$WORK/scatter" -seed "$SEED" -percent 1 "$IMG")"
}

haven_init() { # haven_init DIR [chunk size in bytes]
	export HAVEN_VAULT=file://$1 HAVEN_PASSWORD=${HAVEN_PASSWORD:-bench-password}
	"$HAVEN" vault init ${2:+--chunk-size "$2"} >"$WORK/haven-init.log"
}

haven_snapshot() { timed "$1" "$HAVEN" snapshot --machine bench --disk root="$IMG" --json; }

machine_info() {
	put img_size "$IMG_SIZE"
	put img_used "$(du -B1 "$CACHE_IMG" | cut -f1)"
	echo "cores=$(nproc) kernel=$(uname -r) load_at_start=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" \
		"haven=$HAVEN_COMMIT runs=${RUNS:-1} date=$(date -u +%FT%TZ)" >"$WORK/info"
}
