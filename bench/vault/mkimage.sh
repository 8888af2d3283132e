#!/usr/bin/env bash
# mkimage.sh OUT.img — build the benchmark disk image: a sparse 4 GiB ext4
# file system holding ~1.7 GiB of mixed data (system libraries, shared files,
# Go source text, 300 MiB of random bytes). The contents are chosen
# deterministically (sorted walk, byte budgets, a fixed-key random stream) so
# two builds hold the same files; the ext4 layout uses a fixed UUID and hash
# seed. If OUT.img and OUT.img.sha256 already exist it does nothing, so callers
# can use it as a cache (run.sh keeps it under /var/cache/haven-bench).
# Needs mkfs.ext4 (e2fsprogs >= 1.43 for -d), python3, openssl. No mount.
set -euo pipefail
out=${1:?usage: mkimage.sh OUT.img}
if [[ -f $out && -f $out.sha256 ]]; then
	echo "mkimage: using cached $out" >&2
	exit 0
fi
mkdir -p "$(dirname "$out")"
stage=$(mktemp -d "$(dirname "$out")/hvimg.XXXXXX")
trap 'rm -rf "$stage" "$out.tmp"' EXIT

# copy SRC DEST MiB: copy regular files and symlinks of SRC (sorted walk)
# into DEST until MiB are copied.
copy() {
	python3 - "$@" <<'PY'
import os, shutil, sys
src, dst, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]) << 20
done = 0
for root, dirs, files in os.walk(src):
    dirs.sort()
    for name in sorted(files):
        p = os.path.join(root, name)
        q = os.path.join(dst, os.path.relpath(p, src))
        try:
            if os.path.islink(p):
                os.makedirs(os.path.dirname(q), exist_ok=True)
                os.symlink(os.readlink(p), q)
            elif os.path.isfile(p):
                n = os.path.getsize(p)
                if done + n > budget:
                    continue
                os.makedirs(os.path.dirname(q), exist_ok=True)
                shutil.copyfile(p, q)
                done += n
        except OSError:
            pass  # unreadable or vanished: not worth failing a benchmark
    if done >= budget - (1 << 20):
        break
print(f"mkimage: {src}: {done >> 20} MiB", file=sys.stderr)
PY
}

copy /usr/lib "$stage/lib" 1000
copy /usr/share "$stage/share" 300
copy /usr/local/go/src "$stage/text" 140
mkdir -p "$stage/random"
for i in 0 1 2; do # 300 MiB incompressible, reproducible: AES-CTR of zeros
	head -c 100M /dev/zero | openssl enc -aes-256-ctr -nosalt -pbkdf2 \
		-pass pass:haven-bench-$i >"$stage/random/r$i.bin"
done
du -sh "$stage" >&2

rm -f "$out.tmp"
truncate -s 4G "$out.tmp"
E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -d "$stage" \
	-U 6861760e-0000-4000-8000-000000000001 \
	-E hash_seed=6861760e-0000-4000-8000-000000000002,root_owner=0:0 \
	-L hvbench "$out.tmp"
sha256sum "$out.tmp" | cut -d' ' -f1 >"$out.sha256.tmp"
mv "$out.tmp" "$out"
mv "$out.sha256.tmp" "$out.sha256"
echo "mkimage: built $out ($(du -h "$out" | cut -f1) allocated of 4 GiB), sha256 $(cat "$out.sha256")" >&2
