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
    /// `rro`, `rnosuid`, ... (runc's recursive options): mount_setattr(2) attributes applied with
    /// AT_RECURSIVE to the mount and every mount below it once it is in place.
    pub recursive: RecursiveAttrs,
}

/// `struct mount_attr`'s attr_set and attr_clr (MOUNT_ATTR_* bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    pub set: u64,
    pub clear: u64,
}

impl RecursiveAttrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }
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
            recursive: RecursiveAttrs::default(),
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
        if let Some((set, attr)) = recursive(opt) {
            let r = &mut out.recursive;
            if set {
                r.set |= attr;
                r.clear &= !attr;
            } else {
                r.clear |= attr;
                r.set &= !attr;
            }
            // mount_setattr(2): an access-time mode in attr_set needs the whole MOUNT_ATTR__ATIME
            // field in attr_clr; clearing one also resets the field (to relatime).
            if attr & MOUNT_ATTR__ATIME == attr {
                r.clear |= MOUNT_ATTR__ATIME;
            }
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

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x20_0000;

/// (set?, MOUNT_ATTR_*) for runc's recursive option words (linux/mount.h values).
fn recursive(opt: &str) -> Option<(bool, u64)> {
    Some(match opt {
        "rro" => (true, MOUNT_ATTR_RDONLY),
        "rrw" => (false, MOUNT_ATTR_RDONLY),
        "rnosuid" => (true, MOUNT_ATTR_NOSUID),
        "rsuid" => (false, MOUNT_ATTR_NOSUID),
        "rnodev" => (true, MOUNT_ATTR_NODEV),
        "rdev" => (false, MOUNT_ATTR_NODEV),
        "rnoexec" => (true, MOUNT_ATTR_NOEXEC),
        "rexec" => (false, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (true, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (false, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (true, MOUNT_ATTR_RELATIME),
        "rnorelatime" => (false, MOUNT_ATTR_RELATIME),
        "rnoatime" => (true, MOUNT_ATTR_NOATIME),
        "ratime" => (false, MOUNT_ATTR_NOATIME),
        "rstrictatime" => (true, MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (false, MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (true, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (false, MOUNT_ATTR_NOSYMFOLLOW),
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
    fn recursive_words_become_mount_attrs() {
        let o = p(&[
            "rbind",
            "rro",
            "rnosuid",
            "rnodev",
            "rnoexec",
            "rnosymfollow",
        ]);
        assert_eq!(o.recursive.set, 0x1 | 0x2 | 0x4 | 0x8 | 0x20_0000);
        assert_eq!(o.recursive.clear, 0);
        assert_eq!(o.data, "", "not passed to mount(2) as data");
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        // Later words win; an atime mode also clears the whole atime field.
        let o = p(&["rro", "rrw", "rnoatime"]);
        assert_eq!(o.recursive.set, MOUNT_ATTR_NOATIME);
        assert_eq!(o.recursive.clear, MOUNT_ATTR_RDONLY | MOUNT_ATTR__ATIME);
        let o = p(&["rrelatime"]);
        assert_eq!(
            o.recursive,
            RecursiveAttrs {
                set: 0,
                clear: MOUNT_ATTR__ATIME
            }
        );
        let o = p(&["rstrictatime", "rnodiratime"]);
        assert_eq!(
            o.recursive.set,
            MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_NODIRATIME
        );
        assert_eq!(o.recursive.clear, MOUNT_ATTR__ATIME);
        assert!(p(&["ro"]).recursive.is_empty());
    }

    #[test]
    fn idmap_refused_extensions_ignored() {
        assert_eq!(parse(&["idmap".to_string()]), Err("idmap".to_string()));
        assert_eq!(p(&["copy-symlink"]), MountOptions::default());
        assert!(p(&["tmpcopyup"]).copy_up);
    }
}
