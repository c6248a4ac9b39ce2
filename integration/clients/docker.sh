#!/bin/bash
# dockerd 20.10 + docker driving the runtime as `--add-runtime husk=RUNTIME` (also the default
# runtime, so `docker info`/`docker version` report its version). dockerd runs with no iptables and
# no bridge, its data-root, exec-root, pidfile and socket under $WORK/docker, and is stopped on
# exit.
# Called by run.sh (see podman.sh for the env). Uses Debian's /usr/bin/docker client.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

tag=docker
d=$WORK/docker
mkdir -p "$d"
img=$IMAGE_REF
# dockerd reserves the name runc for its built-in entry.
rt=$RT_NAME
[ "$rt" = husk ] || rt=$RT_NAME-wrapped
dpid=""
docker=/usr/bin/docker
export DOCKER_HOST=unix://$d/docker.sock
# Keep the client away from root's ~/.docker and any DOCKER_* settings of the caller.
export DOCKER_CONFIG=$d/client
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

# The registration users write into /etc/docker/daemon.json (docs/clients.md), plus what keeps
# this daemon off the host's network and files.
cat >"$d/daemon.json" <<EOF
{
  "runtimes": { "$rt": { "path": "$WRAPPER" } },
  "default-runtime": "$rt",
  "data-root": "$d/data",
  "exec-root": "$d/exec",
  "pidfile": "$d/dockerd.pid",
  "hosts": ["unix://$d/docker.sock"],
  "containerd-namespace": "husk-clients-docker",
  "containerd-plugins-namespace": "husk-clients-docker-plugins",
  "storage-driver": "${DOCKER_STORAGE:-overlay2}",
  "iptables": false, "ip6tables": false, "ip-forward": false, "ip-masq": false,
  "bridge": "none", "userland-proxy": false
}
EOF

dk() { tmo "$docker" "$@"; }

cleanup() {
	if [ -n "$dpid" ]; then
		for c in $(dk ps -aq 2>/dev/null); do dk rm --force "$c" >/dev/null 2>&1; done
		# dockerd started its own containerd (none was given); it stops with dockerd: wait for it.
		ctd=$(pgrep -P "$dpid" -x containerd)
		kill "$dpid" 2>/dev/null
		wait "$dpid" 2>/dev/null
		[ -z "$ctd" ] || wait_for 10 sh -c "! kill -0 $ctd" >/dev/null
	fi
	umount_under "$d"
	for h in /sys/fs/cgroup/*/; do rmdir "${h}docker" 2>/dev/null; done
	return 0
}
trap cleanup EXIT

if [ ! -x "$docker" ] || ! command -v dockerd >/dev/null; then
	fail "$tag: dockerd and docker installed"
	exit 1
fi
dockerd --config-file "$d/daemon.json" >"$d/dockerd.log" 2>&1 &
dpid=$!
# Up to 30 s, unless dockerd exits first.
n=0
while ! dk version >/dev/null 2>&1 && kill -0 "$dpid" 2>/dev/null && [ $n -lt 150 ]; do
	sleep 0.2
	n=$((n + 1))
done
if ! dk version >/dev/null 2>&1; then
	fail "$tag: start dockerd" "$(tail -n 20 "$d/dockerd.log")"
	exit 1
fi
if ! out=$(dk load -i "$IMAGE_ARCHIVE" 2>&1); then
	fail "$tag: load image" "$out"
	exit 1
fi
# Every run names the runtime, though it is also the default.
run() { dk run --runtime "$rt" "$@"; }

t_info() {
	local out ver commit
	out=$(dk info --format '{{json .Runtimes}}' 2>&1)
	expect_has "docker info runtimes" "$out" "\"$rt\":{\"path\":\"$WRAPPER\"" || return 1
	expect_eq "default runtime" "$(dk info --format '{{.DefaultRuntime}}' 2>&1)" "$rt" || return 1
	# dockerd parses `RUNTIME --version` ("NAME version X" / "commit: Y") into the server's
	# components and RuncCommit.
	ver=$("$RUNTIME" --version | sed -n 's/^.* version \([^ ]*\).*$/\1/p' | head -n 1)
	commit=$("$RUNTIME" --version | sed -n 's/^commit: *//p')
	[ -n "$ver" ] || { echo "runtime --version has no 'NAME version X' line"; return 1; }
	out=$(dk version --format '{{range .Server.Components}}{{.Name}}={{.Version}};{{end}}' 2>&1)
	expect_has "docker version components" "$out" "$rt=$ver;" || return 1
	[ -n "$commit" ] || { echo "runtime --version has no 'commit: X' line"; return 1; }
	out=$(dk info --format '{{.RuncCommit.ID}}' 2>&1)
	expect_eq "docker info RuncCommit" "$out" "$commit"
}

t_run_rm() {
	local out rc
	out=$(run --rm --network none "$img" sh -c 'echo out-$((6*7)); exit 7' 2>&1)
	rc=$?
	expect_eq "exit code" "$rc" 7 || { echo "$out"; return 1; }
	expect_eq "output" "$out" out-42 || return 1
	expect_eq "containers after --rm" "$(dk ps -aq 2>&1)" ""
}

