//! `mounts[].options` → mount(2) flags, propagation changes and the filesystem data string, with the
//! same vocabulary as runc (mount(8) names plus the propagation words).

use nix::mount::MsFlags;

/// One `mounts[]` entry's options, split the way mount(2) needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount call itself (MS_BIND/MS_REC included for binds).
    pub flags: MsFlags,
    /// Flags the config explicitly turned off ("rw", "suid", "dev", "exec"): a bind remount must not
    /// inherit them from the source.
    pub cleared: MsFlags,
    /// Propagation changes applied after the mount, in order (MS_SHARED, MS_SLAVE|MS_REC, ...).
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options joined with ',' (mode=, size=, newinstance, ...).
    pub data: String,
    /// The config named an atime option; otherwise a bind remount keeps the source's atime flags.
    pub atime_given: bool,
    /// `tmpcopyup` (podman, runc): a tmpfs starts with a copy of the directory it covers.
    pub copy_up: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
            atime_given: false,
            copy_up: false,
        }
    }
}

/// Options this runtime refuses instead of ignoring, because ignoring them weakens what the user
/// asked for.
const UNSUPPORTED: &[&str] = &["idmap", "ridmap"];

/// Options that belong to other runtimes' extensions and carry no mount(2) meaning here.
const IGNORED: &[&str] = &["copy-symlink", "src-nofollow"];

/// Parses options; `Err(option)` names the first unsupported one.
pub fn parse(options: &[String]) -> Result<MountOptions, String> {
    let mut out = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        if UNSUPPORTED.contains(&opt) {
            return Err(opt.to_string());
        }
        if IGNORED.contains(&opt) {
            continue;
        }
        if opt == "tmpcopyup" {
            out.copy_up = true;
            continue;
        }
        if let Some(p) = propagation(opt) {
            out.propagation.push(p);
            continue;
        }
        match flag(opt) {
            Some((set, f)) => {
                if is_atime(f) {
                    out.atime_given = true;
                }
                if set {
                    out.flags |= f;
                    out.cleared &= !f;
                } else {
                    out.flags &= !f;
                    out.cleared |= f;
                }
            }
            None => data.push(opt),
        }
    }
    out.data = data.join(",");
    Ok(out)
}

fn is_atime(f: MsFlags) -> bool {
    f.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME)
        || f == MsFlags::MS_NODIRATIME
}

/// (set?, flag) for a mount(8) flag word.
fn flag(opt: &str) -> Option<(bool, MsFlags)> {
    Some(match opt {
        "defaults" => (true, MsFlags::empty()),
        "ro" => (true, MsFlags::MS_RDONLY),
        "rw" => (false, MsFlags::MS_RDONLY),
        "bind" => (true, MsFlags::MS_BIND),
        "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
        "nosuid" => (true, MsFlags::MS_NOSUID),
        "suid" => (false, MsFlags::MS_NOSUID),
        "nodev" => (true, MsFlags::MS_NODEV),
        "dev" => (false, MsFlags::MS_NODEV),
        "noexec" => (true, MsFlags::MS_NOEXEC),
        "exec" => (false, MsFlags::MS_NOEXEC),
        "sync" => (true, MsFlags::MS_SYNCHRONOUS),
        "async" => (false, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (true, MsFlags::MS_DIRSYNC),
        "remount" => (true, MsFlags::MS_REMOUNT),
        "mand" => (true, MsFlags::MS_MANDLOCK),
        "nomand" => (false, MsFlags::MS_MANDLOCK),
        "noatime" => (true, MsFlags::MS_NOATIME),
        "atime" => (false, MsFlags::MS_NOATIME),
        "nodiratime" => (true, MsFlags::MS_NODIRATIME),
        "diratime" => (false, MsFlags::MS_NODIRATIME),
        "relatime" => (true, MsFlags::MS_RELATIME),
        "norelatime" => (false, MsFlags::MS_RELATIME),
        "strictatime" => (true, MsFlags::MS_STRICTATIME),
        "nostrictatime" => (false, MsFlags::MS_STRICTATIME),
        "lazytime" => (true, MsFlags::MS_LAZYTIME),
        "nolazytime" => (false, MsFlags::MS_LAZYTIME),
        "iversion" => (true, MsFlags::MS_I_VERSION),
        "noiversion" => (false, MsFlags::MS_I_VERSION),
        "silent" => (true, MsFlags::MS_SILENT),
        "loud" => (false, MsFlags::MS_SILENT),
        "acl" => (true, MsFlags::MS_POSIXACL),
        "noacl" => (false, MsFlags::MS_POSIXACL),
        "nosymfollow" => (true, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "symfollow" => (false, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        _ => return None,
    })
}

/// Propagation words of `mounts[].options` and `linux.rootfsPropagation`.
pub fn propagation(opt: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_and_data_split() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(o.atime_given);
        assert!(o.propagation.is_empty());
    }

    #[test]
    fn devpts_data_kept_in_order() {
        let o = p(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert_eq!(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert!(!o.atime_given);
    }

    #[test]
    fn later_option_wins_and_clear_is_recorded() {
        let o = p(&["ro", "rw", "nosuid", "suid"]);
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(o.cleared, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        let o = p(&["rw", "ro"]);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert!(!o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn rbind_and_propagation() {
        let o = p(&["rbind", "rprivate", "ro", "slave"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(
            o.propagation,
            vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::MS_SLAVE]
        );
        assert_eq!(o.data, "");
    }

    #[test]
    fn idmap_refused_extensions_ignored() {
        assert_eq!(parse(&["idmap".to_string()]), Err("idmap".to_string()));
        assert_eq!(p(&["copy-symlink"]), MountOptions::default());
        assert!(p(&["tmpcopyup"]).copy_up);
    }
}
