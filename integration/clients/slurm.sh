#!/bin/bash
# Slurm 22.05 driving the runtime on a one-node cluster started here by hand (no systemd): munged
# with a private key and socket, slurmctld and slurmd as root, all config, spool, state and logs
# under $WORK/slurm, everything stopped on exit. Called by run.sh (see podman.sh for the env).
#
# Two ways HPC sites use a container runtime, both as $TUSER (jobs run as the submitting user):
#   - `srun --container=BUNDLE` (and `sbatch --container`): Slurm's OCI support calls the runtime
#     through the patterns of an oci.conf next to slurm.conf (the RunTimeRun form Slurm suggests
#     for runc, through the argv-logging wrapper), and passes the step's output and exit status
#     back. SLURM_OCI=create-start uses the RunTimeCreate/RunTimeStart form instead: with 22.05
#     its steps hang (for runc too: Slurm reads create's output to end of file, and the created
#     container holds that pipe open until the start Slurm never sends), so it is not the default.
#   - `sbatch` of a job script that calls `husk exec ROOTFS CMD` itself (the launcher face; husk
#     only).
# The cluster uses no cgroup plugin (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, no
# accounting), so it needs neither systemd nor a delegated cgroup tree.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

tag=slurm
d=$WORK/slurm
node=$(hostname -s)
conf=$d/etc/slurm.conf
msock=$d/munge/munge.sock
pids=()
uid=$(id -u "$TUSER")

cleanup() {
	# Steps still running (a failed case) are cancelled first, so slurmd can reap them.
	[ -f "$conf" ] && SLURM_CONF=$conf timeout 10 scancel --full --user "$TUSER" >/dev/null 2>&1
	local p u c f
	# Containers a failed step left behind, removed by their owner with the runtime's own state.
	for u in root "$TUSER"; do
		for c in $(runuser -u "$u" -- "$RUNTIME" --root="$d/oci-state/$u" list -q 2>/dev/null); do
			runuser -u "$u" -- timeout 10 "$RUNTIME" --root="$d/oci-state/$u" delete --force "$c" \
				>/dev/null 2>&1
		done
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		wait_for 10 dead "$p" >/dev/null || kill -9 "$p" 2>/dev/null
	done
	# A step that never ended (SLURM_OCI=create-start) outlives slurmd: its slurmstepd still
	# holds this cluster's slurmd.log open, which tells it from other clusters' steps.
	for p in $(pgrep -x slurmstepd); do
		for f in "/proc/$p/fd/"*; do
			case $(readlink "$f" 2>/dev/null) in "$d/log/"*)
				kill -9 "$p" 2>/dev/null
				break
				;;
			esac
		done
	done
	umount_under "$d"
	rm -rf "${d:?}/bundle" "${d:?}/bundle-root" "${d:?}/rootfs"
	return 0
}
dead() { ! kill -0 "$1" 2>/dev/null; }
trap cleanup EXIT

for b in munged slurmctld slurmd srun sbatch scontrol; do
	command -v "$b" >/dev/null || {
		fail "$tag: $b installed (apt-get install slurm-wlm munge)"
		exit 1
	}
done

# Everything below $d is reachable by $TUSER: srun reads slurm.conf and the munge socket, slurmd
# hands the step's rewritten bundle (in its spool dir) to the runtime as the user.
mkdir -p "$d"/{etc,spool,state,log,munge,jobs,oci-state/root,oci-state/"$TUSER"}
chmod 755 "$d" "$d"/{etc,spool,state,log,munge,oci-state}
chown "$TUSER:" "$d/jobs" "$d/oci-state/$TUSER"
chmod 700 "$d/oci-state/$TUSER" "$d/oci-state/root"

# The bundle Slurm rewrites per step: the busybox rootfs and the runtime's own rootless config,
# written by $TUSER (Slurm 22.05 keeps the bundle's uidMappings/gidMappings, and a rootless config
# maps container root to the uid that wrote it: one written by root fails newuidmap for $TUSER).
mkdir -p "$d/bundle"
chown "$TUSER:" "$d/bundle"
if ! out=$(PROBE=/nonexistent "$top/bundles/busybox/make-rootfs" "$d/bundle/rootfs" 2>&1 &&
	cd "$d" && runuser -u "$TUSER" -- "$RUNTIME" spec --rootless --bundle "$d/bundle" 2>&1); then
	fail "$tag: build bundle" "$out"
	exit 1
fi
echo in-bundle >"$d/bundle/rootfs/husk-marker"
cp -a "$d/bundle/rootfs" "$d/rootfs"
# root's srun gets its own bundle: the same rootfs, a rootless config written by root (0 -> 0)
mkdir -p "$d/bundle-root"
# a copy, not a symlink: runc refuses a rootfs path that is a symlink ("invalid rootfs: not an
# absolute path, or a symlink")
cp -a "$d/bundle/rootfs" "$d/bundle-root/rootfs"
if ! out=$(cd "$d" && "$RUNTIME" spec --rootless --bundle "$d/bundle-root" 2>&1); then
	fail "$tag: build root's bundle" "$out"
	exit 1
