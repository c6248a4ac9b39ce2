#!/bin/bash
# The VM lane's guest side: run as root in the guest at boot (by integration/vm/lane.sh through
# run.sh), with the share at /io holding husk, husk-probe, make-rootfs, the bundle configs and
# these scripts. Runs the same OCI and podman cases against husk, runc and crun in turn, then the
# launcher cases for husk (first: some need a fresh boot), and writes one line per case to
# /io/results ("PASS|FAIL|SKIP RUNTIME CASE"); the host side counts them.
#
# /io/env may set VERBOSE, RUNTIMES (default "husk runc crun"), CASES (an extended regex: only cases whose
# name matches run), SUITES (default "launcher oci podman").
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
. "$here/cases-oci.sh"
. "$here/cases-podman.sh"
. "$here/cases-launcher.sh"
[ -f /io/env ] && . /io/env
RUNTIMES=${RUNTIMES:-husk runc crun}
SUITES=${SUITES:-launcher oci podman}
RESULTS=/io/results
: >"$RESULTS"

# CASES filter: wrap run_case so a case whose name does not match is not run at all.
if [ -n "${CASES:-}" ]; then
	eval "$(declare -f run_case | sed '1s/run_case/run_case_all/')"
	run_case() { [[ $2 =~ $CASES ]] && run_case_all "$@"; return 0; }
fi

setup() {
	install -m 755 /io/husk /usr/local/bin/husk || return 1
	mkdir -p "$LANE/b" && chmod 755 "$LANE" || return 1
	BUSYBOX=/bin/busybox PROBE=/io/husk-probe sh /io/make-rootfs "$ROOTFS" >/dev/null || return 1
	mkdir -p "$UHOME/b" && chown -R user:user "$UHOME" || return 1
	# The podman image, for root and for the user (each has its own storage).
	tar -C "$ROOTFS" -cf /tmp/vmlane-rootfs.tar . && chmod 644 /tmp/vmlane-rootfs.tar || return 1
	podman import -q /tmp/vmlane-rootfs.tar localhost/vmlane:latest >/dev/null || return 1
	as_user login <<<'podman import -q /tmp/vmlane-rootfs.tar localhost/vmlane:latest >/dev/null' || return 1
}

echo "lane: $(uname -r), $(stat -fc %T /sys/fs/cgroup), PID 1 $(cat /proc/1/comm)," \
	"$(runc --version | head -n 1), $(crun --version | head -n 1), $(podman --version)"
t0=$(date +%s)
if ! setup; then
	echo "lane: setup failed"
	exit 1
fi
echo "lane: husk $(husk --version | head -n 1); setup took $(($(date +%s) - t0)) s"

for suite in $SUITES; do
	case $suite in
	launcher)
		case " $RUNTIMES " in *" husk "*) ;; *) continue ;; esac
		t1=$(date +%s)
		launcher_cases
		echo "lane: launcher took $(($(date +%s) - t1)) s"
		;;
	oci | podman)
		for RTN in $RUNTIMES; do
			case $RTN in
			husk) RT=/usr/local/bin/husk ;;
			*) RT=$(command -v "$RTN") ;;
			esac
			t1=$(date +%s)
			"${suite}_cases"
			echo "lane: $suite against $RTN took $(($(date +%s) - t1)) s"
		done
		;;
	esac
done
echo "lane: cases took $(($(date +%s) - t0)) s"
