# shellcheck shell=bash
# podman 4 driving each runtime (`podman --runtime PATH`), as root and rootless (`user` in a login
# session; podman asks the user's systemd for the container's scope). One container per runtime
# and mode goes through run -d, exec, pause + unpause, stop and rm, one case per step.
# The image (localhost/vmlane) is the lane's busybox rootfs, imported at setup for root and user.

# pod MODE ARGS... <<'EOF' BODY EOF: run BODY (bash) as root or as the user (login session) with
# $P set to the podman command line and ARGS as $1...
pod() {
	local mode=$1 f
	shift
	f=$(mktemp /tmp/vmlane-pod.XXXXXX)
	{
		echo "P='podman --runtime $RT'"
		echo 'IMG=localhost/vmlane:latest'
		cat
	} >"$f"
	chmod 644 "$f"
	if [ "$mode" = root ]; then
		t bash "$f" "$@"
	else
		as_user login "$@" <"$f"
	fi
	local rc=$?
	rm -f "$f"
	return $rc
}

p_run() {
	pod "$1" <<'EOF'
out=$($P run --rm --network none $IMG sh -c 'echo hi; exit 5')
rc=$?
[ "$out" = hi ] || { echo "output: $out"; exit 1; }
[ $rc = 5 ] || { echo "exit status $rc, want 5"; exit 1; }
EOF
}

p_exec() {
	pod "$1" "vl-$RTN" <<'EOF'
$P rm -f $1 >/dev/null 2>&1
$P run -d --name $1 --network none $IMG /bin/husk-probe sleep 600 >/dev/null || exit 1
out=$($P exec $1 /bin/husk-probe echo hi) || exit 1
[ "$out" = hi ] || { echo "exec output: $out"; exit 1; }
EOF
}

p_pause() {
	pod "$1" "vl-$RTN" <<'EOF'
st() { $P inspect -f '{{.State.Status}}' $1; }
$P pause $1 || exit 1
[ "$(st $1)" = paused ] || { echo "after pause: $(st $1)"; exit 1; }
$P unpause $1 || exit 1
[ "$(st $1)" = running ] || { echo "after unpause: $(st $1)"; exit 1; }
out=$($P exec $1 /bin/husk-probe echo after) || exit 1
[ "$out" = after ] || { echo "exec after unpause: $out"; exit 1; }
EOF
}

p_stop() {
	pod "$1" "vl-$RTN" <<'EOF'
$P stop -t 2 $1 >/dev/null || exit 1
st=$($P inspect -f '{{.State.Status}}' $1)
[ "$st" = exited ] || { echo "after stop: $st"; exit 1; }
EOF
}

p_rm() {
	pod "$1" "vl-$RTN" <<'EOF'
$P rm $1 >/dev/null || { $P rm -f $1 >/dev/null 2>&1; exit 1; }
if $P container exists $1; then echo "still there after rm"; exit 1; fi
EOF
}

p_limits() {
	pod "$1" <<'EOF'
out=$($P run --rm --network none --pids-limit 10 $IMG /bin/husk-probe fork 30)
echo "$out"
started=$(echo "$out" | grep '"started"' | jq -r .started)
[ -n "$started" ] && [ "$started" -lt 10 ] || { echo "started ${started:-?} children under --pids-limit 10"; exit 1; }
EOF
}

# Issue 11 item 1, as the issue found it: podman run --cap-add MKNOD, then read the disk.
p_mknod() {
	pod "$1" "$(disk_dev)" <<'EOF'
out=$($P run --rm --network none --cap-add MKNOD $IMG sh -c "mknod /tmp/d $1 && head -c 512 /tmp/d | wc -c" 2>&1)
echo "$out"
if echo "$out" | grep -qx 512; then echo "read 512 bytes of the host's disk"; exit 1; fi
EOF
}

podman_cases() {
	local mode
	for mode in root rootless; do
		run_case "$RTN" "podman-$mode-run" p_run $mode
		run_case "$RTN" "podman-$mode-exec" p_exec $mode
		run_case "$RTN" "podman-$mode-pause" p_pause $mode
		run_case "$RTN" "podman-$mode-stop" p_stop $mode
		run_case "$RTN" "podman-$mode-rm" p_rm $mode
		run_case "$RTN" "podman-$mode-limits" p_limits $mode
	done
	run_case "$RTN" podman-root-mknod p_mknod root
}
