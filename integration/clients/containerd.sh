#!/bin/bash
# containerd 1.6 + ctr driving the runtime through the io.containerd.runc.v2 shim
# (`ctr run --runc-binary RUNTIME`). containerd runs with its own config, root, state and sockets
# under $WORK/containerd and is stopped on exit. Called by run.sh (see podman.sh for the env).
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

tag=containerd
d=$WORK/containerd
mkdir -p "$d"
img=docker.io/$IMAGE_REF
ns=husk-clients
sock=$d/containerd.sock
cpid=""

cat >"$d/config.toml" <<EOF
version = 2
root = "$d/data"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
EOF

c() { tmo ctr --address "$sock" --namespace "$ns" "$@"; }

cleanup() {
	if [ -n "$cpid" ]; then
		for t in $(c task ls -q 2>/dev/null); do
			c task kill -s SIGKILL "$t" >/dev/null 2>&1
		done
		for t in $(c task ls -q 2>/dev/null); do
			wait_for 5 task_gone "$t" >/dev/null
			c task delete --force "$t" >/dev/null 2>&1
		done
		for t in $(c container ls -q 2>/dev/null); do c container delete "$t" >/dev/null 2>&1; done
		kill "$cpid" 2>/dev/null
		wait "$cpid" 2>/dev/null
	fi
	umount_under "$d"
	for h in /sys/fs/cgroup/*/; do rmdir "$h$ns" 2>/dev/null; done
	return 0
}
trap cleanup EXIT

# task_status ID: RUNNING, PAUSED, STOPPED, ... as `ctr task ls` shows it
task_status() { c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
task_pid() { c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $2 }'; }
task_gone() { [ "$(task_status "$1")" != RUNNING ]; }
is_status() { [ "$(task_status "$1")" = "$2" ]; }

if ! command -v containerd >/dev/null; then
	fail "$tag: containerd installed"
	exit 1
fi
containerd --config "$d/config.toml" >"$d/containerd.log" 2>&1 &
cpid=$!
if ! wait_for 20 c version; then
	fail "$tag: start containerd" "$(tail -n 20 "$d/containerd.log")"
	exit 1
fi
if ! out=$(c images import "$IMAGE_ARCHIVE" 2>&1); then
	fail "$tag: import image" "$out"
	exit 1
fi

t_run() {
	local out rc
	out=$(c run --rm --runc-binary "$WRAPPER" "$img" r1 sh -c 'echo out-$((6*7)); exit 7' 2>&1)
	rc=$?
	expect_eq "exit code" "$rc" 7 || { echo "$out"; return 1; }
	expect_eq "output" "$out" out-42 || return 1
	out=$(c container ls -q 2>&1)
	expect_lacks "containers after --rm" "$out" r1
}

t_run_detached() {
	local out
	out=$(c run -d --runc-binary "$WRAPPER" "$img" c1 sleep 600 2>&1) || {
		echo "$out"
		return 1
	}
	wait_for 10 is_status c1 RUNNING || { c task ls; return 1; }
	# The pid ctr reports is the container's init on the host.
	out=$(tr '\0' ' ' <"/proc/$(task_pid c1)/cmdline" 2>&1)
	expect_eq "init cmdline" "$out" "sleep 600 "
}

t_exec() {
	local out rc
	out=$(c task exec --exec-id e1 c1 sh -c 'echo exec-$((1+1))' 2>&1)
	expect_eq "exec output" "$out" exec-2 || return 1
	c task exec --exec-id e2 c1 sh -c 'exit 3' >/dev/null 2>&1
	rc=$?
	expect_eq "exec exit code" "$rc" 3
}

# ctr -t wants its own stdin to be a terminal: give it one with script(1).
t_tty() {
	local out
	out=$(tmo script -qec "ctr --address $sock --namespace $ns task exec -t --exec-id e3 c1 tty" \
		/dev/null 2>&1 </dev/null)
	out=$(echo "$out" | tr -d '\r')
	expect_has "exec -t: tty" "$out" /dev/pts/ || return 1
	out=$(tmo script -qec "ctr --address $sock --namespace $ns run -t --rm --runc-binary $WRAPPER \
		$img t1 sh -c '[ -t 0 ] && [ -t 1 ] && echo is-a-tty'" /dev/null 2>&1 </dev/null)
	expect_has "run -t: stdin and stdout are a tty" "$out" is-a-tty
}

t_ps() {
	local out pids n
	out=$(c task exec -d --exec-id e4 c1 sleep 500 2>&1) || {
		echo "$out"
		return 1
	}
	# ps lists the init and the exec'd process, once the latter has exec'd sleep
	ps_ok() {
		local n
		pids=$(c task ps c1 2>/dev/null | tail -n +2 | awk '{ print $1 }')
		[ "$(echo "$pids" | wc -w)" = 2 ] || return 1
		case $pids in *"$(task_pid c1)"*) ;; *) return 1 ;; esac
		for n in $pids; do
			case $(tr '\0' ' ' <"/proc/$n/cmdline") in "sleep 600 " | "sleep 500 ") ;; *) return 1 ;; esac
		done
	}
	wait_for 10 ps_ok || {
		c task ps c1
		for n in $pids; do echo "$n: $(tr '\0' ' ' <"/proc/$n/cmdline")"; done
		return 1
	}
}

# freezer state of the container's cgroup, as the host sees it
frozen() {
	local f
	f=$(cgroup_file "$(task_pid c1)" freezer freezer.state)
	if [ -e "$f" ]; then cat "$f"; else cat "$(cgroup_file "$(task_pid c1)" freezer cgroup.freeze)"; fi
}

t_pause_resume() {
	local out
	out=$(c task pause c1 2>&1) || { echo "$out"; return 1; }
	expect_eq "status after pause" "$(task_status c1)" PAUSED || return 1
	out=$(frozen)
	case $out in FROZEN | 1) ;; *) echo "freezer after pause: $out"; return 1 ;; esac
	out=$(c task resume c1 2>&1) || { echo "$out"; return 1; }
	expect_eq "status after resume" "$(task_status c1)" RUNNING || return 1
	out=$(frozen)
	case $out in THAWED | 0) ;; *) echo "freezer after resume: $out"; return 1 ;; esac
	out=$(c task exec --exec-id e5 c1 echo alive 2>&1)
	expect_eq "exec after resume" "$out" alive
}

t_kill() {
	local out
	out=$(c task kill -s SIGKILL c1 2>&1) || { echo "$out"; return 1; }
	wait_for 10 is_status c1 STOPPED || { c task ls; return 1; }
}

t_delete() {
	local out root
	out=$(c task delete c1 2>&1) || { echo "$out"; return 1; }
	expect_lacks "tasks after delete" "$(c task ls -q 2>&1)" c1 || return 1
	out=$(c container delete c1 2>&1) || { echo "$out"; return 1; }
	expect_lacks "containers after delete" "$(c container ls -q 2>&1)" c1 || return 1
	# and the runtime's own state is gone (the shim passes its state dir as --root)
	root=$(grep -o -- "--root [^ ]*" "$WORK/argv.log" | grep "/$ns\$" | tail -n 1 | cut -d' ' -f2)
	[ -n "$root" ] || { echo "no --root $ns in the runtime's argv"; return 1; }
	if "$RUNTIME" --root "$root" state c1 >/dev/null 2>&1; then
		echo "runtime still has state for c1 under $root"
		return 1
	fi
}

# A create that fails in the runtime: the runtime's last JSON error record (--log FILE
# --log-format json) is what containerd shows the user. t_failed_create ID COMMAND
t_failed_create() {
	local id=$1 cmd=$2 out rc msg
	out=$(c run --rm --runc-binary "$WRAPPER" "$img" "$id" "$cmd" 2>&1)
	rc=$?
	c container delete "$id" >/dev/null 2>&1
	[ "$rc" != 0 ] || { echo "ctr run of a nonexistent command succeeded: $out"; return 1; }
	msg=$(ID=$id awk '/-> exit / { f = ($0 ~ (" (create|start) (.* )?" ENVIRON["ID"] "\\)$")); next }
		f && /^  log: / && /"level":"error"/ { l = substr($0, 8) }
		!/^  log: / { f = 0 } END { print l }' "$WORK/argv.log")
	msg=$(echo "$msg" | jq -r .msg 2>/dev/null)
	[ -n "$msg" ] || {
		echo "the runtime's create and start of $id both succeeded (no error record in its log)"
		echo "ctr exit status $rc, ctr said: $out"
		return 1
	}
	expect_has "ctr's error" "$out" "$msg" || return 1
	expect_has "ctr's error" "$out" nonexistent-cmd
}

check "$tag: run --rm, exit code passthrough" t_run
check "$tag: run -d" t_run_detached
check "$tag: task exec, exit code" t_exec
check "$tag: tty (exec -t, run -t)" t_tty
check "$tag: task ps" t_ps
check "$tag: task pause, resume" t_pause_resume
check "$tag: task kill" t_kill
check "$tag: task delete, container delete" t_delete
check "$tag: failed create (/nonexistent-cmd) shows the runtime's error" t_failed_create \
	bad1 /nonexistent-cmd
check "$tag: failed create (nonexistent-cmd in PATH) shows the runtime's error" t_failed_create \
	bad2 nonexistent-cmd
exit 0
