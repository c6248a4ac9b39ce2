#!/bin/sh
# Run husk's tests: setup (root only), build, lint, unit tests, integration tests.
#
#   ./tests.sh                                # everything; as root both modes run (root + rootless)
#   HUSK_RUNTIME=/usr/bin/runc ./tests.sh     # integration suites against runc: checks the tests
#   SKIP_SETUP=1 SKIP_LINT=1 ./tests.sh       # skip apt/useradd, skip fmt/clippy
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

if [ "$(id -u)" = 0 ] && [ -z "${SKIP_SETUP:-}" ]; then
	step setup
	need=""
	for p in runc busybox-static uidmap libseccomp-dev pkg-config; do
		dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
	done
	if [ -n "$need" ]; then
		apt-get update -q
		# shellcheck disable=SC2086 # word splitting of the package list is intended
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
	fi
	id "$tuser" >/dev/null 2>&1 || useradd -m "$tuser"
	uid=$(id -u "$tuser")
	mkdir -p "/run/user/$uid"
	chown "$tuser:" "/run/user/$uid"
	chmod 700 "/run/user/$uid"
	export HUSK_REQUIRE_PRIVILEGED="${HUSK_REQUIRE_PRIVILEGED:-1}"
fi

step build
cargo build --release -p husk
# The probe runs inside a rootfs without libc: static, gnu target (no musl here); --target keeps
# RUSTFLAGS off the host build scripts. See shim/probe/src/main.rs.
RUSTFLAGS='-C target-feature=+crt-static' \
	cargo build --release -p husk-probe --target x86_64-unknown-linux-gnu
bundles/busybox/make-rootfs

if [ -z "${SKIP_LINT:-}" ]; then
	step lint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
fi

step unit tests
cargo test --workspace --exclude husk-integration

step "integration tests (runtime: ${HUSK_RUNTIME:-$target/release/husk})"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
HUSK_RUNTIME=${HUSK_RUNTIME:-$target/release/husk} cargo test -p husk-integration --test integration -- "$@" 2>&1 | tee "$log"
status=$(grep -c '^test result: ok' "$log" || true)
# One closing line over the integration run, in the plain "N passed, N failed" form.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "integration: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
[ "$status" -ge 1 ] && ! grep -q '^test result: FAILED' "$log"
