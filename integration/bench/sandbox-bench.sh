#!/bin/bash
# Cold start of one sandboxed job: `husk exec --sandbox IMG python3 -c pass` on the cached Debian +
# python3 image (root and rootless) against `podman run --rm` of the same image with the same
# limits (root podman 4, runc, overlay storage in a scratch dir, no network), in one hyperfine run.
# The seeds' Docker figure is 2-3 s per job. Prints hyperfine's table; nothing is asserted.
#
#   integration/bench/sandbox-bench.sh [RUNS]     (as root; installs hyperfine and podman)
set -euo pipefail
RUNS=${1:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
tuser=${HUSK_TEST_USER:-tuser}
husk=${HUSK:-$top/target/release/husk}
work=$(mktemp -d /tmp/husk-sandbox-bench.XXXXXX)
chmod 1777 "$work"   # the rootless hyperfine writes its table here
pm() { podman --root "$work/storage" --runroot "$work/run" --tmpdir "$work/tmp" \
	--storage-driver overlay --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"; }
trap 'pm rm -af >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

for p in hyperfine podman runc; do
	command -v "$p" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$p" >/dev/null
done
fixture=$("$top/bundles/debian/make-rootfs")
archive=$fixture/debian-docker.tar
# This VM's root lacks CAP_SYS_RESOURCE: pin podman's default ulimits to the hard limits.
mkdir -p "$work/storage" "$work/run" "$work/tmp"
cat >"$work/containers.conf" <<'CONF'
[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
events_logger = "file"
CONF
export CONTAINERS_CONF=$work/containers.conf
pm load -q -i "$archive" >/dev/null

# The same limits on both sides: the sandbox's defaults (docs/sandbox.md) spelled out for podman.
podman_cmd="podman --root $work/storage --runroot $work/run --tmpdir $work/tmp --storage-driver overlay \
 --runtime runc --cgroup-manager cgroupfs --events-backend file run --rm --network none --read-only \
 --tmpfs /tmp:size=64m --cap-drop all --security-opt no-new-privileges --user 65534:65534 \
 --memory 128m --cpus 0.5 --pids-limit 64 --ulimit core=0 --ulimit nofile=1024:20000 --ulimit nproc=32768:32768 husk.test/debian:bookworm python3 -c pass"
husk_cmd="$husk exec --sandbox docker-archive:$archive python3 -c pass"

# Warm husk's image cache for both users (the figure is for a cached image, as podman's is loaded);
# one run of each shows that they work.
$podman_cmd
$husk_cmd
su "$tuser" -c "cd /tmp && $husk_cmd"

hyperfine -N --warmup 3 --runs "$RUNS" --export-markdown "$work/root.md" \
	-n "husk exec --sandbox (root)" -n "podman run --rm, runc (root)" \
	"$husk_cmd" "$podman_cmd" >/dev/null
su "$tuser" -s /bin/bash -c "cd /tmp && hyperfine -N --warmup 3 --runs $RUNS --export-markdown $work/rootless.md \
	-n 'husk exec --sandbox (rootless)' '$husk_cmd'" >/dev/null
cat "$work/root.md"
tail -n +3 "$work/rootless.md"