fi
chmod -R a+rX "$d/bundle" "$d/bundle-root" "$d/rootfs"

# munged as root (--force) with its own key, socket, pid, seed and log files.
dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
chmod 600 "$d/munge/munge.key"
munged --force --key-file="$d/munge/munge.key" --socket="$msock" \
	--pid-file="$d/munge/munged.pid" --seed-file="$d/munge/seed" \
	--log-file="$d/log/munged.log" >"$d/log/munged.out" 2>&1
if ! wait_for 10 test -s "$d/munge/munged.pid"; then
	fail "$tag: start munged" "$(cat "$d/log/munged.out" "$d/log/munged.log" 2>&1)"
	exit 1
fi
pids+=("$(cat "$d/munge/munged.pid")")

cat >"$conf" <<EOF
ClusterName=husk
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$msock
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmdDebug=debug
# No cgroup plugin: this VM has no systemd and no delegated cgroup tree for slurmd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

# Slurm's documented create/start patterns for runc, with the runtime (through the wrapper) and a
# state root per user: oci.conf patterns in 22.05 know %u (user name) but not %U (uid).
rt="$WRAPPER --rootless=true --root=$d/oci-state/%u"
cid=%n.%u.%j.%s.%t
{
	echo "RunTimeQuery=\"$rt state $cid\""
	echo "RunTimeKill=\"$rt kill -a $cid\""
	echo "RunTimeDelete=\"$rt delete --force $cid\""
	if [ "${SLURM_OCI:-run}" = run ]; then
		echo "RunTimeRun=\"$rt run $cid -b %b\""
	else
		echo "RunTimeCreate=\"$rt create $cid -b %b\""
		echo "RunTimeStart=\"$rt start $cid\""
	fi
} >"$d/etc/oci.conf"
chmod 644 "$conf" "$d/etc/oci.conf"
export SLURM_CONF=$conf

slurmctld -D -i -f "$conf" >"$d/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$conf" >"$d/log/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { scontrol show node "$node" 2>/dev/null | grep -q 'State=IDLE'; }
if ! wait_for 30 node_idle; then
	fail "$tag: start slurmctld, slurmd" "$(scontrol show node "$node" 2>&1
		tail -n 5 "$d/log/slurmctld.log" "$d/log/slurmd.log" "$d/log/"*.out 2>&1)"
	exit 1
fi

# as_user CMD...: run a Slurm client command as $TUSER, from a directory it may read.
as_user() { (cd "$d/jobs" && tmo runuser -u "$TUSER" -- env SLURM_CONF="$conf" "$@"); }

t_srun_container() {
	local out rc
	out=$(as_user srun --container="$d/bundle" sh -c 'echo out-$((6*7)); id -u' 2>"$d/err")
	rc=$?
	expect_eq "exit code" "$rc" 0 || { cat "$d/err"; return 1; }
	# stdout only: a rootless runtime may warn on stderr (husk: no delegated cgroup)
	expect_eq "output" "$out" "out-42
0" || { cat "$d/err"; return 1; }
}

t_srun_container_exit() {
	local out rc
	out=$(as_user srun --container="$d/bundle" sh -c 'echo err >&2; exit 3' 2>&1)
	rc=$?
	expect_eq "exit code" "$rc" 3 || { echo "$out"; return 1; }
	expect_has "stderr" "$out" err
}

# The container runs in the job's environment (Slurm puts SLURM_* in the step's process.env) and
# on the bundle's rootfs (a marker file the host lacks).
t_srun_container_env() {
	local out
	out=$(as_user srun --container="$d/bundle" sh -c 'echo job=$SLURM_JOB_ID; cat /husk-marker' \
		2>&1)
	echo "$out" | grep -qx 'job=[0-9][0-9]*' || { echo "no SLURM_JOB_ID: $out"; return 1; }
	expect_has "rootfs is the bundle's" "$out" in-bundle
}

# The container's process starts with no blocked signals and SIGPIPE at its default, as runc
# leaves it: a mask inherited from the runtime's signal forwarding would keep SIGTERM (scancel,
# time limits) pending forever, and only Slurm's SIGKILL would end the step.
t_srun_container_signals() {
	local out
	out=$(as_user srun --container="$d/bundle" grep -E '^Sig(Blk|Ign):' /proc/self/status \
		2>"$d/err")
	out=$(echo "$out" | tr -s '\t ' ' ')
	expect_eq "signal mask and ignored signals" "$out" "SigBlk: 0000000000000000
SigIgn: 0000000000000000" || { cat "$d/err"; return 1; }
}

