//! Man pages generated from the flag table: `man/husk.1` and `man/husk-<verb>[-<sub>].1`. The test fails when
//! the committed pages differ from what the flags say; `HUSK_UPDATE_MAN=1 cargo test -p husk man`
//! rewrites them.

use crate::cli::Cli;
use clap::CommandFactory;
use std::path::PathBuf;

const EXTRA: &str = r#".SH "EXIT STATUS"
0 on success, 1 on failure, 2 on a usage error. \fBrun\fR, \fBexec\fR and \fBshell\fR in the
foreground exit with the container process's status, or 128+N when it was killed by signal N.
\fBexec\fR (runc's convention) and the launcher (\fBrun\fR, \fBexec\fR, \fBshell\fR with an IMAGE)
exit 255 when they fail themselves, so that cannot be mistaken for the program's own status.
\fBbatch\fR exits 0 when every job passed, 1 when a job failed (its exit status, a signal, the
timeout or the OOM killer), 3 when a job could not be run (a bad line, image or workspace), and
128+N when interrupted by signal N.
.SH LAUNCHER
\fBrun\fR and \fBexec\fR take a container id (\fB^[\\w+.\-]+$\fR) or an IMAGE, which always holds
a '/' or a ':' (\fI./rootfs\fR, \fI/srv/images/debian\fR); the first positional decides. An IMAGE is
a root filesystem directory (used in place), or \fIoci:DIR[:TAG]\fR, \fIoci\-archive:FILE[:TAG]\fR,
\fIdocker\-archive:FILE\fR (or a bare path to one of those), imported into the image cache first:
each layer is verified against its digest and unpacked once, and a second use only re-reads the
manifest (\fBpull\fR does just that step; \fBimages\fR, \fBrmi\fR and \fBcache clean\fR manage
the cache). An image from the cache shares its files with the cache's layers, so \fB\-\-writable\fR
is refused for it. \fIdocker://REF\fR pulls from a registry (OCI distribution API; https, or plain
http for a registry on loopback: localhost, 127.0.0.0/8, [::1]); credentials come from
\fBHUSK_REGISTRY_AUTH\fR or \fI~/.docker/config.json\fR. The launcher runs it as you (a user namespace mapping only
your uid and gid; no capabilities), or as root inside with \fB\-\-fakeroot\fR; as real root, as root
with no user namespace. By default the host's /proc, /sys (read-only), /dev, /tmp, $HOME and the
current directory are bound in, /etc/resolv.conf and /etc/hosts read-only, and /etc/passwd and
/etc/group are the image's with your entry added. The image is never written to (unless
\fB\-\-writable\fR): the container's root is the image, bound read-only; a directory of it that
lacks a mount point ($HOME, /etc/hosts, a \fB\-\-bind\fR destination) gets a read-only overlay
of the image's directory over one holding the missing entries (Linux 5.11 or later in a user
namespace; an image on a local filesystem, tmpfs, squashfs, NFS or FUSE), or else is rebuilt in the launch directory with the image's entries bound into it; when /
itself lacks one, the root is such a rebuilt directory. The image cache adds empty mount points
(/proc, /sys, /dev, /tmp, /home, /etc/hosts, /etc/resolv.conf...) to the images it unpacks, so
those need neither. The host environment passes through except PATH, LD_PRELOAD,
LD_LIBRARY_PATH, LD_AUDIT and PS1; the image's Env, then \fBHUSKENV_\fR\fINAME\fR variables, then
\fB\-\-env\-file\fR and \fB\-\-env\fR override it. Without resource flags an unprivileged launch
uses no cgroup.
A foreground launch that needs no supervising process (no cgroup, which rules out root's launches
unless \fB\-\-cgroup\-manager disabled\fR; no \fB\-\-pid\fR or \fB\-\-containall\fR, no
\fB\-\-tty\fR, no overlay, no \fB\-\-sandbox\fR, no hooks, no \fB\-\-fakeroot\fR or
\fB\-\-userns\fR as root) runs in place, as \fBch\-run\fR does: husk itself enters the
namespaces, sets the container up and becomes the program (same pid, which stays in the caller's
session and process group, so the terminal's job control reaches it directly); nothing is
written to disk and no state is recorded (\fBlist\fR does not show it).
.SH ENVIRONMENT
.TP
\fBXDG_RUNTIME_DIR\fR
State root for unprivileged users (\fI$XDG_RUNTIME_DIR/husk\fR), and where launches put their
bundles (\fI$XDG_RUNTIME_DIR/husk\-launch\fR). Unset: \fI/run/user/<uid>\fR when that is a
directory of the caller's that no one else may write, else \fI/tmp/husk\-<uid>\fR and
\fI/tmp/husk\-launch\-<uid>\fR. Every state root, launch base and cache directory husk uses must
belong to the caller and be writable by no one else (one another user made first, mode 0777, is
refused with an error naming it, never used); husk creates them mode 0700.
.TP
\fBHUSK_CGROUP_LAYOUT\fR
auto, v1 or v2: which cgroup hierarchy to drive (same as \fB\-\-cgroup\-layout\fR).
.TP
\fBHUSKENV_\fR\fINAME\fR, \fBAPPTAINERENV_\fR\fINAME\fR, \fBSINGULARITYENV_\fR\fINAME\fR
Launcher: set \fINAME\fR inside the container (HUSKENV_ wins).
.TP
\fBHUSK_CACHE_DIR\fR
Image cache directory (same as \fB\-\-cache\-dir\fR).
.TP
\fBHUSK_REGISTRY_AUTH\fR
\fIuser:pass\fR for registries that ask for credentials (else the \fBauths\fR of
\fI$DOCKER_CONFIG/config.json\fR or \fI~/.docker/config.json\fR); sent only when challenged.
.TP
\fBHUSK_NO_FASTPATH\fR
Launcher: when set (and not 0), always run through a supervising \fBrun\fR, never in place.
.TP
\fBLISTEN_FDS\fR
Socket-activation fds are passed through to the container process.
.SH FILES
.TP
\fI<root>/<id>/\fR
Mode 0700, its files 0600: the saved config.json holds the process's environment.
.TP
\fI<root>/<id>/state.json\fR
Container record (pid and its start time, bundle, cgroup); the status is worked out from the live
process, never trusted from this file.
.TP
\fI<root>/<id>/config.json\fR
The exact config.json the container was created from.
.TP
\fI<root>/<id>/exec.fifo\fR
Present between create and start.
.TP
\fI<root>/<id>/started\fR
Empty; made by \fBrun\fR once the container's process has exec'd (instead of rewriting
state.json).
.TP
\fI$XDG_RUNTIME_DIR/husk\-launch/<id>/\fR (root: \fI/run/husk\-launch/<id>/\fR)
A launch's bundle (config.json, passwd, group, the rebuilt directories: \fIrootfs\fR when the
root is not the image itself, \fIunder\fR for the overlays' layers and split directories; with
\fB\-\-writable\-tmpfs\fR the overlays' \fIoverlay/upper\fR and \fIoverlay/work\fR), removed when it
exits; the container id is \fIhusk\-<pid>\-<random>\fR. A launch run in place writes its
files into a tmpfs mounted there in its own mount namespace only.
.TP
\fI$XDG_RUNTIME_DIR/husk\-launch/batch\-husk\-<pid>\-<random>/<n>/\fR (root: under \fI/run/husk\-launch\fR)
A \fBbatch\fR job's fresh workspace (\fIws/\fR, with its files), its stdin and its worker's
output, removed when the job ends; the tree goes when the batch does.
.TP
\fI<root>\-instances/\fR (\fI/run/husk\-instances\fR, \fI$XDG_RUNTIME_DIR/husk\-instances\fR)
Instances (\fBinstance start\fR), beside the state root: \fI<name>.json\fR (image, start time,
TTL deadline, watcher pid; once the program exited by itself, its exit status and time),
\fI<name>/\fR (the launch directory) and \fI<name>.log\fR (the instance's stdout and stderr, and
its watcher's messages; \fBinstance logs\fR prints it). Each instance has its own pid namespace, so
every process exec'd into it ends with its program. \fBinstance stop\fR, or the watcher when the
TTL passes, removes the container (id \fIinst\-<name>\fR), the record and the launch directory;
when the program exits by itself the container and launch directory go and the record stays,
listed as exited with its status, until \fBinstance stop\fR. The log stays until the next start of
that name.
.TP
\fI/var/cache/husk\fR (others: \fI$XDG_CACHE_HOME/husk\fR or \fI~/.cache/husk\fR)
The image cache, mode 0700: \fIlayers/\fR (unpacked once, by diff_id), \fIrootfs/\fR (an image's
layers stacked, hardlinked from \fIlayers/\fR), \fIimages/<key>.json\fR (records), \fItmp/\fR
(imports in progress; \fBcache clean\fR removes leftovers).
.SH SECURITY
Containers are isolated by the namespaces, capabilities, seccomp filter, masked paths and cgroup
limits their config.json asks for, and nothing more. Mount destinations are resolved inside the
rootfs without following symlinks out of it; husk's own process is non-dumpable while it is inside
the container, and inherited file descriptors beyond \fB\-\-preserve\-fds\fR are closed before the
container process starts. Without a cgroup (rootless on a host without delegation) there are no
resource limits. On cgroup v2, device rules are enforced as root by a BPF device program attached
to the container's cgroup; rootless, its user namespace refuses \fBmknod\fR instead.
The annotation \fBrun.husk.landlock.write\fR=\fIPATH\fR[:\fIPATH\fR...] adds Landlock: the
container may write only under those paths (best effort by the kernel's Landlock ABI; a warning,
not a failure, without Landlock). The annotation \fBrun.husk.rootfs.early\-readonly\fR=true (the
launcher sets it) makes a read-only root read-only right after it is bound, before the other
mounts, so that no missing mount point can ever be created in it (EROFS instead). A new network
namespace gets its loopback interface up.
\fB\-\-sandbox\fR uses both (writes only to /workspace, /tmp, /dev/shm), and run by root maps the
program's root to an unprivileged host id (\fB\-\-host\-id\fR, default 1000000000). Its flags
are an allow-list: any launcher flag it does not list (\fB\-\-x11\fR, \fB\-\-fuse\fR,
\fB\-\-device\fR, a \fB\-\-bind\fR without \fB:ro\fR, ...) is a usage error. The sandboxed
program dies with the husk that supervises it (SIGKILL included); the next launch sweeps what a
killed husk left. See docs/sandbox.md for what it does and does not protect.
The launcher's default is Apptainer's: integration, not isolation. The container shares the host's
network, pid and ipc namespaces, sees the host's /dev (every character device is allowed, block
devices are not), /proc and /sys, and can write to $HOME, /tmp and the current directory; use
\fB\-\-containall\fR and \fB\-\-net none\fR to narrow that.
\fB\-\-x11\fR hands the container the X server: it can read other windows' input and draw
anywhere. \fB\-\-fuse\fR lets it mount FUSE file systems where it may open /dev/fuse: it gives the
program CAP_SYS_ADMIN, always in a user namespace of the container's own (also when run by root),
so the capability reaches only what that namespace owns (its mounts), not the host.
\fB\-\-add\-caps\fR and \fB\-\-drop\-caps\fR change the program's capability sets (every set,
ambient included): added ones are real root capabilities when root runs without a user namespace.
\fB\-\-writable\-tmpfs\fR and \fB\-\-overlay\fR never write to the image (kernel overlayfs copies a
file up before changing it). The whole root is writable; a new entry directly under / lives in
the launch directory and goes at exit, even with \fB\-\-overlay\fR.
.SH "SEE ALSO"
runc(8), crun(1), podman(1), containerd(8)
"#;

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("render man page");
    out.extend_from_slice(EXTRA.as_bytes());
    out
}

