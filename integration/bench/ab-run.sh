#!/usr/bin/env bash
# Before/after of an engine change: `run` of /bin/true on the busybox bundle, as root, for two husk
# binaries and crun, in alternating rounds so that the machine's drift hits all three alike. Every
# runtime runs in one private mount namespace where /sys/fs/cgroup/unified is hidden (plain cgroup
# v1, crun without a wrapper; bench.sh's root-v1ns table), state roots on a tmpfs. Per round and
# runtime: wall time per run, and busy CPU per run over both CPUs (/proc/stat: user+nice+system+
# irq+softirq, so the kernel's deferred work a container leaves behind counts too); then the
# median over rounds and each husk's ratio to crun.
#
#   integration/bench/ab-run.sh BEFORE AFTER [ROUNDS [RUNS]]     (as root; needs crun)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: ab-run.sh BEFORE AFTER [ROUNDS [RUNS]]" >&2; exit 2; }
a=$(realpath "$1"); b=$(realpath "$2"); rounds=${3:-4}; runs=${4:-150}
top=$(cd "$(dirname "$0")/../.." && pwd)
"$top/bundles/busybox/make-rootfs" >/dev/null
work=$(mktemp -d /tmp/husk-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/b"
ln -s "$top/bundles/busybox/rootfs" "$work/b/rootfs"
"$a" spec --bundle "$work/b"
python3 - "$work/b/config.json" "$top/bundles/busybox/rootfs" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False; c["process"]["args"] = ["/bin/true"]
c["ociVersion"] = "1.0.2"          # Debian's crun 1.8.1 refuses newer versions
c["root"]["path"] = sys.argv[2]    # crun refuses a symlinked rootfs
json.dump(c, open(p, "w"))
PY
export a b rounds runs work
unshare -m --propagation private bash -c '
	mount -t tmpfs none /sys/fs/cgroup/unified
	mkdir -p "$work/st" && mount -t tmpfs tmpfs "$work/st"
	crun=/usr/bin/crun
	one() { # one NAME BIN: RUNS runs; prints NAME wall_us busy_us (per run)
		local u1 n1 s1 i1 w1 q1 sq1 u2 n2 s2 i2 w2 q2 sq2 t1 t2
		read -r _ u1 n1 s1 i1 w1 q1 sq1 _ </proc/stat; t1=$(date +%s%N)
		for _ in $(seq "$runs"); do "$2" --root "$work/st/$1" run --bundle "$work/b" ab >/dev/null; done
		t2=$(date +%s%N); read -r _ u2 n2 s2 i2 w2 q2 sq2 _ </proc/stat
		local hz; hz=$(getconf CLK_TCK)
		echo "$1 $(( (t2 - t1) / runs / 1000 )) $(( ((u2+n2+s2+q2+sq2) - (u1+n1+s1+q1+sq1)) * 1000000 / hz / runs ))"
	}
	for _ in $(seq "$rounds"); do one before "$a"; one after "$b"; one crun "$crun"; done
' | python3 -c '
import collections, statistics, sys
wall, busy = collections.defaultdict(list), collections.defaultdict(list)
for line in sys.stdin:
    name, w, c = line.split()
    wall[name].append(int(w) / 1000); busy[name].append(int(c) / 1000)
    print(f"round: {name:6} wall {int(w)/1000:.2f} ms  busy CPU {int(c)/1000:.2f} ms")
cw, cc = statistics.median(wall["crun"]), statistics.median(busy["crun"])
for name in ("before", "after", "crun"):
    w, c = statistics.median(wall[name]), statistics.median(busy[name])
    print(f"{name:6} median over rounds: wall {w:.2f} ms ({w/cw:.2f}x crun), busy CPU {c:.2f} ms ({c/cc:.2f}x crun)")
'
