#!/bin/bash
# podman 4 driving the runtime: MODE=root (vfs storage) or MODE=rootless (as $TUSER, vfs storage).
# Called by run.sh, which sets RESULTS, WORK, WRAPPER, RT_NAME, IMAGE_ARCHIVE, IMAGE_REF, TUSER.
#
# The runtime is registered the way docs/clients.md tells users to: a containers.conf with
# [engine.runtimes] and runtime_supports_json (CONTAINERS_CONF points podman at ours alone), then
# `podman --runtime NAME`. Storage, run root, tmp dir and events log live under $WORK/podman-MODE.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

mode=${MODE:-root}
tag="podman $mode"
d=$WORK/podman-$mode
mkdir -p "$d/storage" "$d/run" "$d/tmp"
img=docker.io/$IMAGE_REF

# This VM's root lacks CAP_SYS_RESOURCE, and root podman asks for RLIMIT_NOFILE/NPROC above the
# hard limits it may raise; pin them (rootless podman keeps the user's own limits).
ulimits=""
if [ "$mode" = root ]; then
	ulimits='default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
fi
# CONTAINERS_CONF makes podman read this one file only, so start from the distribution's defaults
# (Debian's set default_sysctls and default_capabilities: what users get) and add our keys under
# their tables.
export PM_CONTAINERS="# No CNI/netavark bridge: nothing here touches the host's iptables.
netns = \"none\"
$ulimits"
export PM_ENGINE="cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
events_logfile_path = \"$d/events.log\"
runtime = \"$RT_NAME\"
runtime_supports_json = [\"crun\", \"runc\", \"kata\", \"runsc\", \"krun\", \"youki\", \"$RT_NAME\"]"
export PM_RUNTIMES="$RT_NAME = [\"$WRAPPER\"]"
base=/usr/share/containers/containers.conf
[ -f "$base" ] || base=/dev/null
awk '{ print }
	/^\[containers\]/ { print ENVIRON["PM_CONTAINERS"]; c = 1 }
	/^\[engine\]/ { print ENVIRON["PM_ENGINE"]; e = 1 }
	/^\[engine\.runtimes\]/ { print ENVIRON["PM_RUNTIMES"]; r = 1 }
	END {
		if (!c) printf "[containers]\n%s\n", ENVIRON["PM_CONTAINERS"]
		if (!e) printf "[engine]\n%s\n", ENVIRON["PM_ENGINE"]
		if (!r) printf "[engine.runtimes]\n%s\n", ENVIRON["PM_RUNTIMES"]
	}' "$base" >"$d/containers.conf"

# Storage by flags: rootless podman ignores storage.conf's graphroot/runroot for its own paths.
storage=(--runtime "$RT_NAME" --root "$d/storage" --runroot "$d/run" --tmpdir "$d/tmp"
	--storage-driver vfs)
if [ "$mode" = rootless ]; then
	# Its own HOME and XDG_RUNTIME_DIR too: podman keeps caches and locks there, and the runtime
	# its state ($XDG_RUNTIME_DIR/NAME, as runc does); the user's own stay untouched.
	mkdir -p "$d/home" "$d/xdg"
	chmod 700 "$d/xdg"
	chown -R "$TUSER:" "$d"
	pm() {
		(cd "$d" && tmo runuser -u "$TUSER" -- env HOME="$d/home" XDG_RUNTIME_DIR="$d/xdg" \
			CONTAINERS_CONF="$d/containers.conf" podman "${storage[@]}" "$@")
	}
else
	pm() {
		CONTAINERS_CONF="$d/containers.conf" tmo podman "${storage[@]}" "$@"
	}
fi

cleanup() {
	pm rm --all --force --time 0 >/dev/null 2>&1
	if [ "$mode" = rootless ]; then
		# The rootless pause process keeps podman's user namespace alive between calls.
		pp=$(cat "$d/tmp/pause.pid" 2>/dev/null) && [ -n "$pp" ] && kill "$pp" 2>/dev/null
	fi
	umount_under "$d"
	rm -rf "${d:?}/storage" "${d:?}/run" "${d:?}/home" "${d:?}/xdg"
	# Empty parent cgroups podman leaves behind (v1 hierarchies).
	for c in libpod_parent/conmon libpod_parent; do
		for h in /sys/fs/cgroup/*/; do rmdir "$h$c" 2>/dev/null; done
	done
	return 0
}
trap cleanup EXIT

if ! command -v podman >/dev/null; then
	fail "$tag: podman installed"
	exit 1
fi
if ! out=$(pm load -i "$IMAGE_ARCHIVE" 2>&1); then
	fail "$tag: load image" "$out"
	exit 1
fi

t_run_rm() {
	local out rc
	out=$(pm run --rm "$img" sh -c 'echo out-$((6*7)); exit 7' 2>&1)
	rc=$?
	expect_eq "exit code" "$rc" 7 || { echo "$out"; return 1; }
	expect_eq "output" "$out" out-42 || return 1
	out=$(pm ps -a --format '{{.ID}}' 2>&1)
	expect_eq "containers left after --rm" "$out" ""
}

t_detached() {
	local out
	out=$(pm run -d --name c1 "$img" sh -c 'echo hello-log; exec sleep 600' 2>&1) || {
		echo "$out"
		return 1
	}
	out=$(pm inspect --format '{{.State.Status}}' c1 2>&1)
	expect_eq "status" "$out" running
}

t_exec() {
	local out rc
	out=$(pm exec c1 sh -c 'echo exec-$((1+1)); cat /proc/1/cmdline | tr "\0" " "' 2>&1)
	expect_eq "exec output" "$out" "exec-2
sleep 600 " || return 1
	pm exec c1 sh -c 'exit 3' >/dev/null 2>&1
	rc=$?
	expect_eq "exec exit code" "$rc" 3 || return 1
	out=$(pm exec c1 sh -c '[ -t 0 ] || [ -t 1 ] && echo tty || echo no-tty' 2>&1)
	expect_eq "exec without -t" "$out" no-tty
}

t_exec_tty() {
	local out
	out=$(pm exec -t c1 tty 2>&1)
	out=${out%$'\r'}
	expect_has "exec -t: tty" "$out" /dev/pts/ || return 1
	out=$(pm exec -t c1 sh -c 'stty size' 2>&1)
	[ -n "$out" ] || { echo "exec -t: stty size printed nothing"; return 1; }
}

t_logs() {
	logs_have() { pm logs c1 2>&1 | grep -qx hello-log; }
	wait_for 10 logs_have || {
		pm logs c1 2>&1
		return 1
	}
}

t_stop() {
	local out
	out=$(pm stop --time 1 c1 2>&1) || {
		echo "$out"
		return 1
	}
	out=$(pm inspect --format '{{.State.Status}}' c1 2>&1)
	expect_eq "status after stop" "$out" exited
}

t_kill() {
	local out
	out=$(pm run -d --name c2 "$img" sleep 600 2>&1) || {
		echo "$out"
		return 1
	}
	out=$(pm kill --signal KILL c2 2>&1) || {
		echo "$out"
		return 1
	}
	out=$(pm wait c2 2>&1)
	expect_eq "exit code after kill -9" "$out" 137 || return 1
	out=$(pm inspect --format '{{.State.Status}}' c2 2>&1)
	expect_eq "status after kill" "$out" exited
}

t_rm() {
	local out
	out=$(pm rm c1 c2 2>&1) || {
		echo "$out"
		return 1
	}
	out=$(pm ps -a --format '{{.Names}}' 2>&1)
	expect_eq "containers after rm" "$out" "" || return 1
	# A running one too: rm --force stops (kill) and deletes it through the runtime.
	pm run -d --name c3 "$img" sleep 600 >/dev/null 2>&1 || return 1
	out=$(pm rm --force --time 0 c3 2>&1) || {
		echo "$out"
		return 1
	}
	if pm container exists c3; then
		echo "c3 still exists after rm --force"
		return 1
	fi
}

t_read_only() {
	local out rc
	out=$(pm run --rm --read-only "$img" sh -c 'touch /x' 2>&1)
	rc=$?
	[ "$rc" != 0 ] || { echo "touch / succeeded on a --read-only rootfs"; return 1; }
	expect_has "touch /" "$out" "Read-only file system" || return 1
	# podman adds writable tmpfs mounts (/tmp, /run, /var/tmp) to a read-only rootfs.
	out=$(pm run --rm --read-only "$img" sh -c 'touch /tmp/x && echo tmp-ok' 2>&1)
	expect_eq "touch /tmp" "$out" tmp-ok
}

t_network_none() {
	local out host
	host=$(readlink /proc/self/ns/net)
	out=$(pm run --rm --network none "$img" sh -c \
		'readlink /proc/self/ns/net; ls /sys/class/net | tr "\n" " "' 2>&1)
	if [ "$(echo "$out" | head -n 1)" = "$host" ]; then
		echo "container shares the host netns"
		return 1
	fi
	expect_eq "interfaces" "$(echo "$out" | tail -n 1)" "lo " || return 1
}

# podman adds sysctls (its default_sysctls, and --sysctl) and makes /proc/sys read-only
t_sysctl() {
	local out
	out=$(pm run --rm --sysctl net.ipv4.ping_group_range="0 1000" "$img" sh -c \
		'cat /proc/sys/net/ipv4/ping_group_range; echo 1 2>&1 >/proc/sys/net/ipv4/ip_forward' 2>&1)
	expect_eq "ping_group_range" "$(echo "$out" | head -n 1 | tr '\t' ' ')" "0 1000" || {
		echo "$out"
		return 1
	}
	expect_has "write to /proc/sys" "$out" "Read-only file system"
}

# cgroup limit as the host sees it in the container's own cgroup
t_limits() {
	local out pid f
	out=$(pm run -d --name lim --memory 64m --pids-limit 50 "$img" sleep 600 2>&1) || {
		echo "$out"
		return 1
	}
	pid=$(pm inspect --format '{{.State.Pid}}' lim 2>&1)
	f=$(cgroup_file "$pid" memory memory.limit_in_bytes)
	[ -e "$f" ] || f=$(cgroup_file "$pid" memory memory.max)
	expect_eq "memory limit ($f)" "$(cat "$f" 2>&1)" 67108864 || return 1
	f=$(cgroup_file "$pid" pids pids.max)
	expect_eq "pids limit ($f)" "$(cat "$f" 2>&1)" 50 || return 1
	pm rm --force --time 0 lim >/dev/null 2>&1
}

check "$tag: run --rm, exit code passthrough" t_run_rm
check "$tag: run -d" t_detached
check "$tag: exec (no tty), exit code" t_exec
check "$tag: exec -t" t_exec_tty
check "$tag: logs" t_logs
check "$tag: stop" t_stop
check "$tag: kill" t_kill
check "$tag: rm, rm --force" t_rm
check "$tag: run --read-only" t_read_only
check "$tag: run --network none" t_network_none
check "$tag: --sysctl, read-only /proc/sys" t_sysctl
[ "$mode" = root ] && check "$tag: --memory, --pids-limit" t_limits
exit 0