/// Every page: (file name, contents).
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let top = Cli::command();
    let mut pages = vec![("husk.1".to_string(), render(top.clone()))];
    for sub in top.get_subcommands().filter(|c| !c.is_hide_set()) {
        // A verb's flags and subcommands are deferred (cli::Lazy): build it to see its subcommands.
        let mut built = sub.clone();
        built.build();
        let name: &'static str = Box::leak(format!("husk-{}", sub.get_name()).into_boxed_str());
        let cmd = sub
            .clone()
            .name(name)
            .bin_name(format!("husk {}", sub.get_name()));
        pages.push((format!("{name}.1"), render(cmd)));
        for sub2 in built
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        {
            let name2: &'static str =
                Box::leak(format!("{name}-{}", sub2.get_name()).into_boxed_str());
            let cmd = sub2
                .clone()
                .name(name2)
                .display_name(name2)
                .bin_name(format!("husk {} {}", sub.get_name(), sub2.get_name()));
            pages.push((format!("{name2}.1"), render(cmd)));
        }
    }
    pages
}

#[test]
fn man_pages_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../man");
    let update = std::env::var_os("HUSK_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (name, data) in pages() {
        let path = dir.join(&name);
        if std::fs::read(&path).ok().as_deref() != Some(&data[..]) {
            if update {
                std::fs::write(&path, &data).unwrap();
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "man pages out of date: {stale:?}; run HUSK_UPDATE_MAN=1 cargo test -p husk man"
    );
}
