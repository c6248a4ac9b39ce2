# shellcheck shell=bash
# Helpers of the guest-side runner (sourced by lane.sh and the case files).
#
# A case is a function that prints what it saw and returns 0 to pass, 1 to fail, 77 to skip.
# `run_case RUNTIME NAME FUNC [ARGS...]` runs it and appends "PASS|FAIL|SKIP RUNTIME NAME" to
# $RESULTS; a failing case's output is shown indented (every case's with VERBOSE=1). Every runtime or client call goes through
# `t` (a timeout), so a hang fails one case instead of the lane. No case asserts a duration.

LANE=/var/lib/vmlane            # root's bundles and the shared rootfs
# shellcheck disable=SC2034 # used by the case files
UHOME=/home/user/vmlane         # the user's bundles
ROOTFS=$LANE/rootfs             # busybox + husk-probe (/io/make-rootfs); cases copy it
: "${CASE_TIMEOUT:=120}"

t() { timeout -k 5 "$CASE_TIMEOUT" "$@"; }

run_case() {
	local rt=$1 name=$2 out rc t0=$SECONDS name_t
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	name_t="$name ($((SECONDS - t0)) s)"
	case $rc in
	0)
		echo "PASS $rt $name" >>"$RESULTS"
		printf 'ok    %-6s %s\n' "$rt" "$name_t"
		[ -n "${VERBOSE:-}" ] && tail -n 20 <<<"$out" | cut -c 1-300 | sed 's/^/      | /'
		;;
	77) echo "SKIP $rt $name" >>"$RESULTS"; printf 'skip  %-6s %s: %s\n' "$rt" "$name_t" "$(tail -n 1 <<<"$out")" ;;
	*)
		echo "FAIL $rt $name" >>"$RESULTS"
		printf 'FAIL  %-6s %s\n' "$rt" "$name_t"
		tail -n 20 <<<"$out" | cut -c 1-300 | sed 's/^/      | /'
		;;
	esac
	return 0
}

# want WHAT GOT EXPECTED / want_has WHAT TEXT NEEDLE / want_lacks WHAT TEXT NEEDLE: print why and
# return 1 when the expectation does not hold.
want() {
	[ "$2" = "$3" ] && return 0
	printf '%s: got [%s], want [%s]\n' "$1" "$2" "$3"
	return 1
}
want_has() {
	case $2 in *"$3"*) return 0 ;; esac
	printf '%s: [%s] lacks [%s]\n' "$1" "$2" "$3"
	return 1
}
want_lacks() {
	case $2 in *"$3"*) printf '%s: [%s] contains [%s]\n' "$1" "$2" "$3"; return 1 ;; esac
	return 0
}

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
	local n=$(($1 * 5))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		n=$((n - 1))
	done
	echo "timed out waiting for: $*"
	return 1
}

# bundle DIR [JQ-FILTER]: a root bundle in DIR: config.json from /io/config.json edited by the jq
# filter, a private copy of the rootfs (cases write into it, e.g. mknod in /tmp).
bundle() {
	rm -rf "$1"
	mkdir -p "$1"
	cp -a "$ROOTFS" "$1/rootfs"
	jq "${2:-.}" /io/config.json >"$1/config.json"
}

# user_bundle DIR [JQ-FILTER]: the same for the user, from /io/config-rootless.json with the
# user's single id mapped to root, owned by the user.
user_bundle() {
	rm -rf "$1"
	mkdir -p "$1"
	cp -a "$ROOTFS" "$1/rootfs"
	jq '.root.path = "rootfs"
		| .linux.uidMappings = [{"containerID": 0, "hostID": 1000, "size": 1}]
		| .linux.gidMappings = [{"containerID": 0, "hostID": 1000, "size": 1}]' /io/config-rootless.json |
		jq "${2:-.}" >"$1/config.json"
	chown -R user:user "$1"
}

# with_args ARGS... : a jq filter setting process.args to ARGS.
# (One jq call per argument: jq's --args would take an argument such as -c as its own option.)
with_args() {
	local a json
	json=$(for a in "$@"; do jq -n --arg a "$a" '$a'; done | jq -sc .)
	printf '.process.args = %s' "$json"
}

# as_user MODE ARGS... <<'EOF' BODY EOF: run the shell script BODY (stdin) as `user` with ARGS
# as $1...: MODE login (`su - user`, a login session scope: not delegated) or scope (also inside
# `systemd-run --user --scope`: a scope of the user's own systemd, in the delegated subtree).
as_user() {
	local mode=$1 f quoted=""
	shift
	f=$(mktemp /tmp/vmlane-user.XXXXXX)
	cat >"$f"
	chmod 644 "$f"
	for a in "$@"; do quoted="$quoted $(printf '%q' "$a")"; done
	case $mode in
	login) t su - user -c "bash $f$quoted" ;;
	scope) t su - user -c "systemd-run --user --scope --quiet -- bash $f$quoted" ;;
	esac
	local rc=$?
	rm -f "$f"
	return $rc
}

# cgroup_of PID: the host path of PID's (v2) cgroup directory.
cgroup_of() { echo "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$1/cgroup")"; }

# disk_dev: "b MAJOR MINOR" of the guest's root disk, for the device-cgroup cases.
disk_dev() {
	local hex
	hex=$(stat -L -c '%t %T' /dev/vda)
	set -- $hex
	echo "b $((16#$1)) $((16#$2))"
}