t_detached_exec() {
	local out rc
	out=$(run -d --name d1 --network none "$img" sleep 600 2>&1) || { echo "$out"; return 1; }
	expect_eq "status" "$(dk inspect --format '{{.State.Status}}' d1 2>&1)" running || return 1
	expect_eq "runtime" "$(dk inspect --format '{{.HostConfig.Runtime}}' d1 2>&1)" "$rt" ||
		return 1
	out=$(dk exec d1 sh -c 'echo exec-$((1+1)); [ -t 1 ] && echo tty || echo no-tty' 2>&1)
	expect_eq "exec output" "$out" "exec-2
no-tty" || return 1
	dk exec d1 sh -c 'exit 3' >/dev/null 2>&1
	rc=$?
	expect_eq "exec exit code" "$rc" 3 || return 1
	out=$(dk exec -t d1 tty 2>&1 | tr -d '\r')
	expect_has "exec -t: tty" "$out" /dev/pts/
}

t_stop() {
	local out
	out=$(dk stop --time 1 d1 2>&1) || { echo "$out"; return 1; }
	expect_eq "status after stop" "$(dk inspect --format '{{.State.Status}}' d1 2>&1)" exited ||
		return 1
	out=$(dk rm d1 2>&1) || { echo "$out"; return 1; }
	expect_eq "containers after rm" "$(dk ps -aq 2>&1)" ""
}

t_read_only() {
	local out rc
	out=$(run --rm --network none --read-only "$img" sh -c 'touch /x' 2>&1)
	rc=$?
	[ "$rc" != 0 ] || { echo "touch / succeeded on a --read-only rootfs"; return 1; }
	expect_has "touch /" "$out" "Read-only file system" || return 1
	out=$(run --rm --network none --read-only --tmpfs /tmp "$img" sh -c 'touch /tmp/x && echo ok' \
		2>&1)
	expect_eq "touch /tmp on --tmpfs" "$out" ok
}

# With --network none docker still makes a network sandbox: its prestart hook (libnetwork-setkey,
# run by the runtime in the container's netns) hands the netns to dockerd, which then sets up
# loopback there. Loopback up inside (and SandboxKey set) shows the hook ran.
t_network_none_hook() {
	local out host
	host=$(readlink /proc/self/ns/net)
	out=$(run --rm --network none "$img" sh -c \
		'readlink /proc/self/ns/net; ls /sys/class/net | tr "\n" " "; echo; ip -o link show lo' 2>&1)
	if [ "$(echo "$out" | sed -n 1p)" = "$host" ]; then
		echo "container shares the host netns"
		return 1
	fi
	expect_eq "interfaces" "$(echo "$out" | sed -n 2p)" "lo " || return 1
	expect_has "loopback (set up by dockerd after the setkey hook)" "$(echo "$out" | sed -n 3p)" \
		"LOWER_UP"
}

# The hook is in config.json; check it directly as well as by its effect.
t_hook_in_config() {
	local out cfg
	out=$(run -d --name h1 --network none "$img" sleep 600 2>&1) || { echo "$out"; return 1; }
	cfg=$(find "$d/exec" -path "*/$out/config.json" 2>/dev/null | head -n 1)
	[ -n "$cfg" ] || { echo "no config.json for $out under $d/exec"; return 1; }
	out=$(jq -r '.hooks.prestart[]?.args | join(" ")' "$cfg" 2>&1)
	expect_has "prestart hook" "$out" libnetwork-setkey || return 1
	out=$(dk inspect --format '{{.NetworkSettings.SandboxKey}}' h1 2>&1)
	[ -n "$out" ] && [ -e "$out" ] || { echo "no sandbox netns: [$out]"; return 1; }
	# the sandbox docker bound is the container's own netns
	expect_eq "sandbox netns" "$(stat -L -c %i "$out")" \
		"$(stat -L -c %i "/proc/$(dk inspect --format '{{.State.Pid}}' h1)/ns/net")"
	dk rm --force h1 >/dev/null 2>&1
}

# Docker's default seccomp profile denies unshare(CLONE_NEWUSER) without CAP_SYS_ADMIN; the same
# command passes unconfined, so a failure is the profile's doing.
t_seccomp() {
	local out rc
	out=$(run --rm --network none "$img" unshare -U true 2>&1)
	rc=$?
	[ "$rc" != 0 ] || { echo "unshare -U passed under docker's seccomp profile"; return 1; }
	expect_has "unshare -U" "$out" "Operation not permitted" || return 1
	out=$(run --rm --network none --security-opt seccomp=unconfined "$img" unshare -U true 2>&1) || {
		echo "unshare -U fails even unconfined: $out"
		return 1
	}
	out=$(run --rm --network none "$img" grep Seccomp: /proc/self/status 2>&1)
	expect_has "seccomp mode" "$out" "Seccomp:	2"
}

check "$tag: info/version report the runtime" t_info
check "$tag: run --rm, exit code passthrough" t_run_rm
check "$tag: run -d, exec (with and without -t)" t_detached_exec
check "$tag: stop, rm" t_stop
check "$tag: run --read-only" t_read_only
check "$tag: run --network none (prestart hook's effect)" t_network_none_hook
check "$tag: prestart hook in config.json, sandbox netns" t_hook_in_config
check "$tag: seccomp profile honoured" t_seccomp
exit 0
