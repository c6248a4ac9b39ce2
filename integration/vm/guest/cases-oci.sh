# shellcheck shell=bash
# OCI-face cases, each run against every runtime ($RT: its path, $RTN: its name). Root cases use
# the cgroupfs driver with cgroupsPath /vmlane/ID unless they say systemd; rootless cases run as
# `user`, in a login session or in a scope of the user's systemd (the delegated subtree).

# sleeper ID [JQ-FILTER [FLAGS...]]: create and start a root container running `sleep 600`.
sleeper() {
	local id=$1 filter=${2:-.} b=$LANE/b/$1
	shift $(($# < 2 ? $# : 2))
	"$RT" "$@" delete -f "$id" >/dev/null 2>&1
	bundle "$b" "$(with_args /bin/husk-probe sleep 600) | .linux.cgroupsPath = \"/vmlane/$id\" | $filter"
	t "$RT" "$@" create --bundle "$b" "$id" </dev/null >/dev/null 2>"$b/err" || { cat "$b/err"; return 1; }
	t "$RT" "$@" start "$id" || return 1
}

# status_of ID [FLAGS...], pid_of ID [FLAGS...]: from the runtime's state.
status_of() { "$RT" "${@:2}" state "$1" | jq -r .status; }
pid_of() { "$RT" "${@:2}" state "$1" | jq -r .pid; }

# gone ID [FLAGS...]: kill and delete a container, whatever its state.
gone() { t "$RT" "${@:2}" delete -f "$1" >/dev/null 2>&1; }

# stopped ID [FLAGS...]: wait until the container's state says stopped.
stopped() {
	local n=100
	while [ $n -gt 0 ]; do
		[ "$(status_of "$@")" = stopped ] && return 0
		sleep 0.2
		n=$((n - 1))
	done
	echo "$1 not stopped: $(status_of "$@")"
	return 1
}

c_lifecycle() {
	local id=vl-$RTN-life rc=0 b
	sleeper "$id" || return 1
	want "state after start" "$(status_of "$id")" running || rc=1
	t "$RT" kill "$id" KILL || rc=1
	stopped "$id" || rc=1
	t "$RT" delete "$id" || rc=1
	if "$RT" state "$id" >/dev/null 2>&1; then echo "state works after delete"; rc=1; fi
	if [ -e "/sys/fs/cgroup/vmlane/$id" ]; then echo "cgroup left after delete"; rc=1; fi
	gone "$id"
	# create alone: "created", and the process waits for start
	b=$LANE/b/$id
	bundle "$b" "$(with_args /bin/husk-probe echo started) | .linux.cgroupsPath = \"/vmlane/$id\""
	t "$RT" create --bundle "$b" "$id" </dev/null >"$b/out" 2>&1 || { cat "$b/out"; return 1; }
	want "state after create" "$(status_of "$id")" created || rc=1
	want "output before start" "$(cat "$b/out")" "" || rc=1
	gone "$id"
	return $rc
}

c_exec() {
	local id=vl-$RTN-exec rc=0 out pid
	sleeper "$id" || return 1
	out=$(t "$RT" exec "$id" /bin/husk-probe echo hi)
	want "exec output" "$out" hi || rc=1
	t "$RT" exec "$id" sh -c 'exit 3'
	want "exec exit status" "$?" 3 || rc=1
	pid=$(pid_of "$id")
	out=$(t "$RT" exec "$id" cat /proc/self/cgroup)
	want "exec's cgroup" "$out" "$(cat "/proc/$pid/cgroup")" || rc=1
	gone "$id"
	return $rc
}

c_memory_oom() {
	local id=vl-$RTN-oom out rc
	bundle "$LANE/b/$id" "$(with_args /bin/husk-probe alloc 256)
		| .linux.cgroupsPath = \"/vmlane/$id\" | .linux.resources.memory = {\"limit\": 33554432}"
	out=$(t "$RT" run --bundle "$LANE/b/$id" "$id" </dev/null 2>&1)
	rc=$?
	gone "$id"
	echo "$out"
	want "exit status (SIGKILL by the OOM killer)" "$rc" 137 && want_lacks "output" "$out" allocated_mb
}

# fewer STARTED N: the probe's fork report says fewer than N children started.
fewer() {
	local started
	started=$(grep '"started"' <<<"$1" | tail -n 1 | jq -r .started 2>/dev/null)
	[ -n "$started" ] && [ "$started" != null ] && [ "$started" -lt "$2" ] && return 0
	echo "started ${started:-?} children, want fewer than $2"
	return 1
}

c_pids_limit() {
	local id=vl-$RTN-pids out
	bundle "$LANE/b/$id" "$(with_args /bin/husk-probe fork 30)
		| .linux.cgroupsPath = \"/vmlane/$id\" | .linux.resources.pids = {\"limit\": 10}"
	out=$(t "$RT" run --bundle "$LANE/b/$id" "$id" </dev/null 2>&1)
	gone "$id"
	echo "$out"
	fewer "$out" 10
}

c_cpu_limit() {
	local id=vl-$RTN-cpu rc=0 cg
	sleeper "$id" '.linux.resources.cpu = {"quota": 10000, "period": 100000}
		| .process.args = ["sh", "-c", "timeout 3 sh -c \"while :; do :; done\"; sleep 600"]' || return 1
	cg=$(cgroup_of "$(pid_of "$id")")
	want "cpu.max" "$(cat "$cg/cpu.max")" "10000 100000" || rc=1
	# a busy loop under 10 ms per 100 ms is throttled at least once
	wait_for 30 awk '/^nr_throttled/ { exit !($2 > 0) }' "$cg/cpu.stat" || { cat "$cg/cpu.stat"; rc=1; }
	gone "$id"
	return $rc
}

c_update() {
	local id=vl-$RTN-update rc=0 cg
	sleeper "$id" '.linux.resources.memory = {"limit": 67108864} | .linux.resources.pids = {"limit": 20}' || return 1
	cg=$(cgroup_of "$(pid_of "$id")")
	want "memory.max before" "$(cat "$cg/memory.max")" 67108864 || rc=1
	echo '{"memory": {"limit": 50331648}, "pids": {"limit": 7}}' >"$LANE/b/$id/res.json"
	t "$RT" update -r "$LANE/b/$id/res.json" "$id" || rc=1
	want "memory.max after update" "$(cat "$cg/memory.max")" 50331648 || rc=1
	want "pids.max after update" "$(cat "$cg/pids.max")" 7 || rc=1
	gone "$id"
	return $rc
}

c_events_stats() {
	local id=vl-$RTN-events rc=0 out
	"$RT" --help 2>&1 | grep -qw events || { echo "$RTN has no events command"; return 77; }
	sleeper "$id" || return 1
	out=$(t "$RT" events --stats "$id")
	echo "$out" | cut -c 1-400
	jq -e '.type == "stats" and .data.pids.current >= 1 and .data.memory.usage.usage > 0' <<<"$out" >/dev/null || rc=1
	gone "$id"
	return $rc
}

c_pause_resume() {
	local id=vl-$RTN-pause rc=0 cg
	sleeper "$id" || return 1
	cg=$(cgroup_of "$(pid_of "$id")")
	t "$RT" pause "$id" || rc=1
	want "state after pause" "$(status_of "$id")" paused || rc=1
	want "cgroup.freeze after pause" "$(cat "$cg/cgroup.freeze")" 1 || rc=1
	wait_for 10 grep -qx 'frozen 1' "$cg/cgroup.events" || rc=1
	t "$RT" resume "$id" || rc=1
	want "state after resume" "$(status_of "$id")" running || rc=1
	want "cgroup.freeze after resume" "$(cat "$cg/cgroup.freeze")" 0 || rc=1
	gone "$id"
	return $rc
}

# A config with CAP_MKNOD (Docker's default set has it) must still not reach the host's disk: the
# device cgroup (a BPF program on v2) denies every device the config does not allow. The node is
# made on /dev (the config's tmpfs, not nodev) and on /tmp (the rootfs).
c_devices_mknod() {
	local id=vl-$RTN-mknod out caps script
	caps='["CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]'
	script="for d in /dev /tmp; do mknod \$d/vl-disk $(disk_dev) && echo \$d: \$(head -c 512 \$d/vl-disk | wc -c); done
		echo x >/dev/null && echo null-ok"
	bundle "$LANE/b/$id" "$(with_args sh -c "$script")
		| .linux.cgroupsPath = \"/vmlane/$id\"
		| .process.capabilities.bounding = $caps | .process.capabilities.effective = $caps
		| .process.capabilities.permitted = $caps"
	out=$(t "$RT" run --bundle "$LANE/b/$id" "$id" </dev/null 2>&1)
	gone "$id"
	echo "$out"
	grep -qx null-ok <<<"$out" || { echo "writing /dev/null (allowed by default) failed"; return 1; }
	if grep -q ': 512$' <<<"$out"; then
		echo "read 512 bytes of the host's disk"
		return 1
	fi
}

# MKNOD_CAPS, DISK_SCRIPT: a config with CAP_MKNOD and a script that makes and reads a node of
# the host's disk, then writes /dev/null; no_disk OUTPUT: the disk was not read, /dev/null was.
MKNOD_CAPS='["CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]'
disk_script() {
	echo "for d in /dev /tmp; do rm -f \$d/vl-disk; mknod \$d/vl-disk $(disk_dev) && echo \$d: \$(head -c 512 \$d/vl-disk | wc -c); done
		echo x >/dev/null && echo null-ok"
}
no_disk() {
	echo "$1"
	grep -qx null-ok <<<"$1" || { echo "writing /dev/null (allowed by default) failed"; return 1; }
	if grep -q ': 512$' <<<"$1"; then
		echo "read 512 bytes of the host's disk"
		return 1
	fi
}
with_mknod() {
	echo ".process.capabilities.bounding = $MKNOD_CAPS | .process.capabilities.effective = $MKNOD_CAPS
		| .process.capabilities.permitted = $MKNOD_CAPS"
}

# The device rules with the systemd driver: the same denial in the container's scope.
c_devices_systemd() {
	local id=vl-$RTN-sdmknod out
	bundle "$LANE/b/$id" "$(with_args sh -c "$(disk_script)")
		| .linux.cgroupsPath = \"system.slice:vmlane:$id\" | $(with_mknod)"
	out=$(t "$RT" --systemd-cgroup run --bundle "$LANE/b/$id" "$id" </dev/null 2>&1)
	gone "$id" --systemd-cgroup
	no_disk "$out"
}

# The device rules survive `update` (which rewrites the cgroup's limits): after a memory update,
# a process exec'd into the container still cannot read the disk.
c_devices_update() {
	local id=vl-$RTN-devupd rc=0 out
	sleeper "$id" "$(with_mknod)" || return 1
	echo '{"memory": {"limit": 50331648}}' >"$LANE/b/$id/res.json"
	t "$RT" update -r "$LANE/b/$id/res.json" "$id" || rc=1
	out=$(t "$RT" exec "$id" sh -c "$(disk_script)" 2>&1)
	no_disk "$out" || rc=1
	gone "$id"
	return $rc
}

# --systemd-cgroup: a transient scope holding the container (crun puts it in a child cgroup of the
# scope), its limits in the container's cgroup and biting, the scope gone on delete.
c_systemd_scope() {
	local id=vl-$RTN-sd rc=0 unit cg out
	unit=vmlane-$id.scope
	sleeper "$id" ".linux.cgroupsPath = \"system.slice:vmlane:$id\"
		| .linux.resources.memory = {\"limit\": 67108864} | .linux.resources.pids = {\"limit\": 10}" \
		--systemd-cgroup || return 1
	want "$unit" "$(systemctl show -p ActiveState "$unit")" ActiveState=active || rc=1
	cg=$(cgroup_of "$(pid_of "$id" --systemd-cgroup)")
	case $cg in
	"/sys/fs/cgroup/system.slice/$unit" | "/sys/fs/cgroup/system.slice/$unit"/*) ;;
	*) echo "container cgroup $cg is not in $unit"; rc=1 ;;
	esac
	want "memory.max" "$(cat "$cg/memory.max" 2>&1)" 67108864 || rc=1
	want "pids.max" "$(cat "$cg/pids.max" 2>&1)" 10 || rc=1
	out=$(t "$RT" --systemd-cgroup exec "$id" /bin/husk-probe fork 30)
	fewer "$out" 10 || rc=1
	t "$RT" --systemd-cgroup kill "$id" KILL || rc=1
	stopped "$id" --systemd-cgroup || rc=1
	t "$RT" --systemd-cgroup delete "$id" || rc=1
	wait_for 10 test ! -e "/sys/fs/cgroup/system.slice/$unit" || rc=1
	want "$unit after delete" "$(systemctl show -p ActiveState "$unit")" ActiveState=inactive || rc=1
	gone "$id" --systemd-cgroup
	return $rc
}

c_systemd_description() {
	local id=vl-$RTN-desc rc=0 desc
	sleeper "$id" ".linux.cgroupsPath = \"system.slice:vmlane:$id\"" --systemd-cgroup || return 1
	desc=$(systemctl show -p Description "vmlane-$id.scope")
	echo "$desc"
	want_lacks "scope description" "$desc" youki || rc=1
	gone "$id" --systemd-cgroup
	return $rc
}

# --- rootless ------------------------------------------------------------------------------------

# In a login session (session-N.scope, not delegated): no limits asked, the container just works.
c_rootless_login_lifecycle() {
	local id=vl-$RTN-rl
	user_bundle "$UHOME/b/$id" "$(with_args /bin/husk-probe sleep 600)"
	as_user login "$RT" "$UHOME/b/$id" "$id" <<'EOF'
rt=$1 b=$2 id=$3 rc=0
$rt delete -f $id >/dev/null 2>&1
$rt create --bundle $b $id </dev/null >/dev/null 2>$b/err || { cat $b/err; exit 1; }
st=$($rt state $id | jq -r .status); [ "$st" = created ] || { echo "after create: $st"; rc=1; }
$rt start $id || rc=1
st=$($rt state $id | jq -r .status); [ "$st" = running ] || { echo "after start: $st"; rc=1; }
out=$($rt exec $id /bin/husk-probe echo hi); [ "$out" = hi ] || { echo "exec: $out"; rc=1; }
$rt kill $id KILL || rc=1
for i in $(seq 50); do [ "$($rt state $id | jq -r .status)" = stopped ] && break; sleep 0.2; done
$rt delete $id || rc=1
$rt state $id >/dev/null 2>&1 && { echo "state works after delete"; rc=1; }
$rt delete -f $id >/dev/null 2>&1
exit $rc
EOF
}

# user_run MODE ID FLAGS JQ-FILTER: `RUNTIME FLAGS run` of a user bundle as `user`; prints the
# output, returns the run's status.
user_run() {
	local mode=$1 id=$2 flags=$3
	user_bundle "$UHOME/b/$id" "$4"
	as_user "$mode" "$RT" "$UHOME/b/$id" "$id" "$flags" <<'EOF'
rt=$1 b=$2 id=$3 flags=$4
$rt $flags delete -f $id >/dev/null 2>&1
$rt $flags run --bundle $b $id </dev/null
rc=$?
$rt $flags delete -f $id >/dev/null 2>&1
exit $rc
EOF
}

# In the delegated subtree with the systemd driver: the user's systemd makes the scope and the
# limits bite.
c_rootless_systemd_pids() {
	local id=vl-$RTN-rpids out
	out=$(user_run scope "$id" --systemd-cgroup "$(with_args /bin/husk-probe fork 30)
		| .linux.cgroupsPath = \"user.slice:vmlane:$id\" | .linux.resources.pids = {\"limit\": 10}" 2>&1)
	echo "$out"
	fewer "$out" 10
}

c_rootless_systemd_memory() {
	local id=vl-$RTN-rmem out rc
	out=$(user_run scope "$id" --systemd-cgroup "$(with_args /bin/husk-probe alloc 256)
		| .linux.cgroupsPath = \"user.slice:vmlane:$id\" | .linux.resources.memory = {\"limit\": 33554432}" 2>&1)
	rc=$?
	echo "$out"
	want "exit status (SIGKILL by the OOM killer)" "$rc" 137 && want_lacks "output" "$out" allocated_mb
}

# The same limit with no --systemd-cgroup and no cgroupsPath, from inside the delegated scope:
# the runtime must find the delegated place itself (issue 11 item 2, the OCI face).
c_rootless_default_pids() {
	local id=vl-$RTN-rdef out
	out=$(user_run scope "$id" "" "$(with_args /bin/husk-probe fork 30) | .linux.resources.pids = {\"limit\": 10}" 2>&1)
	echo "$out"
	fewer "$out" 10
}

# A rootless container's /sys/fs/cgroup is its own cgroup (it can read its own limits), not the
# host's tree: with the lane's config plus a cgroup namespace (as runc's and crun's rootless specs
# have), and with the config the runtime's own `spec --rootless` writes (issue 11 item 5).
VIEW_SCRIPT='echo "pids.max: $(cat /sys/fs/cgroup/pids.max)"
echo "units: $(ls /sys/fs/cgroup | grep -E "[.](slice|scope)$" | tr "\n" " ")"'

# own_view OUTPUT: the view script's output shows the container's own cgroup.
own_view() {
	echo "$1"
	grep -qx 'pids.max: 10' <<<"$1" || { echo "the container does not read its pids.max (10)"; return 1; }
	grep -qx 'units: ' <<<"$1" || { echo "the container sees the host's slices and scopes"; return 1; }
}

c_rootless_cgroup_view() {
	local id=vl-$RTN-rview
	own_view "$(user_run scope "$id" --systemd-cgroup "$(with_args sh -c "$VIEW_SCRIPT")
		| .linux.namespaces += [{\"type\": \"cgroup\"}]
		| .linux.cgroupsPath = \"user.slice:vmlane:$id\" | .linux.resources.pids = {\"limit\": 10}" 2>&1)"
}

c_rootless_spec_cgroup_view() {
	local id=vl-$RTN-rspec b=$UHOME/b/vl-$RTN-rspec
	user_bundle "$b"
	rm "$b/config.json"
	as_user login "$RT" "$b" <<<'cd "$2" && "$1" spec --rootless' || return 1
	jq "$(with_args sh -c "$VIEW_SCRIPT") | .process.terminal = false
		| .linux.cgroupsPath = \"user.slice:vmlane:$id\" | .linux.resources.pids = {\"limit\": 10}" \
		"$b/config.json" >"$b/config.edited" && mv "$b/config.edited" "$b/config.json" && chown user: "$b/config.json"
	own_view "$(as_user scope "$RT" "$b" "$id" <<<'"$1" --systemd-cgroup run --bundle "$2" "$3" </dev/null; "$1" --systemd-cgroup delete -f "$3" 2>/dev/null' 2>&1)"
}

c_rootless_systemd_pause() {
	local id=vl-$RTN-rpause
	user_bundle "$UHOME/b/$id" "$(with_args /bin/husk-probe sleep 600) | .linux.cgroupsPath = \"user.slice:vmlane:$id\""
	as_user scope "$RT" "$UHOME/b/$id" "$id" <<'EOF'
rt="$1 --systemd-cgroup" b=$2 id=$3 rc=0
$rt delete -f $id >/dev/null 2>&1
$rt create --bundle $b $id </dev/null >/dev/null 2>$b/err || { cat $b/err; exit 1; }
$rt start $id || rc=1
$rt pause $id || rc=1
st=$($rt state $id | jq -r .status); [ "$st" = paused ] || { echo "after pause: $st"; rc=1; }
$rt resume $id || rc=1
st=$($rt state $id | jq -r .status); [ "$st" = running ] || { echo "after resume: $st"; rc=1; }
out=$($rt exec $id /bin/husk-probe echo hi); [ "$out" = hi ] || { echo "exec after resume: $out"; rc=1; }
$rt delete -f $id || rc=1
exit $rc
EOF
}

oci_cases() {
	run_case "$RTN" lifecycle c_lifecycle
	run_case "$RTN" exec c_exec
	run_case "$RTN" memory-oom c_memory_oom
	run_case "$RTN" pids-limit c_pids_limit
	run_case "$RTN" cpu-limit c_cpu_limit
	run_case "$RTN" update c_update
	run_case "$RTN" events-stats c_events_stats
	run_case "$RTN" pause-resume c_pause_resume
	run_case "$RTN" devices-mknod c_devices_mknod
	run_case "$RTN" devices-systemd c_devices_systemd
	run_case "$RTN" devices-update c_devices_update
	run_case "$RTN" systemd-scope c_systemd_scope
	run_case "$RTN" systemd-description c_systemd_description
	run_case "$RTN" rootless-login-lifecycle c_rootless_login_lifecycle
	run_case "$RTN" rootless-systemd-pids c_rootless_systemd_pids
	run_case "$RTN" rootless-systemd-memory c_rootless_systemd_memory
	run_case "$RTN" rootless-default-pids c_rootless_default_pids
	run_case "$RTN" rootless-cgroup-view c_rootless_cgroup_view
	run_case "$RTN" rootless-spec-cgroup-view c_rootless_spec_cgroup_view
	run_case "$RTN" rootless-systemd-pause c_rootless_systemd_pause
}
