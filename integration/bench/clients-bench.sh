#!/bin/bash
# End-to-end client benchmark: `ctr run --rm`, `podman run --rm` and `docker run --rm` of a
# trivial container (`true` on the clients' static-busybox image) with husk, runc and crun as the
# runtime, in one run. Each client is set up the way integration/clients/ does it (its lib.sh and
# image.sh; containerd and dockerd started with their own state in a temp dir, podman on vfs
# storage in that dir) and timed with hyperfine. Raw hyperfine JSON and text go to $OUT; the script
# closes with a Markdown table: client x runtime median ms and the ratio to runc.
#
#   integration/bench/clients-bench.sh [RUNS [WARMUP]]     (as root; default 20 runs, 3 warmups)
#
# Env: HUSK (husk binary; default target/release/husk, copied to /usr/local/bin/husk-bench and
# timed from there), OUT (default /tmp/husk-clientbench), SKIP=client,... (ctr podman docker).
#
# Debian's crun 1.8.1 refuses this host's hybrid cgroup layout, so crun is called through a
# wrapper that runs it in a private mount namespace where an empty tmpfs hides
# /sys/fs/cgroup/unified. The wrapper's own cost (unshare -m + sh, measured with /bin/true in
# place of crun) and how many runtime calls each client makes per container are reported, so the
# crun column can be corrected by hand: crun's own time ~ median - calls x wrapper cost.
# shellcheck source-path=SCRIPTDIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
clients=$top/integration/clients
export CLIENT_TIMEOUT=60 # lib.sh's tmo: bound on every untimed client call
# shellcheck source=../clients/lib.sh
. "$clients/lib.sh"

RUNS=${1:-20}
WARMUP=${2:-3}
OUT=${OUT:-/tmp/husk-clientbench}
HUSK_SRC=${HUSK:-${CARGO_TARGET_DIR:-$top/target}/release/husk}
HUSK=/usr/local/bin/husk-bench
RUNC=$(command -v runc || echo /usr/sbin/runc)
SKIP=${SKIP:-}

[ "$(id -u)" = 0 ] || { echo "clients-bench: run as root" >&2; exit 1; }
for t in hyperfine jq ctr containerd podman dockerd /usr/bin/docker crun umoci skopeo unshare; do
	command -v "$t" >/dev/null || { echo "clients-bench: $t not installed" >&2; exit 1; }
done
[ -x "$HUSK_SRC" ] || { echo "clients-bench: no husk at $HUSK_SRC" >&2; exit 1; }
install -m 755 "$HUSK_SRC" "$HUSK"

t_start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/husk-clientbench-work.XXXXXX)
chmod 755 "$WORK"
ns=husk-clientbench
cpid=""
dpid=""

