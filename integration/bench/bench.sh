#!/usr/bin/env bash
# Start-to-exit benchmark: `husk run` vs `runc run` vs `crun run` for /bin/true on the busybox
# bundle, as root and as an unprivileged user, with `unshare -Urmpf true` as the floor; plus peak RSS.
# Writes raw hyperfine JSON under $OUT and prints a Markdown table (BENCHMARKS.md is written from it).
#
#   integration/bench/bench.sh [RUNS]        (as root; needs hyperfine, runc, crun, busybox-static)
#
# Debian's crun 1.8.1 refuses this host's hybrid cgroup layout; it is run in a private mount
# namespace where an empty tmpfs hides /sys/fs/cgroup/unified (costs ~3 ms: reported separately).
set -euo pipefail
RUNS=${1:-200}
# The runs are split into ROUNDS rounds, each timing every command in turn, so that a drift in the
# machine's state (this VM's background work comes and goes) hits all commands alike; the report
# merges the rounds. -i: a failed run is counted in the table instead of dropping its command.
ROUNDS=${ROUNDS:-4}
PER=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
# The root-v1ns-idle table: each run after 0.3 s of quiet, as a container started now and then
# is (back-to-back runs keep kernel state warm that an occasional one pays for: see BENCHMARKS.md).
IDLE_RUNS=${IDLE_RUNS:-40}
top=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/husk-bench}
TUSER=${TUSER:-tuser}
HUSK=${HUSK:-$top/target/x86_64-unknown-linux-gnu/release/husk}   # cargo build-static
HUSK_DYN=${HUSK_DYN:-$top/target/release/husk}
rm -rf "$OUT"; mkdir -p "$OUT"; chmod 1777 "$OUT"   # the rootless half writes its results here
[ -x "$HUSK" ] || (cd "$top" && cargo build-static -q)
[ -x "$HUSK_DYN" ] || (cd "$top" && cargo build --release -q -p husk)
"$top/bundles/busybox/make-rootfs" >/dev/null
ROOTFS=$top/bundles/busybox/rootfs
id "$TUSER" >/dev/null 2>&1 || useradd -m "$TUSER"
tuid=$(id -u "$TUSER")

mkbundle() { # mkbundle DIR rootless|root
  mkdir -p "$1"; ln -sfn "$ROOTFS" "$1/rootfs"
  if [ "$2" = rootless ]; then
    chown "$TUSER" "$1"; su "$TUSER" -c "$HUSK spec --rootless --bundle $1"
  else
    "$HUSK" spec --bundle "$1"
  fi
  python3 - "$1/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False; c["process"]["args"] = ["/bin/true"]
c["ociVersion"] = "1.0.2"   # Debian's crun 1.8.1 refuses newer versions
json.dump(c, open(p, "w"))
PY
  # runc and crun refuse a symlinked rootfs: give them the real path.
  python3 - "$1/config.json" "$ROOTFS" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["root"]["path"] = sys.argv[2]; json.dump(c, open(p, "w"))
PY
  [ "$2" = rootless ] && chown -R "$TUSER" "$1" || true
}
mkbundle "$OUT/b-root" root
mkbundle "$OUT/b-rootless" rootless

cat > "$OUT/crun" <<'SH'
#!/bin/sh
if [ "$(id -u)" = 0 ]; then
  exec unshare -m --propagation private sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified 2>/dev/null; exec /usr/bin/crun "$@"' crun "$@"
else
  exec unshare --map-current-user --keep-caps -m --propagation private sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified 2>/dev/null; exec /usr/bin/crun "$@"' crun "$@"
fi
SH
chmod 755 "$OUT/crun"
# The wrapper's own cost: the same unshare, sh and mount, then `true` instead of crun.
sed 's|/usr/bin/crun "\$@"|true|' "$OUT/crun" >"$OUT/crun-wrapper-only"
chmod 755 "$OUT/crun-wrapper-only"

# State roots (--root, and the rootless XDG_RUNTIME_DIR) go on a tmpfs, as /run and /run/user are
# on any systemd host. On this VM /run is ext4 mounted with discard: deleting a state directory
# there waits for a discard (every runtime pays it, husk once per run); STATE_ON_DISK=1 keeps them
# under $OUT to measure that too.
ST=$OUT/state
mkdir -p "$ST"
if [ -z "${STATE_ON_DISK:-}" ]; then
  mountpoint -q "$ST" || mount -t tmpfs -o mode=1777 tmpfs "$ST"
  trap 'umount -l "$ST" 2>/dev/null || true' EXIT
fi

