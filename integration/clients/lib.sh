# shellcheck shell=bash
# Shared helpers for the client suites (sourced by run.sh and by each suite).
#
# A suite records each case as one line in $RESULTS ("PASS name" / "FAIL name"), prints the same
# line with the failure's detail, and leaves what it started to its own EXIT trap. Every wait is
# bounded (wait_for), every client call runs under `timeout` (tmo), and nothing asserts a duration.

: "${CLIENT_TIMEOUT:=90}"

# tmo CMD...: run a client command, killed after $CLIENT_TIMEOUT s so a hang fails instead of
# blocking the run.
tmo() { timeout -k 5 "$CLIENT_TIMEOUT" "$@"; }

pass() {
	printf 'PASS %s\n' "$1" >>"$RESULTS"
	printf 'ok    %s\n' "$1"
}

fail() {
	printf 'FAIL %s\n' "$1" >>"$RESULTS"
	printf 'FAIL  %s\n' "$1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 15 | sed 's/^/      | /'
	return 0
}

# check NAME FUNC [ARGS...]: FUNC returns 0 to pass; whatever it prints is shown on failure.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ] && return 0
	printf '%s: got [%s], want [%s]\n' "$1" "$2" "$3"
	return 1
}

# expect_has WHAT HAYSTACK NEEDLE
expect_has() {
	case $2 in *"$3"*) return 0 ;; esac
	printf '%s: [%s] does not contain [%s]\n' "$1" "$2" "$3"
	return 1
}

# expect_lacks WHAT HAYSTACK NEEDLE
expect_lacks() {
	case $2 in *"$3"*)
		printf '%s: [%s] contains [%s]\n' "$1" "$2" "$3"
		return 1
		;;
	esac
	return 0
}

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds; fail after SECONDS.
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

# cgroup_file PID CONTROLLER FILE: host path of FILE in PID's cgroup for CONTROLLER (v1), or in
# its unified cgroup (v2; FILE then names the v2 file). Read from the host's cgroup namespace.
cgroup_file() {
	local line path
	line=$(grep -E "^[0-9]+:([^:]*,)?$2(,[^:]*)?:" "/proc/$1/cgroup" | head -n 1)
	if [ -n "$line" ]; then
		path=${line#*:*:}
		echo "/sys/fs/cgroup/$2$path/$3"
	else
		path=$(sed -n 's/^0:://p' "/proc/$1/cgroup")
		echo "/sys/fs/cgroup$path/$3"
	fi
}

# umount_under DIR: lazily unmount everything mounted below DIR, deepest first.
umount_under() {
	awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
	return 0
}

# make_wrapper DIR NAME REAL LOG: an argv-logging stand-in for the runtime, DIR/NAME. Each call
# appends "time uid argv" to LOG; a call that fails also appends its exit status and the last
# records of the --log file it was given (where husk writes its JSON error), and a failed create
# leaves its bundle's config.json in DIR/../failed-configs/ (clients delete bundles). It does not
# exec, so it can see the status: the runtime still forks the container's init itself, which the
# shim or conmon reaps as subreaper exactly as without the wrapper.
make_wrapper() {
	mkdir -p "$1"
	cat >"$1/$2" <<EOF
#!/bin/sh
printf '%s uid=%s %s\n' "\$(date +%T.%N)" "\$(id -u)" "\$*" >>'$4'
'$3' "\$@"
rc=\$?
if [ \$rc -ne 0 ]; then
	log=
	bundle=
	prev=
	for a in "\$@"; do
		[ "\$prev" = --log ] && log=\$a
		case \$prev in --bundle | -b) bundle=\$a ;; esac
		case \$a in --log=*) log=\${a#--log=} ;; --bundle=*) bundle=\${a#--bundle=} ;; esac
		prev=\$a
	done
	printf '  -> exit %s (%s)\n' "\$rc" "\$*" >>'$4'
	[ -n "\$log" ] && [ -f "\$log" ] && tail -n 3 "\$log" | sed 's/^/  log: /' >>'$4'
	# keep the config.json of a failed create (the client deletes the bundle)
	[ -n "\$bundle" ] && cp "\$bundle/config.json" '$1/../failed-configs/'"\$\$.json" 2>/dev/null
fi
exit \$rc
EOF
	chmod 755 "$1/$2"
	# writable by a rootless client's runtime too (uid 0 in the client's user namespace)
	mkdir -p "$1/../failed-configs"
	chmod 1777 "$1/../failed-configs"
	touch "$4"
	chmod 666 "$4"
}

# last_error_msg LOGFILE: the msg of the last {"level":"error",...} record of a runtime's JSON log.
last_error_msg() {
	jq -rR 'fromjson? | select(.level == "error") | .msg' "$1" 2>/dev/null | tail -n 1
}
