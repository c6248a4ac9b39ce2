#!/bin/bash
# Install qemu-system-x86 for the VM lane; does nothing when qemu-system-x86_64 is already there.
#
# On Debian 12 machines whose qemu-utils comes from bookworm-backports (10.x), bookworm's own
# qemu-system-common 7.2 conflicts with it, so qemu-system-x86 is installed from the same suite
# as the installed qemu-utils. The backports suite is reached through a private sources list
# built from the machine's own Debian mirror; the machine's apt configuration is left unchanged.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
command -v qemu-system-x86_64 >/dev/null && exit 0
[ "$(id -u)" = 0 ] || { echo "install-qemu: run as root" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
lock=(-o DPkg::Lock::Timeout=900)
qutils=$(dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null || true)
case $qutils in
*bpo12*)
	mirror=$(debian_mirror)
	[ -n "$mirror" ] || { echo "install-qemu: no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
	key=/usr/share/keyrings/debian-archive-keyring.gpg
	printf 'deb [signed-by=%s] %s bookworm main\ndeb [signed-by=%s] %s bookworm-backports main\n' \
		"$key" "$mirror" "$key" "$mirror" >"$dir/sources.list"
	mkdir -p "$dir/lists/partial"
	# Private sources and package lists: the machine's own apt state is not touched.
	opts=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=- \
		-o "Dir::State::Lists=$dir/lists" "${lock[@]}")
	apt-get "${opts[@]}" update -q
	apt-get "${opts[@]}" install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86
	;;
*)
	apt-get "${lock[@]}" update -q
	apt-get "${lock[@]}" install -y -q --no-install-recommends qemu-system-x86
	;;
esac
command -v qemu-system-x86_64 >/dev/null
