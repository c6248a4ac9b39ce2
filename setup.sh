#!/bin/sh
# Set up a fresh Debian 12 machine for husk and build it: Debian packages and a test user (as root;
# fuse-overlayfs, xvfb and xauth are for the FUSE and X11 tests and scenarios),
# the release binary, the static probe, the busybox rootfs of bundles/busybox (offline, ~0.2 s) and,
# as root, the Debian 12 fixture of bundles/debian (debootstrap from Debian's mirror: ~1-2 min the
# first time, cached under /var/tmp/husk-fixtures afterwards).
#
#   ./setup.sh && ./target/release/husk run --bundle bundles/busybox demo
#
# SKIP_SETUP=1 skips apt-get and useradd. SKIP_DEBIAN=1 skips the Debian fixture (its tests then
# skip, or fail under HUSK_REQUIRE_PRIVILEGED=1). HUSK_TEST_USER names the unprivileged test user.
set -eu
cd "$(dirname "$0")"
tuser=${HUSK_TEST_USER:-tuser}
step() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" = 0 ] && [ -z "${SKIP_SETUP:-}" ]; then
	step setup
	need=""
	for p in runc busybox-static uidmap libseccomp-dev pkg-config umoci skopeo docker-registry time libcap2-bin debootstrap fuse-overlayfs xvfb xauth; do
		dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
	done
	if [ -n "$need" ]; then
		apt-get update -q
		# shellcheck disable=SC2086 # word splitting of the package list is intended
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need
	fi
	# docker-registry is for the registry test only, which starts its own on a loopback port; keep
	# the packaged service (all interfaces, :5000) off where systemd would start it.
	if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		systemctl disable --now docker-registry >/dev/null 2>&1 || true
	fi
	id "$tuser" >/dev/null 2>&1 || useradd -m "$tuser"
	uid=$(id -u "$tuser")
	mkdir -p "/run/user/$uid"
	chown "$tuser:" "/run/user/$uid"
	chmod 700 "/run/user/$uid"
fi

step build
cargo build --release -p husk
# The binary to install: static, non-PIE, hot code packed (README "Static build").
cargo build-static
# The probe runs inside a rootfs without libc: static, gnu target (no musl here); --target keeps
# RUSTFLAGS off the host build scripts. See shim/probe/src/main.rs.
RUSTFLAGS='-C target-feature=+crt-static' \
	cargo build --release -p husk-probe --target x86_64-unknown-linux-gnu
bundles/busybox/make-rootfs
if [ "$(id -u)" = 0 ] && [ -z "${SKIP_DEBIAN:-}" ]; then
	step "debian fixture"
	bundles/debian/make-rootfs
fi
