#!/bin/bash
# Build (or find in the cache) the VM lane's guest: Debian 12 with systemd as PID 1 on a pure
# cgroup v2 hierarchy, a lingering user `user` (uid 1000, subuid/subgid) whose user manager gets a
# delegated subtree, podman, runc and crun. Prints the image directory (root.img, vmlinuz,
# initrd.img) on stdout; progress goes to stderr.
#
#   integration/vm/make-image.sh            # -> /var/tmp/husk-vm/img-<key>
#
# The image is cached under $VM_CACHE (default /var/tmp/husk-vm) in a directory named by a hash of
# this script and ./packages: it is rebuilt only when the recipe changes (FORCE=1 rebuilds anyway).
# Downloaded debs are kept in $VM_CACHE/debs. Packages come from this machine's own Debian mirror
# (/etc/apt/sources.list*; MIRROR=URL overrides). Needs root, debootstrap, mkfs.ext4 (e2fsprogs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
[ "$(id -u)" = 0 ] || { echo "make-image: run as root" >&2; exit 1; }

# stdout carries only the image directory; everything else goes to stderr.
exec 3>&1 1>&2
cache=$(cache_dir)
key=$(cat "$here/make-image.sh" "$here/packages" | sha256sum | cut -c 1-16)
out=$cache/img-$key
if [ -e "$out/.done" ] && [ -z "${FORCE:-}" ]; then
	touch "$out/.done"
	echo "$out" >&3
	exit 0
fi

for tool in debootstrap mkfs.ext4; do
	command -v "$tool" >/dev/null || {
		echo "make-image: $tool missing (apt-get install debootstrap e2fsprogs)" >&2
		exit 1
	}
done
mirror=$(debian_mirror)
[ -n "$mirror" ] || { echo "make-image: no Debian mirror in /etc/apt/sources.list* (set MIRROR)" >&2; exit 1; }
pkgs=$(sed 's/#.*//' "$here/packages" | tr -s ' \n' '\n' | grep . | paste -sd,)

mkdir -p "$cache/debs"
# One build at a time (a CI job and a hand run may race on the same key).
exec 9>"$cache/.lock"
flock 9
if [ -e "$out/.done" ] && [ -z "${FORCE:-}" ]; then
	touch "$out/.done"
	echo "$out" >&3
	exit 0
fi
work=$cache/build-$key
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
t0=$(date +%s)
echo "make-image: debootstrap bookworm from $mirror" >&2
debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$pkgs" bookworm "$root" "$mirror" ||
	{ tail -n 30 "$root/debootstrap/debootstrap.log" 2>/dev/null; exit 1; }
t1=$(date +%s)

# --- configuration ---------------------------------------------------------------------------
echo guest >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 guest\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$root/etc/fstab"
chroot "$root" passwd -d root >/dev/null
chroot "$root" useradd -m -s /bin/bash -u 1000 user
for f in subuid subgid; do
	grep -q '^user:' "$root/etc/$f" 2>/dev/null || echo 'user:100000:65536' >>"$root/etc/$f"
done
# `loginctl enable-linger user`, done offline: user@1000.service starts at boot with a delegated
# subtree, and /run/user/1000 exists for rootless podman and husk.
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/user"
# The guest has no network: mask units that wait for it, for time, or run housekeeping mid-test;
# no getty on the serial console (the lane's output goes there).
for u in systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
	fstrim.timer man-db.timer dpkg-db-backup.timer logrotate.timer podman-restart.service \
	podman-auto-update.timer podman-clean-transient.service systemd-networkd-wait-online.service \
	serial-getty@ttyS0.service getty@tty1.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done

# The boot-time runner: mount the 9p share "io", run io/run.sh as root, keep its output in
# io/out.log and its status in io/rc, then power off. run.sh (host side) reads both.
cat >"$root/usr/local/sbin/vmrun" <<'RUNNER'
#!/bin/bash
console=/dev/ttyS0
mkdir -p /io
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=none io /io; then
	echo "vmrun: no 9p share" >$console
	systemctl poweroff --no-block
	exit 1
fi
echo "vmrun: uptime at script start: $(cut -d' ' -f1 /proc/uptime) s" >$console
cd /io
bash /io/run.sh </dev/null 2>&1 | tee /io/out.log >$console
rc=${PIPESTATUS[0]}
echo "$rc" >/io/rc
echo "vmrun: uptime at script end: $(cut -d' ' -f1 /proc/uptime) s, rc=$rc" >$console
sync
systemctl poweroff --no-block
RUNNER
chmod 755 "$root/usr/local/sbin/vmrun"
cat >"$root/etc/systemd/system/vmrun.service" <<'UNIT'
[Unit]
Description=Run the host's /io/run.sh as root, then power off
After=basic.target user@1000.service systemd-logind.service systemd-user-sessions.service
Wants=user@1000.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vmrun
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/vmrun.service "$root/etc/systemd/system/multi-user.target.wants/vmrun.service"

# The initrd carries only what reaches a virtio root (MODULES=list: a 4x smaller initrd, which
# matters under TCG); 9p and overlay load from the root.
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$root/etc/initramfs-tools/modules"
printf '9p\n9pnet_virtio\noverlay\n' >"$root/etc/modules-load.d/husk-vm.conf"
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
kver=$(ls "$root/lib/modules" | sort -V | tail -n 1)
chroot "$root" update-initramfs -u -k "$kver" >/dev/null 2>&1 || chroot "$root" update-initramfs -c -k "$kver"
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/initrd.img"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*_Packages
t2=$(date +%s)

# --- the disk ----------------------------------------------------------------------------------
# Sparse; the guest opens it with snapshot=on, so a run never changes it.
mkfs.ext4 -q -F -L root -d "$root" "$work/root.img" "${SIZE:-4G}"
rm -rf "$root"
t3=$(date +%s)
echo "make-image: kernel $kver; debootstrap $((t1 - t0)) s, configure $((t2 - t1)) s, disk $((t3 - t2)) s" >&2
touch "$work/.done"
# Drop images of other recipes unused for a day (a use touches .done): worktrees with different
# recipes may share the cache, and a run may still be booting from one.
find "$cache" -maxdepth 2 -path "$cache/img-*/.done" -mtime +0 -printf '%h\n' | xargs -r rm -rf
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
echo "$out" >&3