# scancel of a running container step: proctrack's SIGTERM reaches the container's init (it has
# a handler: an init without one, like a bare `sleep`, ignores SIGTERM in its pid namespace, and
# the step then waits for Slurm's kill timeout and RunTimeKill/RunTimeDelete), and the container
# is gone afterwards.
t_srun_container_cancel() {
	local out spid cpid
	as_user srun --container="$d/bundle" --job-name=cancel-me \
		sh -c 'trap "exit 143" TERM; sleep 300 & wait' >"$d/cancel.out" 2>&1 &
	spid=$!
	running() { runuser -u "$TUSER" -- "$RUNTIME" --root="$d/oci-state/$TUSER" list 2>/dev/null |
		grep -q running; }
	wait_for 30 running || { cat "$d/cancel.out"; kill "$spid"; return 1; }
	# the container's init, by pid: other users' sleeps may run on this machine too
	cpid=$(runuser -u "$TUSER" -- "$RUNTIME" --root="$d/oci-state/$TUSER" list -f json |
		jq -r '.[0].pid')
	case $cpid in '' | null | 0)
		echo "no pid for the running container"
		kill "$spid"
		return 1
		;;
	esac
	as_user scancel --name=cancel-me || { kill "$spid"; return 1; }
	wait_for 40 dead "$spid" || { kill "$spid"; return 1; }
	wait "$spid"
	gone() { [ -z "$(runuser -u "$TUSER" -- "$RUNTIME" --root="$d/oci-state/$TUSER" list -q)" ]; }
	wait_for 90 gone || {
		runuser -u "$TUSER" -- "$RUNTIME" --root="$d/oci-state/$TUSER" list
		return 1
	}
	dead "$cpid" || { echo "container init $cpid still running"; return 1; }
}

# Slurm's containers are documented as rootless only; root's srun runs the same patterns as root.
t_srun_container_root() {
	local out rc
	out=$(cd "$d" && tmo srun --container="$d/bundle-root" sh -c 'echo root-$(id -u); exit 4' \
		2>"$d/err")
	rc=$?
	expect_eq "exit code" "$rc" 4 || { cat "$d/err"; return 1; }
	expect_eq "output" "$out" root-0 || { cat "$d/err"; return 1; }
}

# job_field ID FIELD: a field of `scontrol show job` (no accounting here, so no sacct)
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
job_done() {
	case $(job_field "$1" JobState) in COMPLETED | FAILED | CANCELLED | TIMEOUT) return 0 ;; esac
	return 1
}

# submit SBATCH-ARGS...: sbatch as $TUSER and wait for the job to end; prints the job id.
submit() {
	local out id
	out=$(as_user sbatch --parsable --output="$d/jobs/%j.out" "$@" 2>&1) || {
		echo "sbatch: $out"
		return 1
	}
	id=${out%%;*}
	wait_for 60 job_done "$id" >&2 || { scontrol show job "$id" >&2; return 1; }
	echo "$id"
}

t_sbatch_launcher() {
	local id out
	cat >"$d/jobs/launcher.sh" <<EOF
#!/bin/sh
echo host-\$(id -un)
$RUNTIME exec $d/rootfs \\
	sh -c 'echo in-\$(cat /proc/self/uid_map | wc -l) \$(id -u); cat /husk-marker; exit 5'
EOF
	chmod 755 "$d/jobs/launcher.sh"
	id=$(submit "$d/jobs/launcher.sh") || return 1
	out=$(cat "$d/jobs/$id.out" 2>&1)
	expect_eq "job output" "$out" "host-$TUSER
in-1 $uid
in-bundle" || return 1
	expect_eq "ExitCode" "$(job_field "$id" ExitCode)" 5:0
}

# The batch step itself in the container: sbatch --container runs the script through oci.conf.
t_sbatch_container() {
	local id out
	id=$(submit --container="$d/bundle" --wrap 'echo batch-$(id -u); cat /husk-marker; exit 6') ||
		return 1
	out=$(cat "$d/jobs/$id.out" 2>&1)
	expect_has "job output" "$out" "batch-0
in-bundle" || return 1
	expect_eq "ExitCode" "$(job_field "$id" ExitCode)" 6:0
}

form=RunTimeRun
[ "${SLURM_OCI:-run}" = run ] || form=RunTimeCreate/RunTimeStart
check "$tag: srun --container (oci.conf $form), output" t_srun_container
check "$tag: srun --container, exit code passthrough" t_srun_container_exit
check "$tag: srun --container, job env and rootfs" t_srun_container_env
check "$tag: srun --container as root, output and exit code" t_srun_container_root
check "$tag: srun --container, no blocked or ignored signals in the container" \
	t_srun_container_signals
check "$tag: scancel of a running srun --container step" t_srun_container_cancel
check "$tag: sbatch --container, output and ExitCode" t_sbatch_container
[ "$RT_NAME" = husk ] &&
	check "$tag: sbatch job calling husk exec ROOTFS, output and ExitCode" t_sbatch_launcher
exit 0
