#!/bin/bash
# Boot the VM lane's guest (Debian 12, systemd PID 1, pure cgroup v2) with qemu, run a script in it
# as root, print its output as it runs, power off; exit with the script's status.
#
#   integration/vm/run.sh SCRIPT [FILE...]       # a script file, plus files to share with it
#   integration/vm/run.sh 'COMMANDS' [FILE...]   # or a command string (run by bash)
#
# The guest sees a 9p share at /io (read-write; the script's working directory) holding the
# script as /io/run.sh and each FILE (file or directory) by its base name. Usable from any
# worktree by path: it installs qemu (install-qemu.sh) and builds or reuses the cached guest image
# (make-image.sh) itself. The root disk is opened with snapshot=on: no run changes it.
#
# The script starts from a systemd unit after user@1000.service: the lingering user `user`
# (uid 1000) has its user manager and delegated subtree. Run as the user in a login session with
# `su - user -c CMD`, or in the delegated subtree with
# `su - user -c "systemd-run --user --scope --quiet -- CMD"`.
#
# Env: KEEP=DIR (use and keep DIR as the share: out.log, rc, serial.log, what the script wrote),
# MEM=MiB (2048), SMP=N (2), TIMEOUT=seconds for the whole VM (3600), VM_CACHE (/var/tmp/husk-vm),
# ACCEL=tcg|kvm (tcg: the kvm here is a PVM host that a stock Debian kernel cannot boot under).
# Status: the script's; 124 when the VM hit TIMEOUT, 125 when the guest gave no status.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 SCRIPT|'COMMANDS' [FILE...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "vm: run as root" >&2; exit 2; }

"$here/install-qemu.sh" >/tmp/husk-vm-install-qemu.log 2>&1 ||
	{ tail -n 20 /tmp/husk-vm-install-qemu.log >&2; echo "vm: cannot install qemu" >&2; exit 125; }
img=$("$here/make-image.sh")
[ -e "$img/.done" ] || { echo "vm: cannot build the guest image" >&2; exit 125; }

if [ -n "${KEEP:-}" ]; then
	io=$KEEP
	mkdir -p "$io"
else
	io=$(mktemp -d /tmp/husk-vm.XXXXXX)
	trap 'rm -rf "$io"' EXIT
fi
chmod 755 "$io"
# One VM per share: a second run on the same KEEP directory would mix its files into this one's.
exec 8>"$io/.lock"
flock -n 8 || { echo "vm: $io is in use by another run" >&2; exit 2; }
rm -f "$io/rc" "$io/out.log" "$io/serial.log"
if [ -f "$1" ]; then cp "$1" "$io/run.sh"; else printf '%s\n' "$1" >"$io/run.sh"; fi
shift
for f in "$@"; do cp -a "$f" "$io/"; done
: >"$io/out.log"

# shellcheck disable=SC2054 # the commas are qemu's option syntax
case ${ACCEL:-tcg} in
kvm) accel=(-accel kvm -cpu host,-arch-capabilities) ;;
tcg) accel=(-accel tcg,thread=multi -cpu max) ;;
*) echo "vm: ACCEL must be tcg or kvm" >&2; exit 2 ;;
esac
t0=$(date +%s)
# qemu's CPU time (user + system) lands in qemu.cpu: under TCG, the guest's work, which a loaded
# machine stretches over a longer wall time.
{
	TIMEFORMAT='%U %S'
	time timeout -k 10 "${TIMEOUT:-3600}" qemu-system-x86_64 "${accel[@]}" -m "${MEM:-2048}" -smp "${SMP:-2}" \
		-nodefaults -display none -no-reboot -nic none \
		-kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0 quiet loglevel=3 systemd.show_status=0 mitigations=off panic=-1" \
		-drive file="$img/root.img",format=raw,if=virtio,snapshot=on \
		-virtfs local,path="$io",mount_tag=io,security_model=none,id=io \
		-serial file:"$io/serial.log" -device virtio-rng-pci >"$io/qemu.log" 2>&1
} 2>"$io/qemu.cpu" &
qemu=$!
# The script's output as it comes (the guest tees it into the share), until qemu exits.
tail -n +1 -F --pid=$qemu "$io/out.log" 2>/dev/null || true
set +e
wait $qemu
qrc=$?
set -e
rc=$(cat "$io/rc" 2>/dev/null || true)
if [ -z "$rc" ]; then
	echo "vm: the guest gave no status (qemu exit $qrc); serial console tail:" >&2
	tail -c 3000 "$io/serial.log" >&2 || true
	tail -n 5 "$io/qemu.log" >&2 || true
	if [ "$qrc" = 124 ]; then rc=124; else rc=125; fi
fi
start=$(sed -n 's/.*uptime at script start: \([0-9.]*\) s.*/\1/p' "$io/serial.log")
cpu=$(awk '{ printf "%d", $1 + $2 }' "$io/qemu.cpu" 2>/dev/null)
echo "vm: guest $(basename "$img"), ${ACCEL:-tcg}, booted to the script in ${start:-?} s," \
	"$(($(date +%s) - t0)) s in all (qemu cpu ${cpu:-?} s), status $rc" >&2
exit "$rc"
