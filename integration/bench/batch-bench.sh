#!/usr/bin/env bash
# `husk batch` throughput: N trivial jobs (`true` on the busybox rootfs, the sandbox's defaults) at
# -j J, as root and as an unprivileged user; prints total time, jobs/s and the jobs' p50/p95 wall
# time (from --summary), then checks that nothing leaked: no state dir (a private --root), no
# launch or scratch directory (a private XDG_RUNTIME_DIR; root: new entries of /run/husk-launch),
# no mount mentioning either, and no new empty husk-* cgroup (cgroup names are not private: "new" is "not there before the run").
#
#   integration/bench/batch-bench.sh [N] [J]        (as root; defaults 1000 and 2)
#
# Env: HUSK (default $CARGO_TARGET_DIR/release/husk), OUT (default /tmp/husk-batch-bench),
# TUSER (default tuser).
set -euo pipefail
N=${1:-1000}
J=${2:-2}
top=$(cd "$(dirname "$0")/../.." && pwd)
HUSK=${HUSK:-${CARGO_TARGET_DIR:-$top/target}/release/husk}
OUT=${OUT:-/tmp/husk-batch-bench}
TUSER=${TUSER:-tuser}
ROOTFS=$top/bundles/busybox/rootfs
[ -x "$HUSK" ] || (cd "$top" && cargo build --release -q -p husk)
[ -x "$ROOTFS/bin/busybox" ] || "$top/bundles/busybox/make-rootfs" >/dev/null
id "$TUSER" >/dev/null 2>&1 || useradd -m "$TUSER"
rm -rf "$OUT"
mkdir -p "$OUT"
chmod 755 "$OUT"
for i in $(seq "$N"); do echo "{\"id\":$i,\"command\":[\"true\"]}"; done >"$OUT/jobs.jsonl"

husk_cgroups() { # every husk-<pid>-<hex> cgroup dir, one a line
	find /sys/fs/cgroup -mindepth 2 -maxdepth 4 -type d -name 'husk-*' 2>/dev/null | sort || true
}

run() { # run root|rootless
	local mode=$1 dir=$OUT/$1 as=()
	mkdir -p "$dir/state" "$dir/xdg"
	chmod 700 "$dir/xdg"
	if [ "$mode" = rootless ]; then
		chown -R "$TUSER" "$dir"
		as=(setpriv --reuid="$TUSER" --regid="$TUSER" --init-groups env -i PATH=/usr/bin:/bin
			HOME="$(getent passwd "$TUSER" | cut -d: -f6)")
	fi
	# Root's sandboxes and batches use /run/husk-launch whatever XDG_RUNTIME_DIR says (its host id
	# must reach them): count what is new there.
	local base=$dir/xdg/husk-launch
	if [ "$mode" = root ]; then base=/run/husk-launch; fi
	{ find "$base" -mindepth 1 -maxdepth 1 2>/dev/null || true; } | sort >"$dir/launch.before"
	husk_cgroups >"$dir/cgroups.before"
	local start end
	start=$(date +%s.%N)
	"${as[@]}" env XDG_RUNTIME_DIR="$dir/xdg" "$HUSK" --root "$dir/state" batch --image "$ROOTFS" \
		-j "$J" -o "$dir/results.jsonl" --summary "$dir/summary.json" "$OUT/jobs.jsonl" \
		2>"$dir/stderr" || { echo "$mode: husk batch exited $?" >&2; cat "$dir/stderr" >&2; exit 1; }
	end=$(date +%s.%N)
	husk_cgroups >"$dir/cgroups.after"
	local leaks=0 states launches mounts cgroups
	states=$(find "$dir/state" -mindepth 1 | wc -l)
	{ find "$base" -mindepth 1 -maxdepth 1 2>/dev/null || true; } | sort >"$dir/launch.after"
	launches=$(comm -13 "$dir/launch.before" "$dir/launch.after" | wc -l)
	mounts=$(grep -c -e "$base" -e "$dir/state" /proc/self/mountinfo || true)
	cgroups=0
	for cg in $(comm -13 "$dir/cgroups.before" "$dir/cgroups.after"); do
		[ -s "$cg/cgroup.procs" ] || { echo "leaked cgroup: $cg" >&2; cgroups=$((cgroups + 1)); }
	done
	leaks=$((states + launches + mounts + cgroups))
	python3 - "$mode" "$start" "$end" "$dir/summary.json" "$dir/results.jsonl" "$states" \
		"$launches" "$mounts" "$cgroups" <<'PY'
import json, sys
mode, start, end, summary, results = sys.argv[1:6]
states, launches, mounts, cgroups = map(int, sys.argv[6:10])
s = json.load(open(summary))
lines = [json.loads(l) for l in open(results)]
total = float(end) - float(start)
print(f"| {mode} | {s['total']} | {s['passed']} | {total:.1f} | {s['total'] / total:.1f} "
      f"| {s['wall_ms']['p50']} | {s['wall_ms']['p95']} | {len(lines)} "
      f"| {states} / {launches} / {mounts} / {cgroups} |")
PY
	[ "$leaks" = 0 ] || { echo "$mode: leaked $leaks resources" >&2; exit 1; }
}

echo "husk batch: $N jobs of \`true\` at -j $J ($(nproc) CPUs)"
echo
echo "| mode | jobs | passed | total s | jobs/s | wall p50 ms | wall p95 ms | result lines | leaked: state / launch dirs / mounts / cgroups |"
echo "|---|---|---|---|---|---|---|---|---|"
run root
run rootless
