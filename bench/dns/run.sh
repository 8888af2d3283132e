#!/usr/bin/env bash
# Benchmark of `haven dns` against PowerDNS 4.7 (bind backend, LUA ifurlup)
# and Knot 3.2 (static A record), all on loopback, each under dnsperf for
# DURATION seconds (default 10). Then the cost of DNSSEC: haven dns with
# online signing and Knot signing the same zone (dnssec-signing: on, both
# ECDSA P-256), asked with the DO bit. Prints QPS, average latency and ratios.
#   bench/dns/run.sh            # HAVEN_BIN=path to use a prebuilt binary
# Installs its own Debian packages (not part of CI): dnsperf pdns-server
# pdns-backend-bind knot. Nothing leaves loopback; everything it starts is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH:/usr/sbin:/sbin
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}

need=""
for p in dnsperf pdns-server pdns-backend-bind knot; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

tmp=$(mktemp -d /tmp/hvbench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
HTTP=$(port) PH=$(port) PP=$(port) PK=$(port) PHS=$(port) PKS=$(port)

# Health endpoints: the primary and the recovery site, both up.
mkdir -p "$tmp/www" && echo ok >"$tmp/www/health"
for ip in 127.0.0.1 127.0.0.2; do
	python3 -m http.server "$HTTP" --bind "$ip" --directory "$tmp/www" >/dev/null 2>&1 &
	pids+=($!)
done

# Haven: a priority profile under active HTTP probing every second.
if [ -z "${HAVEN_BIN:-}" ]; then
	go build -o "$tmp/haven" ./cmd/haven
	HAVEN_BIN=$tmp/haven
fi
cat >"$tmp/haven.yaml" <<YAML
listen: 127.0.0.1:$PH
zones: [{name: example.test}]
profiles:
  - name: app.example.test
    routing: priority
    ttl: 5
    monitor: {protocol: http, port: $HTTP, path: /health, interval: 1s, timeout: 500ms, tolerated_failures: 1}
    endpoints:
      - {name: primary, target: 127.0.0.1, priority: 1}
      - {name: recovery, target: 127.0.0.2, priority: 2}
YAML
"$HAVEN_BIN" dns --config "$tmp/haven.yaml" 2>"$tmp/haven.log" &
pids+=($!)
# The same profile, signed online (key created in key_dir at start).
sed -e "s/127.0.0.1:$PH/127.0.0.1:$PHS/" "$tmp/haven.yaml" >"$tmp/haven-dnssec.yaml"
echo "dnssec: {algorithm: ecdsap256sha256, key_dir: $tmp/haven-keys}" >>"$tmp/haven-dnssec.yaml"
"$HAVEN_BIN" dns --config "$tmp/haven-dnssec.yaml" 2>"$tmp/haven-dnssec.log" &
pids+=($!)

# PowerDNS: the same answer from a LUA record, evaluated per query when
# its caches are off (pdns-nocache) and with default caches (pdns-cache).
zone() {
	cat <<ZONE
\$ORIGIN example.test.
@ 300 IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 604800 60
@ 300 IN NS ns1.example.test.
$1
ZONE
}
zone "app 5 IN LUA A \"ifurlup('http://app.example.test:$HTTP/health', {{'127.0.0.1'}, {'127.0.0.2'}})\"" >"$tmp/pdns.zone"
echo "zone \"example.test\" { type master; file \"$tmp/pdns.zone\"; };" >"$tmp/named.conf"
pdns() { # name port extra-args...
	local name=$1 p=$2
	shift 2
	mkdir -p "$tmp/$name"
	pdns_server --config-dir="$tmp/$name" --socket-dir="$tmp/$name" --launch=bind \
		--bind-config="$tmp/named.conf" --enable-lua-records=yes --local-address=127.0.0.1 \
		--local-port="$p" --daemon=no --guardian=no --disable-syslog=yes --write-pid=no \
		--webserver=no --api=no "$@" >"$tmp/$name.log" 2>&1 &
	pids+=($!)
}
touch "$tmp/pdns.conf"
PP2=$(port)
pdns pdns-nocache "$PP" --cache-ttl=0 --query-cache-ttl=0 --negquery-cache-ttl=0
pdns pdns-cache "$PP2"

# Knot: a static A record, the upper bound of an authoritative server here.
zone "app 5 IN A 127.0.0.1" >"$tmp/knot.zone"
mkdir -p "$tmp/knot"
cat >"$tmp/knot.conf" <<KNOT
server:
    rundir: "$tmp/knot"
    listen: 127.0.0.1@$PK
database:
    storage: "$tmp/knot"
zone:
  - domain: example.test
    file: "$tmp/knot.zone"
KNOT
knotd -c "$tmp/knot.conf" >"$tmp/knot.log" 2>&1 &
pids+=($!)
# Knot signing the same zone itself (default policy: ECDSA P-256, NSEC).
mkdir -p "$tmp/knot-dnssec"
cp "$tmp/knot.zone" "$tmp/knot-dnssec.zone"
cat >"$tmp/knot-dnssec.conf" <<KNOT
server:
    rundir: "$tmp/knot-dnssec"
    listen: 127.0.0.1@$PKS
database:
    storage: "$tmp/knot-dnssec"
zone:
  - domain: example.test
    file: "$tmp/knot-dnssec.zone"
    zonefile-sync: -1
    dnssec-signing: on
KNOT
knotd -c "$tmp/knot-dnssec.conf" >"$tmp/knot-dnssec.log" 2>&1 &
pids+=($!)

echo "app.example.test A" >"$tmp/queries"
wait_up() {
	for _ in $(seq 100); do
		[ "$(dig @127.0.0.1 -p "$1" +short +time=1 +tries=1 app.example.test A 2>/dev/null)" = 127.0.0.1 ] && return 0
		sleep 0.2
	done
	echo "$2 did not answer; log:" >&2
	cat "$tmp/$2.log" >&2 || true
	return 1
}
wait_up "$PH" haven
wait_up "$PP" pdns-nocache
wait_up "$PP2" pdns-cache
wait_up "$PK" knot
wait_up "$PHS" haven-dnssec
wait_up "$PKS" knot-dnssec
for p in "$PHS" "$PKS"; do
	dig @127.0.0.1 -p "$p" +dnssec +time=1 +tries=1 app.example.test A | grep -q 'RRSIG' ||
		{ echo "no RRSIG from port $p" >&2; exit 1; }
done

declare -A QPS LAT
run() { # name port [dnsperf flags]
	local out name=$1 p=$2
	shift 2
	out=$(dnsperf -s 127.0.0.1 -p "$p" -d "$tmp/queries" -l "$DURATION" -c "$CLIENTS" -q 200 "$@" 2>&1)
	set -- "$name"
	QPS[$1]=$(awk '/Queries per second/ {print $4}' <<<"$out")
	LAT[$1]=$(awk '/Average Latency/ {print $4}' <<<"$out")
	lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
	printf '%-13s %12s qps   avg latency %10s s   lost %s\n' "$1" "${QPS[$1]}" "${LAT[$1]}" "$lost"
}
echo "dnsperf -l $DURATION -c $CLIENTS -q 200 on $(nproc) cores, $(date -u +%FT%TZ)"
run haven "$PH"
run pdns-nocache "$PP"
run pdns-cache "$PP2"
run knot "$PK"
run haven-dnssec "$PHS" -D
run knot-dnssec "$PKS" -D
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "haven / pdns-nocache (LUA per query): $(ratio "${QPS[haven]}" "${QPS[pdns-nocache]}")x  (target >= 20x)"
echo "haven / pdns-cache   (LUA, caches on): $(ratio "${QPS[haven]}" "${QPS[pdns-cache]}")x"
echo "haven / knot (static):                 $(ratio "${QPS[haven]}" "${QPS[knot]}")x  (target >= 1.0, issue 20)"
echo "DNSSEC (DO bit, signed answers):"
echo "haven-dnssec / haven:                  $(ratio "${QPS[haven-dnssec]}" "${QPS[haven]}")x  (cost of online signing)"
echo "knot-dnssec / knot:                    $(ratio "${QPS[knot-dnssec]}" "${QPS[knot]}")x"
echo "haven-dnssec / knot-dnssec:            $(ratio "${QPS[haven-dnssec]}" "${QPS[knot-dnssec]}")x"
