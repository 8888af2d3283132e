#!/usr/bin/env bash
# Azurite, the Azure Blob emulator the storage tests start on loopback
# (internal/testenv/azurite.go). 3.35.0 is the newest that runs on Node 20
# and works with the current Go SDK when started with --skipApiVersionCheck.
set -euo pipefail
want=3.35.0
if command -v azurite-blob >/dev/null && [ "$(azurite-blob --version 2>/dev/null)" = "$want" ]; then
	exit 0
fi
if ! command -v npm >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
echo "installing azurite@$want"
npm install -g --no-fund --no-audit "azurite@$want" >/dev/null
azurite-blob --version
