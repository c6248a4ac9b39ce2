# shellcheck shell=bash
# Shared helpers for the VM lane scripts (sourced).

# debian_mirror: the Debian archive this machine's apt already uses (the first source serving a
# plain suite, not -security/-updates/-backports), from deb822 *.sources or one-line *.list files.
# MIRROR overrides it. Prints nothing when none is configured.
debian_mirror() {
	if [ -n "${MIRROR:-}" ]; then
		echo "$MIRROR"
		return
	fi
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		# One stanza per paragraph: print its first URI when a suite has no '-' in it and the
		# stanza's keyring or URI says debian.
		awk 'BEGIN { RS = ""; FS = "\n" }
			{ uri = ""; plain = 0; deb = 0
			  for (i = 1; i <= NF; i++) {
				if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
				if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/)
					for (j = 2; j <= n; j++) if (s[j] !~ /-/) plain = 1 }
				if ($i ~ /^Signed-By:.*debian-archive-keyring/) deb = 1
			  }
			  if (uri ~ /\/debian\/?$/) deb = 1
			  if (uri != "" && plain && deb) { print uri; exit } }' "$f"
	done | head -n 1 | grep . && return
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\/\{0,1\}\) [a-z]* .*/\2/p' | head -n 1
}

# cache_dir: where images and debs are kept between runs (survives reboots of the CI machine
# when /var/tmp does).
cache_dir() { echo "${VM_CACHE:-/var/tmp/husk-vm}"; }
