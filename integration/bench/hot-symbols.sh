#!/bin/sh
# Regenerate shim/cli/hot-symbols.txt: the functions husk's OCI verbs execute, which release
# builds ask the linker (lld, --symbol-ordering-file; see shim/cli/build.rs) to place together at
# the start of .text. Why: most of husk's peak RSS is file pages of its own binary, mapped 64 KiB
# at a time by the kernel's fault-around; with the hot code scattered over 6 MB of .text, a `run`
# touched ~1000 pages of it; packed together, about half. Only the layout changes, never
# behaviour: a stale list (renamed functions, another rustc) just packs less.
#
#   integration/bench/hot-symbols.sh          (root; needs gcc, the busybox rootfs, the test user)
#
# It builds the static husk exactly as `cargo build-static` does (same profile: the symbol names
# carry a hash of it) under $HOT_TARGET (default: the workspace's target/), runs
# integration/bench/stepper (single-steps every instruction: ~1-2 min per command) over run,
# create/start/state/exec/kill/delete as root, run and `exec IMAGE` as the test user, and maps the executed
# addresses to function symbols.
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
tuser=${HUSK_TEST_USER:-tuser}
tgt=${HOT_TARGET:-${CARGO_TARGET_DIR:-$top/target}}
work=$(mktemp -d /tmp/husk-hot.XXXXXX)
chmod 1777 "$work"   # the rootless step writes its addresses here too
trap 'rm -rf "$work"' EXIT

CARGO_TARGET_DIR=$tgt cargo build-static
husk=$tgt/x86_64-unknown-linux-gnu/release/husk
cp "$husk" "$work/husk"
husk=$work/husk
gcc -O2 -o "$work/stepper" integration/bench/stepper.c

# The executable segment's bounds.
range=$(readelf -lW "$husk" | python3 -c '
import sys
for line in sys.stdin:
    f = line.split()
    if f[:1] == ["LOAD"] and "E" in f[6:-1]:
        print(f"{int(f[2], 16):x} {int(f[2], 16) + int(f[5], 16):x}")
')
[ -n "$range" ] || { echo "hot-symbols: no executable segment in $husk" >&2; exit 1; }
lo=${range% *}
hi=${range#* }

bundle() { # bundle DIR TEMPLATE ARGS-JSON
	mkdir -p "$1"
	python3 - "$2" "$1/config.json" "$3" "$top/bundles/busybox/rootfs" <<'PY'
import json, sys
src, dst, args, rootfs = sys.argv[1:]
c = json.load(open(src))
c["root"]["path"] = rootfs
c["process"]["args"] = json.loads(args)
c["process"]["terminal"] = False
json.dump(c, open(dst, "w"))
PY
}
bundle "$work/b" bundles/busybox/config.json '["/bin/true"]'
bundle "$work/long" bundles/busybox/config.json '["/bin/sleep", "60"]'
bundle "$work/rl" bundles/busybox-rootless/config.json '["/bin/true"]'
chown -R "$tuser" "$work/rl"

n=0
step() {
	n=$((n + 1))
	echo "== $*" >&2
	"$work/stepper" "$lo" "$hi" "$work/rips.$n" "$husk" --root "$work/state" "$@" >/dev/null
}
step run --bundle "$work/b" hot-run
step create --bundle "$work/long" hot-c
step start hot-c
step state hot-c
step exec hot-c /bin/true
step kill hot-c KILL
"$husk" --root "$work/state" state hot-c >/dev/null 2>&1 && sleep 0.2 || true
step delete --force hot-c
n=$((n + 1))
echo "== rootless run" >&2
su "$tuser" -c "XDG_RUNTIME_DIR=/run/user/$(id -u "$tuser") $work/stepper $lo $hi $work/rips.$n $husk run --bundle $work/rl hot-rl" >/dev/null
# The launcher's common case: `husk exec IMAGE CMD` of a rootfs directory, rootless (the fast
# path that execs in place).
n=$((n + 1))
echo "== rootless exec IMAGE" >&2
su "$tuser" -c "cd /tmp && XDG_RUNTIME_DIR=/run/user/$(id -u "$tuser") $work/stepper $lo $hi $work/rips.$n $husk exec $top/bundles/busybox/rootfs /bin/true" >/dev/null

nm -S --defined-only "$husk" | awk 'NF == 4 && $3 ~ /^[tTwW]$/' >"$work/syms"
cat "$work"/rips.* | python3 -c '
import bisect, sys
syms = sorted((int(a, 16), int(s, 16), n) for a, s, _, n in (l.split() for l in open(sys.argv[1])))
starts = [s[0] for s in syms]
hot = set()
for line in sys.stdin:
    rip = int(line, 16)
    i = bisect.bisect_right(starts, rip) - 1
    if i >= 0 and rip < syms[i][0] + max(syms[i][1], 1):
        hot.add(i)
out = [syms[i][2] for i in sorted(hot)]
total = sum(syms[i][1] for i in hot)
print("\n".join(out))
print(f"hot-symbols: {len(out)} functions, {total // 1024} KiB of code", file=sys.stderr)
' "$work/syms" >shim/cli/hot-symbols.txt
echo "hot-symbols: wrote shim/cli/hot-symbols.txt" >&2
