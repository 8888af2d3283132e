#!/usr/bin/env bash
# versitygw, the Apache-2.0 S3 gateway the storage tests start on loopback
# (internal/testenv/s3server.go), built once with go install into
# /usr/local/bin and reused while it is the pinned version.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
mod=github.com/versity/versitygw
want=v1.8.0
bin=/usr/local/bin/versitygw
have=""
if [ -x "$bin" ]; then
	have=$(go version -m "$bin" 2>/dev/null | awk -v m="$mod" '$1 == "mod" && $2 == m { print $3 }')
fi
if [ "$have" = "$want" ]; then
	exit 0
fi
echo "building versitygw $want (a few minutes on 2 cores)"
GOBIN=/usr/local/bin GOFLAGS=-buildvcs=false go install "$mod/cmd/versitygw@$want"
