#!/bin/bash
# The VM lane: in one boot of a pure cgroup v2 + systemd guest (run.sh), the same OCI and podman
# cases against husk, runc and crun, and husk's launcher cases; then one count per runtime, the
# failing cases, and the closing line "vm: N passed, N failed, N skipped" over husk's cases.
#
#   integration/vm/lane.sh                       # husk: target/x86_64-unknown-linux-gnu/release/husk
#   HUSK=/path/to/husk integration/vm/lane.sh     # another build (static preferred: the guest's
#                                                 # libseccomp may differ from the build host's)
#   CASES='pause|podman' RUNTIMES=husk integration/vm/lane.sh    # some cases, some runtimes
#
# Run as root. Exit status 1 only when a husk case fails that integration/vm/xfail does not list
# (or the guest gave no results); runc's and crun's counts check the cases themselves and never
# fail the lane. xfail lists husk's known failures, each with the issue item that fixes it: a
# listed case that fails counts as skipped, one that passes is reported so it can be removed.
# Env: HUSK, PROBE (the static husk-probe), RUNTIMES, CASES (extended regex over case names),
# SUITES ("launcher oci podman"), VERBOSE=1 (every case's output), VM_KEEP=DIR (keep the share: out.log, results, serial.log),
# and run.sh's (MEM, SMP, TIMEOUT, VM_CACHE). RECOUNT=DIR counts a kept share's results again.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}
static=$target/x86_64-unknown-linux-gnu/release
HUSK=${HUSK:-$static/husk}
PROBE=${PROBE:-$static/husk-probe}
t0=$(date +%s)

fail_setup() {
	echo "vm: $*" >&2
	echo "vm: 0 passed, 1 failed, 0 skipped"
	exit 1
}
# boot: stage husk, the probe, the rootfs recipe, the configs and guest/ into a share, run
# guest/lane.sh in one boot; sets share and status.
boot() {
	local stage
	[ "$(id -u)" = 0 ] || fail_setup "run as root"
	[ -x "$HUSK" ] || fail_setup "no husk at $HUSK (cargo build-static, or set HUSK)"
	[ -x "$PROBE" ] || fail_setup "no static probe at $PROBE (see shim/probe/src/main.rs)"
	share=${VM_KEEP:-$(mktemp -d /tmp/husk-vm-lane.XXXXXX)}
	mkdir -p "$share"
	[ -n "${VM_KEEP:-}" ] || trap 'rm -rf "$share"' EXIT
	stage=$(mktemp -d /tmp/husk-vm-stage.XXXXXX)
	cp "$HUSK" "$stage/husk"
	cp "$PROBE" "$stage/husk-probe"
	cp "$top/bundles/busybox/make-rootfs" "$stage/make-rootfs"
	cp "$top/bundles/busybox/config.json" "$stage/config.json"
	cp "$top/bundles/busybox-rootless/config.json" "$stage/config-rootless.json"
	cp -r "$here/guest" "$stage/guest"
	{
		[ -n "${RUNTIMES:-}" ] && printf 'RUNTIMES=%q\n' "$RUNTIMES"
		[ -n "${CASES:-}" ] && printf 'CASES=%q\n' "$CASES"
		[ -n "${SUITES:-}" ] && printf 'SUITES=%q\n' "$SUITES"
		[ -n "${VERBOSE:-}" ] && echo VERBOSE=1
	} >"$stage/env"
	echo "vm: husk $HUSK ($("$HUSK" --version 2>&1 | head -n 1))"
	rm -f "$share/results"
	KEEP=$share "$here/run.sh" 'bash /io/guest/lane.sh' "$stage"/*
	status=$?
	rm -rf "$stage"
}

if [ -n "${RECOUNT:-}" ]; then
	share=$RECOUNT status=0 # count a kept share's results again (e.g. after editing xfail)
else
	boot
fi
results=$share/results
[ -s "$results" ] || fail_setup "the guest gave no results (status $status)"

# husk's known failures: the case names of xfail (comments and blank lines aside).
xfail=$(sed 's/#.*//' "$here/xfail" | tr -s ' \t\n' '\n' | grep . | sort -u)
listed() { grep -qx "$1" <<<"$xfail"; }

# count RUNTIME KIND: "N passed, N failed, N skipped" and the failing names; KIND oci (every case
# but launch-*) or launcher.
count() {
	local rt=$1 kind=$2 sel
	if [ "$kind" = launcher ]; then sel='$3 ~ /^launch-/'; else sel='$3 !~ /^launch-/'; fi
	awk -v rt="$rt" "\$2 == rt && $sel"' { n[$1]++; if ($1 == "FAIL") f = f " " $3 }
		END { printf "%d passed, %d failed, %d skipped\n", n["PASS"], n["FAIL"], n["SKIP"]
		      if (f != "") printf "  failing:%s\n", f }' "$results"
}
echo
for rt in $(awk '{ print $2 }' "$results" | awk '!seen[$0]++'); do
	echo "$rt: $(count "$rt" oci)"
done
grep -q '^[A-Z]* husk launch-' "$results" && echo "husk launcher: $(count husk launcher)"

passed=0 failed=0 skipped=0 xfailed="" xpassed="" unexpected=""
while read -r verdict rt name; do
	[ "$rt" = husk ] || continue
	case $verdict in
	PASS)
		passed=$((passed + 1))
		if listed "$name"; then xpassed="$xpassed $name"; fi
		;;
	SKIP) skipped=$((skipped + 1)) ;;
	FAIL)
		if listed "$name"; then
			skipped=$((skipped + 1))
			xfailed="$xfailed $name"
		else
			failed=$((failed + 1))
			unexpected="$unexpected $name"
		fi
		;;
	esac
done <"$results"
[ -n "$xfailed" ] && echo "vm: husk's known failures (integration/vm/xfail; counted as skipped):$xfailed"
[ -n "$xpassed" ] && echo "vm: listed in integration/vm/xfail but passed (remove them):$xpassed"
[ -n "$unexpected" ] && echo "vm: husk failures not in integration/vm/xfail:$unexpected"
[ "$status" = 0 ] || {
	echo "vm: the guest's runner exited $status"
	failed=$((failed + 1))
}
echo "vm: lane took $(($(date +%s) - t0)) s"
echo "vm: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
