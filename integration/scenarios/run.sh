#!/bin/sh
# The scenario suites (issue 14): the four systems husk exists for, end to end, through the public
# CLI only, as a user's script would drive them. Each runs as the caller and, when the caller is
# root, also as the unprivileged test user. Closing line: "scenarios: N passed, N failed".
#
#   integration/scenarios/run.sh                 # every suite
#   integration/scenarios/run.sh devenv aiexec   # some
#
# Env: HUSK (default target/release/husk), HUSK_TEST_USER (default tuser), HUSK_DEBIAN_ROOTFS
# (default bundles/debian/rootfs: run bundles/debian/make-rootfs first), HUSK_SCN_KEEP=1.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
husk=${HUSK:-${CARGO_TARGET_DIR:-$top/target}/release/husk}
deb=${HUSK_DEBIAN_ROOTFS:-$top/bundles/debian/rootfs}
tuser=${HUSK_TEST_USER:-tuser}
suites=${*:-devenv codeexec sessions aiexec}
log=$(mktemp)
node=""
cleanup() { rm -f "$log"; [ -n "$node" ] && rm -rf "$(dirname "$node")"; }
trap cleanup EXIT

# A FUSE node the unprivileged user may open (this host's /dev/fuse is 0600): what a site with a
# 0666 /dev/fuse (most distributions) gives every user.
if [ "$(id -u)" = 0 ] && id "$tuser" >/dev/null 2>&1; then
	d=$(mktemp -d /tmp/husk-scn-fuse.XXXXXX)
	chmod 755 "$d"
	if mknod "$d/fuse" c 10 229 2>/dev/null; then
		chmod 666 "$d/fuse"
		node=$d/fuse
	fi
fi

for s in $suites; do
	echo "== $s as $(id -un)"
	HUSK=$husk HUSK_DEBIAN_ROOTFS=$deb python3 "$here/$s.py" 2>&1 | tee -a "$log"
	if [ "$(id -u)" = 0 ] && id "$tuser" >/dev/null 2>&1; then
		uid=$(id -u "$tuser")
		echo "== $s as $tuser"
		setpriv --reuid="$uid" --regid="$(id -g "$tuser")" --init-groups \
			env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$(getent passwd "$tuser" | cut -d: -f6)" \
			USER="$tuser" XDG_RUNTIME_DIR="/run/user/$uid" HUSK="$husk" HUSK_DEBIAN_ROOTFS="$deb" \
			HUSK_SCN_FUSE_NODE="$node" HUSK_SCN_KEEP="${HUSK_SCN_KEEP:-}" \
			sh -c 'cd /tmp && exec python3 "$0"' "$here/$s.py" 2>&1 | tee -a "$log"
	fi
done
passed=$(grep -c '^\(ok\|XPASS\) - ' "$log")
failed=$(grep -c '^FAIL - ' "$log")
xfail=$(grep -c '^xfail - ' "$log")
echo "expected to fail until merged: $xfail (see EXPECTED_TO_FAIL_UNTIL_MERGED in lib.py)"
echo "scenarios: $passed passed, $failed failed"
[ "$failed" = 0 ]
