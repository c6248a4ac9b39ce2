#!/bin/sh
# Run husk's tests: ./setup.sh (packages as root, build, fixtures), lint, unit tests, integration tests.
#
#   ./tests.sh                                # everything; as root both modes run (root + rootless)
#   HUSK_RUNTIME=/usr/bin/runc ./tests.sh     # integration suites against runc: checks the tests
#   SKIP_SETUP=1 SKIP_LINT=1 ./tests.sh       # skip apt/useradd, skip fmt/clippy
#   SKIP_CLIENTS=1 ./tests.sh                 # skip the podman/containerd/docker suites
#   SKIP_VM=1 ./tests.sh                      # skip the VM lane (pure cgroup v2 + systemd guest)
#   ./tests.sh rootless                       # extra args go to the integration test binary filter
#
# Env: HUSK_RUNTIME (runtime under test; default target/release/husk), HUSK_REQUIRE_PRIVILEGED=1
# (root/rootless cases fail instead of skipping; default on when run as root; CI sets it),
# HUSK_TEST_USER (default tuser), HUSK_KEEP=1 (keep per-test dirs under /tmp/husk-it-PID).
set -eu
cd "$(dirname "$0")"
top=$(pwd)
tuser=${HUSK_TEST_USER:-tuser}
target=${CARGO_TARGET_DIR:-$top/target}
step() { printf '\n== %s\n' "$*"; }

# Packages, test user, release build, static probe, busybox rootfs.
./setup.sh
if [ "$(id -u)" = 0 ]; then export HUSK_REQUIRE_PRIVILEGED="${HUSK_REQUIRE_PRIVILEGED:-1}"; fi

if [ -z "${SKIP_LINT:-}" ]; then
	step lint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
fi

step unit tests
cargo test --workspace --exclude husk-integration

# Real engines (podman root/rootless, containerd+ctr, dockerd) driving the runtime; root only.
if [ "$(id -u)" = 0 ] && [ -z "${SKIP_CLIENTS:-}" ]; then
	step "clients (runtime: ${HUSK_RUNTIME:-$target/release/husk})"
	RUNTIME=${HUSK_RUNTIME:-$target/release/husk} integration/clients/run.sh
fi

# The four systems husk exists for, end to end through the public CLI (husk only: not for runc).
scenarios=0
runtime=${HUSK_RUNTIME:-$target/release/husk}
if [ -z "${SKIP_SCENARIOS:-}" ] && [ "$(basename "$runtime")" = husk ]; then
	step "scenarios (runtime: $runtime)"
	HUSK=$runtime integration/scenarios/run.sh || scenarios=1
fi

step "integration tests (runtime: ${HUSK_RUNTIME:-$target/release/husk})"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
HUSK_RUNTIME=${HUSK_RUNTIME:-$target/release/husk} cargo test -p husk-integration --test integration -- "$@" 2>&1 | tee "$log"
status=$(grep -c '^test result: ok' "$log" || true)
# One closing line over the integration run, in the plain "N passed, N failed" form.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "integration: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
integration_ok=0
[ "$status" -ge 1 ] && ! grep -q '^test result: FAILED' "$log" && integration_ok=1

# The VM lane (integration/vm/README.md): a Debian 12 guest with systemd and pure cgroup v2, the
# same cases against husk (the static build), runc and crun; root only (qemu, debootstrap), and
# not for a filtered run (./tests.sh FILTER).
vm_ok=1
if [ "$(id -u)" = 0 ] && [ -z "${SKIP_VM:-}" ] && [ $# = 0 ]; then
	step "vm lane (husk: $target/x86_64-unknown-linux-gnu/release/husk)"
	integration/vm/lane.sh || vm_ok=0
fi
[ "$integration_ok" = 1 ] && [ "$vm_ok" = 1 ] && [ "$scenarios" = 0 ]
