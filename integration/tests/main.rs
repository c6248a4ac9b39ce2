//! husk integration tests: the built runtime binary, real bundles, husk-probe inside.
//!
//! Run (as root, so both modes run; see tests.sh for the full setup):
//!
//! ```sh
//! bundles/busybox/make-rootfs            # after building the static probe
//! cargo test -p husk-integration         # against target/{release,debug}/husk (newest)
//! HUSK_RUNTIME=/usr/bin/runc cargo test -p husk-integration   # check the tests against runc
//! cargo test -p husk-integration rootless                        # one mode only
//! ```
//!
//! Env: HUSK_RUNTIME (runtime binary), HUSK_REQUIRE_PRIVILEGED=1 (skips become failures; CI),
//! HUSK_TEST_USER (unprivileged user, default tuser), HUSK_KEEP=1 (keep per-test dirs),
//! HUSK_TEST_TMPDIR (default /tmp).
//!
//! Every case runs as root and rootless (`both!`) unless it is inherently root-only
//! (`root_only!`: cgroup limits on a v1 host, ids outside a one-id map).

mod harness;

mod batch;
mod cdi;
mod cleanup;
mod cve;
mod debian;
mod errors;
mod exec;
mod fds;
mod hooks;
mod images;
mod info;
mod instance;
mod kill;
mod killstep;
mod launcher;
mod launcher_errors;
mod launcher_fastpath;
mod launcher_ns;
mod launcher_underlay;
mod lifecycle;
mod limits;
mod oci_security;
mod overlay;
mod parity_cli;
mod parity_init;
mod parity_ns;
mod parity_rootfs;
mod pause;
mod probe;
mod ps;
mod run;
mod sandbox;
mod sandbox_hardening;
mod sandbox_policy;
mod security;
mod shell_instance;
mod tty;
mod userns;