cleanup() {
	set +e
	if [ -n "${PM_READY:-}" ]; then pm rm --all --force --time 0 >/dev/null 2>&1; fi
	if [ -n "$cpid" ]; then
		for t in $(c task ls -q 2>/dev/null); do c task kill -s SIGKILL "$t" >/dev/null 2>&1; done
		sleep 0.5
		for t in $(c task ls -q 2>/dev/null); do c task delete --force "$t" >/dev/null 2>&1; done
		for t in $(c container ls -q 2>/dev/null); do c container delete "$t" >/dev/null 2>&1; done
		kill "$cpid" 2>/dev/null
		wait "$cpid" 2>/dev/null
	fi
	if [ -n "$dpid" ]; then
		for x in $(dk ps -aq 2>/dev/null); do dk rm --force "$x" >/dev/null 2>&1; done
		# dockerd started its own containerd; it stops with dockerd: wait for it.
		ctd=$(pgrep -P "$dpid" -x containerd)
		kill "$dpid" 2>/dev/null
		wait "$dpid" 2>/dev/null
		[ -z "$ctd" ] || wait_for 10 sh -c "! kill -0 $ctd" >/dev/null
	fi
	umount_under "$WORK"
	rm -rf "$WORK"
	for h in /sys/fs/cgroup/*/; do
		rmdir "$h$ns" "${h}docker" "${h}libpod_parent/conmon" "${h}libpod_parent" 2>/dev/null
	done
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- runtimes ------------------------------------------------------------------------------------
mkdir -p "$WORK/bin"
# crun wrapper (see the header). It also appends one line per call to a log, to count the calls a
# client makes per container; the cost wrapper does exactly the same with /bin/true as the target.
mkcrun() { # mkcrun PATH TARGET LOG
	cat >"$1" <<EOF
#!/bin/sh
echo "\$*" >>'$3'
exec unshare -m --propagation private sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified 2>/dev/null; exec $2 "\$@"' crun "\$@"
EOF
	chmod 755 "$1"
}
CRUN_LOG=$WORK/crun-calls.log
mkcrun "$WORK/bin/crun" /usr/bin/crun "$CRUN_LOG"
mkdir -p "$WORK/cost"
mkcrun "$WORK/cost/crun" /bin/true "$WORK/cost/calls.log"
: >"$CRUN_LOG"
RTS="husk runc crun"
rt_path() { case $1 in husk) echo "$HUSK" ;; runc) echo "$RUNC" ;; crun) echo "$WORK/bin/crun" ;; esac; }

echo "clients-bench: husk $("$HUSK" --version | head -n 1), runc $("$RUNC" --version | head -n 1 |
	awk '{print $3}'), crun $(crun --version | head -n 1 | awk '{print $3}'); $RUNS runs, $WARMUP warmups"
echo "clients-bench: ctr $(ctr --version | awk '{print $3}'), podman $(podman --version |
	awk '{print $3}'), docker $(/usr/bin/docker --version | awk '{print $3}' | tr -d ,)"

# --- the image -----------------------------------------------------------------------------------
IMAGE_ARCHIVE=$WORK/busybox-docker.tar
IMAGE_REF=husk-clients/busybox:latest
if ! "$clients/image.sh" "$WORK/image" "$IMAGE_ARCHIVE" "$IMAGE_REF" >"$WORK/image.log" 2>&1; then
	cat "$WORK/image.log" >&2
	echo "clients-bench: image build failed" >&2
	exit 1
fi

skip() { case ",$SKIP," in *",$1,"*) return 0 ;; esac; return 1; }

# bench CLIENT CMD-PREFIX... -- CMD-SUFFIX...: one hyperfine over the three runtimes, each command
# being PREFIX <runtime argument> SUFFIX as mk_cmd RT prints it. First one untimed run per runtime
# with its output shown on failure (hyperfine hides it).
declare -A MED CALLS
bench() {
	local client=$1 rt cmd args=() ok=1 before after n
	for rt in $RTS; do
		cmd=$(mk_cmd "$client" "$rt")
		echo "clients-bench: $client/$rt: $cmd" >>"$OUT/commands.txt"
		# shellcheck disable=SC2086 # the command is split into words, as hyperfine -N does
		if ! out=$(tmo $cmd 2>&1 </dev/null); then
			echo "clients-bench: $client with $rt fails: $cmd" >&2
			echo "$out" | tail -n 15 | sed 's/^/    | /' >&2
			ok=0
			continue
		fi
		args+=(-n "$rt" "$cmd")
	done
	[ ${#args[@]} -gt 0 ] || return 1
	before=$(wc -l <"$CRUN_LOG")
	echo "clients-bench: timing $client ($(date -u +%T))"
	timeout -k 5 420 hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic \
		--export-json "$OUT/$client.json" "${args[@]}" >"$OUT/$client.txt" 2>&1 ||
		{ echo "clients-bench: hyperfine for $client failed:" >&2; tail -n 20 "$OUT/$client.txt" >&2; }
	after=$(wc -l <"$CRUN_LOG")
	n=$((WARMUP + RUNS))
	if [ -f "$OUT/$client.json" ]; then
		for rt in $RTS; do
			MED[$client.$rt]=$(jq -r --arg n "$rt" \
				'.results[] | select(.command == $n) | .median * 1000' "$OUT/$client.json")
		done
		grep -q 'crun' <<<"${args[*]}" && CALLS[$client]=$(awk -v d=$((after - before)) -v n=$n \
			'BEGIN { printf "%.1f", d / n }')
	fi
	[ $ok = 1 ]
}

# --- ctr (containerd 1.6, io.containerd.runc.v2 shim) --------------------------------------------
cd_dir=$WORK/containerd
sock=$cd_dir/containerd.sock
c() { tmo ctr --address "$sock" --namespace "$ns" "$@"; }
if ! skip ctr; then
	mkdir -p "$cd_dir"
	cat >"$cd_dir/config.toml" <<EOF
version = 2
root = "$cd_dir/data"
state = "$cd_dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
EOF
	containerd --config "$cd_dir/config.toml" >"$cd_dir/containerd.log" 2>&1 &
	cpid=$!
	if ! wait_for 20 c version >/dev/null || ! c images import "$IMAGE_ARCHIVE" >/dev/null 2>&1; then
		echo "clients-bench: containerd setup failed" >&2
		tail -n 20 "$cd_dir/containerd.log" >&2
	else
		mk_cmd() {
			echo "ctr --address $sock --namespace $ns run --rm --runc-binary $(rt_path "$2") docker.io/$IMAGE_REF bench-$2 true"
		}
		bench ctr
	fi
fi

# --- podman 4 (root, vfs storage, cgroupfs, no network) ------------------------------------------
pm_dir=$WORK/podman
mkdir -p "$pm_dir/storage" "$pm_dir/run" "$pm_dir/tmp"
pm_flags="--root $pm_dir/storage --runroot $pm_dir/run --tmpdir $pm_dir/tmp --storage-driver vfs"
# shellcheck disable=SC2086 # word splitting of the flags is intended
pm() { CONTAINERS_CONF="$pm_dir/containers.conf" tmo podman $pm_flags "$@"; }
if ! skip podman; then
	# As podman.sh: the distribution's containers.conf plus our keys; podman names a runtime given
	# by path after its basename, so husk-bench joins runtime_supports_json (runc and crun are in).
	export PM_CONTAINERS='netns = "none"'
	husk_name=${HUSK##*/}
	export PM_ENGINE="cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
