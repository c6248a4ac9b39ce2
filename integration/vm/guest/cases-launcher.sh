# shellcheck shell=bash
# Launcher cases, husk only (`husk exec IMAGE`, --sandbox, batch, instance), reported apart from
# the OCI cases. The image is the lane's rootfs directory. Rootless cases run as `user` inside a
# scope of the user's systemd (the delegated subtree), where the limits must apply.

HUSK=/usr/local/bin/husk

# Runs first, on the fresh boot: a root sandbox with no --workspace (issue 11 item 6: the launch
# directory was made 0700 and then refused as not searchable by the sandbox's host id).
l_sandbox_root_fresh() {
	local out
	[ -e /run/husk-launch ] && echo "note: /run/husk-launch exists before the first launch"
	out=$(t "$HUSK" exec --sandbox "$ROOTFS" /bin/husk-probe echo sandboxed 2>&1)
	echo "$out"
	want "output" "$out" sandboxed
}

l_root_limits() {
	local out rc=0
	out=$(t "$HUSK" exec --memory 64M --pids-limit 20 "$ROOTFS" /bin/husk-probe fork 40 2>&1)
	echo "$out"
	fewer "$out" 20 || rc=1
	out=$(t "$HUSK" exec --memory 64M --pids-limit 20 "$ROOTFS" /bin/husk-probe alloc 256 2>&1)
	want "alloc 256M under --memory 64M: exit status" "$?" 137 || rc=1
	return $rc
}

# The user's limits inside the delegated scope: they bite, and the container's cgroup says so.
l_rootless_limits() {
	as_user scope "$HUSK" "$ROOTFS" <<'EOF'
husk=$1 img=$2 rc=0
out=$($husk exec --memory 64M --pids-limit 20 $img sh -c 'cat /sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/memory.max; /bin/husk-probe fork 40' 2>&1)
echo "$out"
[ "$(echo "$out" | head -n 1)" = 67108864 ] || { echo "memory.max of the container's cgroup is not 64M"; rc=1; }
started=$(echo "$out" | grep '"started"' | jq -r .started)
[ -n "$started" ] && [ "$started" -lt 20 ] || { echo "started ${started:-?} children under --pids-limit 20"; rc=1; }
$husk exec --memory 64M $img /bin/husk-probe alloc 256
st=$?; [ $st = 137 ] || { echo "alloc 256M under --memory 64M: exit status $st, want 137"; rc=1; }
exit $rc
EOF
}

# The launcher's container sees its own cgroup at /sys/fs/cgroup, not the host's tree (issue 11
# item 5), in the delegated scope with a limit.
l_rootless_cgroup_view() {
	as_user scope "$HUSK" "$ROOTFS" <<'EOF'
$1 exec --memory 64M $2 sh -c 'echo "units: $(ls /sys/fs/cgroup | grep -E "[.](slice|scope)$" | tr "\n" " ")"' >out.$$ 2>&1
cat out.$$
grep -qx 'units: ' out.$$; rc=$?
rm -f out.$$
[ $rc = 0 ] || echo "the container sees the host's slices and scopes"
exit $rc
EOF
}

# The sandbox's record when the OOM killer strikes under the systemd driver (issue 11 item 4):
# every run says oom_killed and takes its peak from the cgroup (run by bash: $1 husk, $2 image).
oom_record_body() {
	cat <<'EOF'
husk=$1 img=$2 rc=0
for i in 1 2 3; do
	out=$($husk --systemd-cgroup exec --sandbox --memory 64M --json $img /bin/husk-probe alloc 256 2>/dev/null)
	echo "$out" | jq -c '{exit_code, oom_killed, peak_memory_bytes, peak_memory_source}' 2>/dev/null || echo "$out"
	echo "$out" | jq -e '.oom_killed == true and .peak_memory_source == "cgroup"' >/dev/null 2>&1 || rc=1
done
exit $rc
EOF
}

l_sandbox_oom_systemd() { oom_record_body | t bash -s "$HUSK" "$ROOTFS"; }
l_sandbox_oom_systemd_rootless() { oom_record_body | as_user scope "$HUSK" "$ROOTFS"; }

