#!/usr/bin/env bash
# Image import: the Debian 12 fixture's docker-archive (bundles/debian) into a usable rootfs, with
# `husk pull` (cold cache each run) vs `skopeo copy docker-archive: oci:` + `umoci unpack`
# (`--rootless` as the unprivileged user), as root and as the test user; plus husk's re-import
# of the cached image. Raw hyperfine JSON under $OUT; prints a Markdown table (BENCHMARKS.md,
# "Image import: Debian docker-archive").
#
#   integration/bench/import-bench.sh [RUNS]     (as root; needs hyperfine, skopeo, umoci)
#
# Env: HUSK (default target/release/husk), OUT (/var/tmp/husk-import-bench: on disk, like a real
# cache), TUSER (tuser). Each cold run starts from an empty cache/destination, after `sync`, so
# one run's writeback is not charged to the next; the archive itself stays in the page cache.
set -euo pipefail
RUNS=${1:-5}
top=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}
HUSK=${HUSK:-$target/release/husk}
OUT=${OUT:-/var/tmp/husk-import-bench}
TUSER=${TUSER:-tuser}
[ "$(id -u)" = 0 ] || { echo "import-bench: run as root (it switches to $TUSER)" >&2; exit 1; }
dpkg -s hyperfine >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q hyperfine >/dev/null
[ -x "$HUSK" ] || (cd "$top" && cargo build --release -q -p husk)
fixture=$("$top/bundles/debian/make-rootfs")
tar=$fixture/debian-docker.tar
tuid=$(id -u "$TUSER")
tgid=$(id -g "$TUSER")
thome=$(getent passwd "$TUSER" | cut -d: -f6)
rm -rf "$OUT"; mkdir -p "$OUT"; chmod 1777 "$OUT"

# bench MODE [umoci flags]: one hyperfine run, as whoever runs it.
cat >"$OUT/bench.sh" <<EOF
set -eu
mode=\$1; shift
w=$OUT/\$mode
mkdir -p "\$w"
cd "\$w"
husk="$HUSK --cache-dir \$w/cache"
"$HUSK" --version >/dev/null
hyperfine -r $RUNS --export-json "$OUT/\$mode.json" \\
	-n husk-cold --prepare "rm -rf \$w/cache; sync" "\$husk pull docker-archive:$tar" \\
	-n skopeo+umoci --prepare "rm -rf \$w/oci \$w/bundle; sync" \\
	"sh -c 'skopeo --insecure-policy copy -q docker-archive:$tar oci:\$w/oci:img && umoci unpack \$* --image \$w/oci:img \$w/bundle >/dev/null'" \\
	>"$OUT/\$mode.txt" 2>&1
# The cached re-import: the image is in the cache from the last cold run.
hyperfine -N -w 3 -r 50 --export-json "$OUT/\$mode-cached.json" -n husk-cached \\
	"\$husk pull docker-archive:$tar" >>"$OUT/\$mode.txt" 2>&1
EOF
bash "$OUT/bench.sh" root
setpriv --reuid="$tuid" --regid="$tgid" --init-groups env -i PATH=/usr/local/bin:/usr/bin:/bin \
	HOME="$thome" USER="$TUSER" XDG_RUNTIME_DIR="/run/user/$tuid" bash "$OUT/bench.sh" rootless --rootless
rm -rf "$OUT/root" "$OUT/rootless"

python3 - "$OUT" <<'EOF'
import json, statistics, sys
out = sys.argv[1]
print("\n| mode | husk pull, cold: median s (CPU s) | skopeo copy + umoci unpack: median s (CPU s) | "
      "speed-up, wall (CPU) | husk pull, cached: median ms | runs |")
print("|---|---:|---:|---:|---:|---:|")
cpu = lambda r: r["user"] + r["system"]
for mode in ("root", "rootless"):
    r = {x["command"]: x for x in json.load(open(f"{out}/{mode}.json"))["results"]}
    c = json.load(open(f"{out}/{mode}-cached.json"))["results"][0]
    h, s = r["husk-cold"], r["skopeo+umoci"]
    hm, sm = statistics.median(h["times"]), statistics.median(s["times"])
    print(f"| {mode} | {hm:.2f} ({cpu(h):.2f}) | {sm:.2f} ({cpu(s):.2f}) | {sm / hm:.2f}x ({cpu(s) / cpu(h):.2f}x) | "
          f"{statistics.median(c['times']) * 1000:.2f} | {len(h['times'])} |")
EOF
