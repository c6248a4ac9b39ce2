#!/usr/bin/env bash
# Launcher start-to-exit: `husk exec IMAGE true` vs Charliecloud's `ch-run DIR -- true` and
# bubblewrap, all rootless as the test user, on the busybox rootfs and on the Debian 12 fixture
# (its rootfs directory, and the cached docker-archive for husk). Raw hyperfine JSON goes to $OUT;
# a Markdown table is printed (BENCHMARKS.md, "Launcher start-up").
#
#   integration/bench/launch-bench.sh [RUNS]      (as root; installs hyperfine, charliecloud-runtime,
#                                                  bubblewrap with apt when missing)
#
# Env: HUSK (default target/release/husk), HUSK_STATIC (default: the `cargo build-static` binary,
# target/x86_64-unknown-linux-gnu/release/husk, measured too when present), OUT (/tmp/husk-launch-bench), TUSER (tuser),
# DISK_RUNTIME_DIR=1 to keep $XDG_RUNTIME_DIR where it is: by default the runs happen in a private
# mount namespace with a tmpfs on /run/user/UID, as on any systemd login (husk writes its launch
# directory there; ch-run and bwrap write nothing).
set -euo pipefail
RUNS=${1:-100}
top=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}
HUSK=${HUSK:-$target/release/husk}
HUSK_STATIC=${HUSK_STATIC:-$target/x86_64-unknown-linux-gnu/release/husk}
OUT=${OUT:-/tmp/husk-launch-bench}
TUSER=${TUSER:-tuser}
[ "$(id -u)" = 0 ] || { echo "launch-bench: run as root (it switches to $TUSER)" >&2; exit 1; }
need=""
for p in hyperfine charliecloud-runtime bubblewrap; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
# shellcheck disable=SC2086 # a list of package names
[ -z "$need" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null
[ -x "$HUSK" ] || (cd "$top" && cargo build --release -q -p husk)
"$top/bundles/busybox/make-rootfs" >/dev/null
fixture=$("$top/bundles/debian/make-rootfs")
tuid=$(id -u "$TUSER")
tgid=$(id -g "$TUSER")
thome=$(getent passwd "$TUSER" | cut -d: -f6)
rm -rf "$OUT"; mkdir -p "$OUT"; chown "$TUSER" "$OUT"

# One hyperfine run per rootfs, as the test user, from $OUT (the cwd husk binds).
cat >"$OUT/run.sh" <<EOF
set -eu
cd "$OUT"
cache=$OUT/cache
image=docker-archive:$fixture/debian-docker.tar
"$HUSK" --cache-dir "\$cache" pull "\$image" >/dev/null 2>&1
bw() { echo "bwrap --ro-bind \$1 / --proc /proc --dev /dev --bind /tmp /tmp --unshare-user --chdir / true"; }
for set in busybox debian; do
	case \$set in
	busybox) dir=$top/bundles/busybox/rootfs ;;
	debian) dir=$fixture/rootfs ;;
	esac
	cmds=(-n husk-dir "$HUSK exec \$dir true" -n ch-run "ch-run \$dir -- true" -n bwrap "\$(bw \$dir)")
	# The supervised path the fast path skips (env itself costs one more exec).
	cmds+=(-n husk-dir-normal "env HUSK_NO_FASTPATH=1 $HUSK exec \$dir true")
	if [ -x "$HUSK_STATIC" ]; then
		cmds+=(-n husk-static-dir "$HUSK_STATIC exec \$dir true")
	fi
	if [ \$set = debian ]; then
		cmds+=(-n husk-cached "$HUSK --cache-dir \$cache exec \$image true")
		if [ -x "$HUSK_STATIC" ]; then
			cmds+=(-n husk-static-cached "$HUSK_STATIC --cache-dir \$cache exec \$image true")
		fi
	fi
	hyperfine -N -w 10 -r $RUNS --export-json "$OUT/\$set.json" "\${cmds[@]}" >"$OUT/\$set.txt" 2>&1
	# The commands alone, one per line, for the CPU-time pass below.
	for ((i = 0; i < \${#cmds[@]}; i += 3)); do echo "\${cmds[i+1]}=\${cmds[i+2]}"; done >"$OUT/\$set.cmds"
done
EOF
chown "$TUSER" "$OUT/run.sh"
as_user="setpriv --reuid=$tuid --regid=$tgid --init-groups env -i PATH=/usr/local/bin:/usr/bin:/bin \
HOME=$thome USER=$TUSER XDG_RUNTIME_DIR=/run/user/$tuid bash $OUT/run.sh"
mkdir -p "/run/user/$tuid"
if [ -n "${DISK_RUNTIME_DIR:-}" ]; then
	$as_user
else
	unshare -m --propagation private sh -c \
		"mount -t tmpfs -o mode=700,uid=$tuid,gid=$tgid tmpfs /run/user/$tuid && $as_user"
fi

# CPU time (task-clock of every process, kernel included) per start, as root around setpriv: on a
# busy machine the wall time mostly measures waiting for a CPU at each hand-over between processes.
# setpriv and env themselves are measured alone and subtracted.
cpu() { # cpu CMD... → msec
	perf stat -r "$RUNS" -x, -e task-clock -- setpriv --reuid="$tuid" --regid="$tgid" --init-groups \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$thome" USER="$TUSER" \
		XDG_RUNTIME_DIR="/run/user/$tuid" sh -c "cd $OUT && exec \"\$@\"" sh "$@" 2>&1 >/dev/null |
		awk -F, '/task-clock/ { print $1 }'
}
cpu_pass() {
	echo "floor=$(cpu true)"
	for set in busybox debian; do
		while IFS= read -r line; do
			# shellcheck disable=SC2086 # the command line is split into words on purpose
			echo "$set/${line%%=*}=$(cpu ${line#*=})"
		done <"$OUT/$set.cmds"
	done
}
if [ -n "${DISK_RUNTIME_DIR:-}" ]; then
	cpu_pass >"$OUT/cpu.txt"
else
	export -f cpu cpu_pass
	export RUNS OUT TUSER tuid tgid thome
	unshare -m --propagation private bash -c \
		"mount -t tmpfs -o mode=700,uid=$tuid,gid=$tgid tmpfs /run/user/$tuid && cpu_pass" >"$OUT/cpu.txt"
fi

python3 - "$OUT" <<'EOF'
import json, statistics, sys
out = sys.argv[1]
raw = dict(l.strip().split("=", 1) for l in open(f"{out}/cpu.txt") if "=" in l)
print(f"\nCPU floor (setpriv + env + sh + true, subtracted below): {float(raw['floor']):.2f} ms")
for name in ("busybox", "debian"):
    res = {r["command"]: r for r in json.load(open(f"{out}/{name}.json"))["results"]}
    med = {k: statistics.median(v["times"]) * 1000 for k, v in res.items()}
    cpu = {k: float(v) - float(raw["floor"]) for k, v in raw.items() if k.startswith(name + "/")}
    print(f"\n### {name} rootfs, rootless\n")
    print("| command | median ms | mean ms | min ms | runs | ratio to ch-run | CPU ms | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ch = cpu.get(f"{name}/ch-run")
    for k, v in res.items():
        c = cpu.get(f"{name}/{k}")
        cs = f"{c:.2f} | {c / ch:.2f}" if c and ch else "- | -"
        print(f"| {k} | {med[k]:.2f} | {v['mean']*1000:.2f} | {v['min']*1000:.2f} | "
              f"{len(v['times'])} | {med[k] / med['ch-run']:.2f} | {cs} |")
EOF