l_sandbox_rootless() {
	as_user scope "$HUSK" "$ROOTFS" <<'EOF'
out=$($1 exec --sandbox --memory 64M --pids-limit 20 --json $2 /bin/husk-probe fork 40)
echo "$out" | jq -c '{exit_code, stdout, limits: .limits.not_applied, mem: .limits.memory_bytes.enforced_by}'
echo "$out" | jq -e '.limits.memory_bytes.enforced_by == "cgroup memory" and (.limits.not_applied | length == 0)' >/dev/null || exit 1
started=$(echo "$out" | jq -r .stdout | jq -r .started)
[ -n "$started" ] && [ "$started" -lt 20 ] || { echo "started ${started:-?} children under --pids-limit 20"; exit 1; }
EOF
}

# batch_body: the jobs and the checks, shared by root and rootless (run by bash: $1 husk, $2
# image, $3 extra global flags). Three OOM jobs: each must be reported as oom (issue 11 item 4).
batch_body() {
	cat <<'EOF'
husk=$1 img=$2 flags=$3 dir=$(mktemp -d)
cat >$dir/jobs <<'JOBS'
{"id": "ok", "command": ["/bin/husk-probe", "echo", "hi"]}
{"id": "oom1", "command": ["/bin/husk-probe", "alloc", "256"], "limits": {"memory": "64M"}}
{"id": "oom2", "command": ["/bin/husk-probe", "alloc", "256"], "limits": {"memory": "64M"}}
{"id": "oom3", "command": ["/bin/husk-probe", "alloc", "256"], "limits": {"memory": "64M"}}
{"id": "pids", "command": ["/bin/husk-probe", "fork", "40"], "limits": {"pids": 20}}
JOBS
$husk $flags batch --image $img -j 2 -o $dir/out $dir/jobs
jq -c '{id, status, oom_killed, peak_memory_source, stdout}' $dir/out
rc=0
[ "$(jq -r 'select(.id == "ok") | .status' $dir/out)" = passed ] || rc=1
for j in oom1 oom2 oom3; do
	[ "$(jq -r "select(.id == \"$j\") | .status" $dir/out)" = oom ] || { echo "$j not reported as oom"; rc=1; }
done
started=$(jq -r 'select(.id == "pids") | .stdout' $dir/out | grep '"started"' | jq -r .started)
[ -n "$started" ] && [ "$started" -lt 20 ] || { echo "pids job started ${started:-?} children under pids 20"; rc=1; }
rm -rf $dir
exit $rc
EOF
}

l_batch_root() { batch_body | t bash -s "$HUSK" "$ROOTFS" ""; }
l_batch_systemd() { batch_body | t bash -s "$HUSK" "$ROOTFS" --systemd-cgroup; }
l_batch_rootless() { batch_body | as_user scope "$HUSK" "$ROOTFS" ""; }

# instance_body: an instance with limits; its cgroup carries them (run by bash: $1 husk, $2 image,
# $3 name).
instance_body() {
	cat <<'EOF'
husk=$1 img=$2 name=$3 rc=0
$husk instance stop $name >/dev/null 2>&1
$husk instance start --memory 64M --pids-limit 20 $img $name /bin/husk-probe sleep 600 || exit 1
pid=$($husk state inst-$name | jq -r .pid)
cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/$pid/cgroup)
echo "cgroup: $cg"
[ "$(cat $cg/memory.max)" = 67108864 ] || { echo "memory.max: $(cat $cg/memory.max)"; rc=1; }
[ "$(cat $cg/pids.max)" = 20 ] || { echo "pids.max: $(cat $cg/pids.max)"; rc=1; }
$husk instance stop $name || rc=1
exit $rc
EOF
}

l_instance_root() { instance_body | t bash -s "$HUSK" "$ROOTFS" vlroot; }
l_instance_rootless() { instance_body | as_user scope "$HUSK" "$ROOTFS" vluser; }

launcher_cases() {
	run_case husk launch-sandbox-root-fresh l_sandbox_root_fresh
	run_case husk launch-root-limits l_root_limits
	run_case husk launch-rootless-limits l_rootless_limits
	run_case husk launch-rootless-cgroup-view l_rootless_cgroup_view
	run_case husk launch-sandbox-oom-systemd l_sandbox_oom_systemd
	run_case husk launch-sandbox-oom-systemd-rootless l_sandbox_oom_systemd_rootless
	run_case husk launch-sandbox-rootless l_sandbox_rootless
	run_case husk launch-batch-root l_batch_root
	run_case husk launch-batch-systemd l_batch_systemd
	run_case husk launch-batch-rootless l_batch_rootless
	run_case husk launch-instance-root l_instance_root
	run_case husk launch-instance-rootless l_instance_rootless
}
