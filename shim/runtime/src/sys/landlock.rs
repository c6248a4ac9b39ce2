//! The three Landlock syscalls (landlock(7), linux/landlock.h). No crate: the engine needs only
//! "create a ruleset, add path-beneath rules, restrict self", plus the ABI version to decide which
//! access rights exist, and reports exactly what it applied.

use nix::errno::Errno;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
const CREATE_RULESET_VERSION: libc::c_uint = 1;
/// `LANDLOCK_RULE_PATH_BENEATH`.
const RULE_PATH_BENEATH: libc::c_int = 1;

/// `struct landlock_ruleset_attr`, first field only: the kernel accepts the ABI-1 size, and the
/// net/scope fields that later ABIs added are left unhandled (zero) by not passing them.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the UAPI header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel implements (1 for Linux 5.13, ...). ENOSYS: built without
/// Landlock; EOPNOTSUPP: built with it but not enabled at boot (`lsm=`).
pub fn abi_version() -> nix::Result<u32> {
    // SAFETY: with a NULL attr, size 0 and the VERSION flag the kernel reads no memory and returns
    // the ABI version as the result.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    Errno::result(ret).map(|v| v as u32)
}

/// A new ruleset handling the filesystem access rights in `handled_fs`.
pub fn create_ruleset(handled_fs: u64) -> nix::Result<OwnedFd> {
    let attr = RulesetAttr {
        handled_access_fs: handled_fs,
    };
    // SAFETY: the pointer and size describe `attr`, a live local the kernel only reads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0 as libc::c_uint,
        )
    };
    let fd = Errno::result(ret)? as libc::c_int;
    // SAFETY: the kernel just returned `fd`, a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Allows `access` beneath `parent` (an O_PATH fd of a directory or file) in `ruleset`.
pub fn add_path_rule(
    ruleset: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    access: u64,
) -> nix::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: the pointer refers to `attr`, a live local of the packed layout the UAPI defines; the
    // kernel only reads it. Both fds are borrowed and stay open across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0 as libc::c_uint,
        )
    };
    Errno::result(ret).map(drop)
}

/// Enforces `ruleset` on the calling thread and its future children (needs no_new_privs or
/// CAP_SYS_ADMIN in the current user namespace).
pub fn restrict_self(ruleset: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: takes an fd and flags by value; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            ruleset.as_raw_fd(),
            0 as libc::c_uint,
        )
    };
    Errno::result(ret).map(drop)
}