events_logfile_path = \"$pm_dir/events.log\"
runtime_supports_json = [\"crun\", \"runc\", \"kata\", \"runsc\", \"krun\", \"youki\", \"husk\", \"$husk_name\"]"
	base=/usr/share/containers/containers.conf
	[ -f "$base" ] || base=/dev/null
	awk '{ print }
		/^\[containers\]/ { print ENVIRON["PM_CONTAINERS"]; c = 1 }
		/^\[engine\]/ { print ENVIRON["PM_ENGINE"]; e = 1 }
		END {
			if (!c) printf "[containers]\n%s\n", ENVIRON["PM_CONTAINERS"]
			if (!e) printf "[engine]\n%s\n", ENVIRON["PM_ENGINE"]
		}' "$base" >"$pm_dir/containers.conf"
	export CONTAINERS_CONF=$pm_dir/containers.conf
	if ! out=$(pm load -i "$IMAGE_ARCHIVE" 2>&1); then
		echo "clients-bench: podman load failed: $out" >&2
	else
		PM_READY=1
		mk_cmd() {
			echo "podman $pm_flags --runtime $(rt_path "$2") run --rm --network none --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 docker.io/$IMAGE_REF true"
		}
		bench podman
	fi
fi

# --- docker 20.10 (dockerd with its own containerd, overlay2, no bridge) -------------------------
dk_dir=$WORK/docker
dsock=$dk_dir/docker.sock
export DOCKER_CONFIG=$dk_dir/client
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
dk() { tmo /usr/bin/docker -H "unix://$dsock" "$@"; }
if ! skip docker; then
	mkdir -p "$dk_dir"
	# runc is dockerd's built-in runtime (the name is reserved); husk and crun are added.
	cat >"$dk_dir/daemon.json" <<EOF
{
  "runtimes": { "husk": { "path": "$HUSK" }, "crun": { "path": "$WORK/bin/crun" } },
  "data-root": "$dk_dir/data",
  "exec-root": "$dk_dir/exec",
  "pidfile": "$dk_dir/dockerd.pid",
  "hosts": ["unix://$dsock"],
  "containerd-namespace": "$ns-docker",
  "containerd-plugins-namespace": "$ns-docker-plugins",
  "storage-driver": "${DOCKER_STORAGE:-overlay2}",
  "iptables": false, "ip6tables": false, "ip-forward": false, "ip-masq": false,
  "bridge": "none", "userland-proxy": false
}
EOF
	dockerd --config-file "$dk_dir/daemon.json" >"$dk_dir/dockerd.log" 2>&1 &
	dpid=$!
	n=0
	while ! dk version >/dev/null 2>&1 && kill -0 "$dpid" 2>/dev/null && [ $n -lt 150 ]; do
		sleep 0.2
		n=$((n + 1))
	done
	if ! dk version >/dev/null 2>&1 || ! dk load -i "$IMAGE_ARCHIVE" >/dev/null 2>&1; then
		echo "clients-bench: dockerd setup failed" >&2
		tail -n 20 "$dk_dir/dockerd.log" >&2
	else
		mk_cmd() {
			echo "/usr/bin/docker -H unix://$dsock run --rm --network none --runtime $2 $IMAGE_REF true"
		}
		bench docker
	fi
fi

# --- the crun wrapper's own cost -----------------------------------------------------------------
echo "clients-bench: timing the crun wrapper ($(date -u +%T))"
hyperfine -N --warmup 20 --runs 300 --style basic --export-json "$OUT/crun-wrapper.json" \
	-n true /bin/true -n "unshare -m true" "unshare -m true" \
	-n "wrapper(true)" "$WORK/cost/crun" >"$OUT/crun-wrapper.txt" 2>&1 ||
	tail -n 20 "$OUT/crun-wrapper.txt" >&2
wmed() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' \
	"$OUT/crun-wrapper.json" 2>/dev/null; }
w_true=$(wmed true)
w_unshare=$(wmed "unshare -m true")
w_wrap=$(wmed "wrapper(true)")
w_cost=$(awk -v a="$w_wrap" -v b="$w_true" 'BEGIN { printf "%.2f", a - b }')

# --- report --------------------------------------------------------------------------------------
fmt() { [ -n "$1" ] && [ "$1" != null ] && awk -v x="$1" 'BEGIN { printf "%.1f", x }' || echo "–"; }
ratio() {
	if [ -n "$1" ] && [ "$1" != null ] && [ -n "$2" ] && [ "$2" != null ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
	else echo "–"; fi
}
{
	echo
	echo "Median wall time of \`CLIENT run --rm IMAGE true\`, ms ($RUNS runs after $WARMUP warmups;" \
		"crun through its wrapper, see below)"
	echo
	echo "| client | husk | runc | crun | husk / runc | crun / runc | crun calls per run |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for cl in ctr podman docker; do
		skip "$cl" && continue
		h=${MED[$cl.husk]:-}
		r=${MED[$cl.runc]:-}
		k=${MED[$cl.crun]:-}
		echo "| $cl | $(fmt "$h") | $(fmt "$r") | $(fmt "$k") | $(ratio "$h" "$r") | $(ratio "$k" "$r") | ${CALLS[$cl]:-–} |"
	done
	echo
	echo "crun wrapper: median $(fmt "$w_wrap") ms with /bin/true in place of crun vs" \
		"$(fmt "$w_true") ms for /bin/true alone (cost $w_cost ms per runtime call;" \
		"\`unshare -m true\` alone: $(fmt "$w_unshare") ms)."
	echo
	echo "Took $(($(date +%s) - t_start)) s; hyperfine JSON and text in $OUT."
} | tee "$OUT/table.md"