# `run` deletes the container when it exits, so one fixed id per runtime is reused run after run.
for r in $(seq "$ROUNDS"); do
hyperfine -N -i --warmup 10 --runs "$PER" --export-json "$OUT/root.$r.json" \
  -n floor -n husk -n husk-dynamic -n runc -n crun -n crun-wrapper-cost \
  "unshare -Urmpf true" \
  "$HUSK --root $ST/st-husk run --bundle $OUT/b-root bench" \
  "$HUSK_DYN --root $ST/st-husk run --bundle $OUT/b-root bench2" \
  "runc --root $ST/st-runc run --bundle $OUT/b-root bench" \
  "$OUT/crun --root $ST/st-crun run --bundle $OUT/b-root bench" \
  "$OUT/crun-wrapper-only" >>"$OUT/root.txt" 2>&1 || true
done

# The same, root, without the wrapper's per-call cost: hyperfine itself runs in one private mount
# namespace where /sys/fs/cgroup/unified is hidden, so every runtime sees plain cgroup v1 and crun
# runs directly. The fair comparison on this host.
unshare -m --propagation private sh -c "mount -t tmpfs none /sys/fs/cgroup/unified && \
  for r in \$(seq $ROUNDS); do hyperfine -N -i --warmup 10 --runs $PER \
  --export-json $OUT/root-v1ns.\$r.json \
  -n floor -n husk -n husk-dynamic -n runc -n crun \
  'unshare -Urmpf true' \
  '$HUSK --root $ST/st-husk run --bundle $OUT/b-root bench' \
  '$HUSK_DYN --root $ST/st-husk run --bundle $OUT/b-root bench2' \
  'runc --root $ST/st-runc run --bundle $OUT/b-root bench' \
  '/usr/bin/crun --root $ST/st-crun run --bundle $OUT/b-root bench'; done && \
  hyperfine -N -i --warmup 2 --runs $IDLE_RUNS --prepare 'sleep 0.3' \
  --export-json $OUT/root-v1ns-idle.json -n husk -n runc -n crun \
  '$HUSK --root $ST/st-husk run --bundle $OUT/b-root bench' \
  'runc --root $ST/st-runc run --bundle $OUT/b-root bench' \
  '/usr/bin/crun --root $ST/st-crun run --bundle $OUT/b-root bench' && \
  /usr/bin/time -f 'crun-root-direct %M' /usr/bin/crun --root $ST/st-crun run --bundle $OUT/b-root rss3 2>$OUT/rss-crun-direct.txt" \
  >"$OUT/root-v1ns.txt" 2>&1 || true

mkdir -p "$ST/xdg" && chown "$TUSER" "$ST/xdg"
su "$TUSER" -s /bin/bash -c "cd $OUT && for r in \$(seq $ROUNDS); do \
  XDG_RUNTIME_DIR=$ST/xdg hyperfine -N -i --warmup 10 --runs $PER \
  --export-json $OUT/rootless.\$r.json -n floor -n husk -n husk-dynamic -n runc -n crun \
  -n crun-wrapper-cost \
  'unshare -Urmpf true' \
  '$HUSK --root $ST/xdg/husk run --bundle $OUT/b-rootless bench' \
  '$HUSK_DYN --root $ST/xdg/husk run --bundle $OUT/b-rootless bench2' \
  'runc --root $ST/xdg/runc run --bundle $OUT/b-rootless bench' \
  '$OUT/crun --root $ST/xdg/crun run --bundle $OUT/b-rootless bench' \
  '$OUT/crun-wrapper-only'; done" >"$OUT/rootless.txt" 2>&1 || true

# Peak RSS (max resident set, KiB) of one run each.
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
{
  echo "husk-root $(rss "$HUSK" --root "$ST/st-husk" run --bundle "$OUT/b-root" rss1)"
  echo "husk-dynamic-root $(rss "$HUSK_DYN" --root "$ST/st-husk" run --bundle "$OUT/b-root" rss1)"
  echo "crun-root $(rss "$OUT/crun" --root "$ST/st-crun" run --bundle "$OUT/b-root" rss1)  (max over the wrapper's unshare, sh and crun)"
  echo "runc-root $(rss runc --root "$ST/st-runc" run --bundle "$OUT/b-root" rss1)"
  echo "husk-rootless $(su "$TUSER" -c "cd $OUT && /usr/bin/time -f %M $HUSK --root $ST/xdg/husk run --bundle $OUT/b-rootless rss2 2>&1 >/dev/null | tail -1")"
  echo "runc-rootless $(su "$TUSER" -c "cd $OUT && /usr/bin/time -f %M runc --root $ST/xdg/runc run --bundle $OUT/b-rootless rss2 2>&1 >/dev/null | tail -1")"
  tail -1 "$OUT/rss-crun-direct.txt" 2>/dev/null || true
} >"$OUT/rss.txt"

python3 "$(dirname "$0")/report.py" "$OUT"
