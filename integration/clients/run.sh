#!/bin/bash
# Real clients driving husk end to end: podman 4 (root and rootless), containerd 1.6 + ctr,
# dockerd 20.10 + docker, and Slurm 22.05 (srun --container, sbatch), each started by these
# scripts with their own state in a temp dir.
#
#   integration/clients/run.sh                          # all suites, runtime target/release/husk
#   RUNTIME=/usr/sbin/runc integration/clients/run.sh   # the same suites against runc (checks them)
#   integration/clients/run.sh podman containerd        # some suites: podman podman-rootless
#                                                       # containerd docker slurm
#
# Run as root. Installs the Debian packages it needs unless SKIP_SETUP=1. Env: RUNTIME (or
# HUSK_RUNTIME; the runtime binary under test), TUSER (rootless user, default tuser; needs a uid
# with /etc/subuid and /etc/subgid ranges, added here when missing), KEEP=1 (keep the work dir),
# SLURM_OCI=create-start (slurm suite: oci.conf's create/start form instead of RunTimeRun).
# Prints one line per case and closes with "clients: N passed, N failed"; exits 1 on any failure.
# The runtime is always called through an argv-logging wrapper; on failure its log (every call the
# clients made, failing ones with their exit status and the runtime's last log records) is kept and
# its path printed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ "$(id -u)" = 0 ] || {
	echo "clients: run as root" >&2
	echo "clients: 0 passed, 1 failed"
	exit 1
}

RUNTIME=${RUNTIME:-${HUSK_RUNTIME:-${CARGO_TARGET_DIR:-$top/target}/release/husk}}
RUNTIME=$(readlink -f "$RUNTIME")
TUSER=${TUSER:-tuser}
suites=${*:-podman podman-rootless containerd docker slurm}

if [ -z "${SKIP_SETUP:-}" ]; then
	need=""
	for p in podman containerd docker.io skopeo umoci busybox-static uidmap fuse-overlayfs \
		slirp4netns jq slurm-wlm munge; do
		dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
	done
	if [ -n "$need" ]; then
		apt-get update -q >/dev/null
		# shellcheck disable=SC2086 # word splitting of the package list is intended
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null
	fi
	id "$TUSER" >/dev/null 2>&1 || useradd -m "$TUSER"
	# Rootless podman maps a range of subordinate ids; add one for TUSER unless it has any.
	for f in /etc/subuid /etc/subgid; do
		grep -q "^$TUSER:" "$f" 2>/dev/null || echo "$TUSER:100000:65536" >>"$f"
	done
	uid=$(id -u "$TUSER")
	mkdir -p "/run/user/$uid"
	chown "$TUSER:" "/run/user/$uid"
	chmod 700 "/run/user/$uid"
fi

[ -x "$RUNTIME" ] || {
	echo "clients: no runtime at $RUNTIME (build it: cargo build --release -p husk)" >&2
	echo "clients: 0 passed, 1 failed"
	exit 1
}

WORK=$(mktemp -d /tmp/husk-clients.XXXXXX)
chmod 755 "$WORK"
RESULTS=$WORK/results
: >"$RESULTS"
cleanup() {
	umount_under "$WORK"
	if grep -q '^FAIL' "$RESULTS" 2>/dev/null || [ -n "${KEEP:-}" ]; then
		# Keep the logs, drop the (large, root- and subuid-owned) storage.
		find "$WORK" -mindepth 2 -maxdepth 2 -type d \( -name storage -o -name data \) \
			-exec rm -rf {} + 2>/dev/null
		echo "clients: logs kept in $WORK (argv.log: every runtime call)"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The runtime's name as clients register it: podman keys its JSON-error support by this name.
case $(basename "$RUNTIME") in runc*) RT_NAME=runc ;; crun*) RT_NAME=crun ;; *) RT_NAME=husk ;; esac
make_wrapper "$WORK/bin" "$RT_NAME" "$RUNTIME" "$WORK/argv.log"
WRAPPER=$WORK/bin/$RT_NAME
echo "clients: runtime $RUNTIME ($("$RUNTIME" --version 2>&1 | head -n 1)), work dir $WORK"

# One image for every client: a static-busybox rootfs as a docker-archive (built offline).
IMAGE_ARCHIVE=$WORK/busybox-docker.tar
IMAGE_REF=husk-clients/busybox:latest
if ! "$here/image.sh" "$WORK/image" "$IMAGE_ARCHIVE" "$IMAGE_REF" >"$WORK/image.log" 2>&1; then
	fail "image: build busybox docker-archive" "$(cat "$WORK/image.log")"
fi
chmod 644 "$IMAGE_ARCHIVE" 2>/dev/null

export RESULTS WORK RUNTIME WRAPPER RT_NAME IMAGE_ARCHIVE IMAGE_REF TUSER CLIENT_TIMEOUT
start=$(date +%s)
for s in $suites; do
	t0=$(date +%s)
	case $s in
	podman) MODE=root bash "$here/podman.sh" ;;
	podman-rootless) MODE=rootless bash "$here/podman.sh" ;;
	containerd) bash "$here/containerd.sh" ;;
	docker) bash "$here/docker.sh" ;;
	slurm) bash "$here/slurm.sh" ;;
	*) fail "unknown suite $s" ;;
	esac
	echo "clients: suite $s took $(($(date +%s) - t0)) s"
done
echo "clients: all suites took $(($(date +%s) - start)) s"

if grep -q '^FAIL' "$RESULTS"; then
	# Each distinct runtime error once, after the first call that produced it.
	echo "clients: failing runtime calls (all calls: $WORK/argv.log):"
	sed -E 's/[0-9a-f]{64}/<id>/g' "$WORK/argv.log" |
		awk '/-> exit / { call = $0; next }
			/^  log: / && /"level":"error"/ { m = $0; sub(/"time":.*/, "", m)
				if (!(m in seen)) { seen[m] = 1; print call; print $0 } }' |
		head -n 40 | cut -c 1-600 | sed 's/^/  /'
fi
passed=$(grep -c '^PASS' "$RESULTS")
failed=$(grep -c '^FAIL' "$RESULTS")
echo "clients: $passed passed, $failed failed"
[ "$failed" = 0 ]
