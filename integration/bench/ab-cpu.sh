#!/usr/bin/env bash
# Before/after of a launcher change on a busy machine: CPU time (perf stat task-clock, all
# processes, kernel included) of `HUSK exec ROOTFS true`, rootless, for two husk binaries taken in
# alternating rounds so that load drifts hit both alike. Prints the median over rounds per binary
# and rootfs (ms, setpriv + env included: ~1.9 ms here).
#
#   integration/bench/ab-cpu.sh BEFORE AFTER [ROUNDS [RUNS]]      (as root)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: ab-cpu.sh BEFORE AFTER [ROUNDS [RUNS]]" >&2; exit 2; }
a=$(realpath "$1"); b=$(realpath "$2"); rounds=${3:-4}; runs=${4:-40}
top=$(cd "$(dirname "$0")/../.." && pwd)
TUSER=${TUSER:-tuser}
tuid=$(id -u "$TUSER"); tgid=$(id -g "$TUSER"); thome=$(getent passwd "$TUSER" | cut -d: -f6)
"$top/bundles/busybox/make-rootfs" >/dev/null
fixture=$("$top/bundles/debian/make-rootfs")
export a b rounds runs tuid tgid thome
export busybox=$top/bundles/busybox/rootfs debian=$fixture/rootfs
# A tmpfs on /run/user/UID (the launch directory's home), as on a systemd login.
unshare -m --propagation private bash -c '
	mount -t tmpfs -o mode=700,uid=$tuid,gid=$tgid tmpfs /run/user/$tuid
	cd /tmp
	for round in $(seq "$rounds"); do
		for bin in a b; do
			for img in busybox debian; do
				ms=$(perf stat -r "$runs" -x, -e task-clock -- setpriv --reuid="$tuid" --regid="$tgid" \
					--init-groups env -i PATH=/usr/bin:/bin HOME="$thome" XDG_RUNTIME_DIR=/run/user/$tuid \
					"${!bin}" exec "${!img}" true 2>&1 >/dev/null | awk -F, "/task-clock/ {print \$1}")
				echo "$bin $img $ms"
			done
		done
	done' | python3 -c '
import collections, statistics, sys
d = collections.defaultdict(list)
for line in sys.stdin:
    b, img, ms = line.split()
    d[(img, b)].append(float(ms))
for (img, b), v in sorted(d.items()):
    name = {"a": "before", "b": "after"}[b]
    print(f"{img} {name}: median {statistics.median(v):.2f} ms CPU over {len(v)} rounds {v}")
'
