#!/usr/bin/env bash
# Debian packages the tests use. Each part lists its packages in
# .ci/apt-packages.d/<part>.txt (one per line) so parts can be added without
# editing this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
pkgs=$(cat .ci/apt-packages.d/*.txt 2>/dev/null | sed 's/#.*//' | tr -s ' \n' ' ')
[ -n "${pkgs// /}" ] || exit 0
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
