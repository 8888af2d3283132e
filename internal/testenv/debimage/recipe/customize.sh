#!/bin/sh
# mmdebstrap customize hook: $1 is the new root, $2 the overlay tree of
# files/ from this recipe. Runs on the build host as root, with the
# chroot's /proc, /sys and /dev mounted by mmdebstrap.
set -eu
root=$1
cp -R "$2"/. "$root"/
chmod 0755 "$root/usr/local/sbin/haven-ready"

# PostgreSQL: the cluster 15/main exists (postgresql-common made it);
# listen everywhere, let the test role in over TCP with a password.
pgconf=$root/etc/postgresql/15/main
cat >"$pgconf/conf.d/haven.conf" <<'PG'
listen_addresses = '*'
# libLLVM is left out of the image (dpkg path-exclude), so no JIT.
jit = off
PG
cat >>"$pgconf/pg_hba.conf" <<'PG'
# haven test image: the test role from anywhere, with its password
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
PG
# Single-user mode needs no running server, socket or network.
printf "CREATE ROLE haven LOGIN PASSWORD 'haven';\nCREATE DATABASE haven OWNER haven;\n" |
	chroot "$root" runuser -u postgres -- /usr/lib/postgresql/15/bin/postgres --single \
		-c config_file=/etc/postgresql/15/main/postgresql.conf postgres >/dev/null

chroot "$root" systemctl enable systemd-networkd.service haven-ready.service
# Enabling networkd also enabled wait-online, which waits 2 minutes for
# links no .network file manages (every NIC when no seed configured it).
chroot "$root" systemctl disable systemd-networkd-wait-online.service
