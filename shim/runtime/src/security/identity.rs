//! Switching to the container user: additional groups, gid, uid, umask, keeping caps across setuid.
//!
//! Order (credentials(7)): PR_SET_KEEPCAPS first, or setresuid away from uid 0 would clear the
//! permitted set that `caps::apply_sets` still needs; groups and gid before uid, because after the
//! uid change CAP_SETGID is no longer effective. Keepcaps is cleared afterwards, as runc does.
//! In a user namespace made with setgroups=deny (rootless, single-ID map) setgroups(2) always fails
//! with EPERM, so it is skipped and the process keeps the groups it has.

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::User;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("set {what} to {id}: {source}")]
    Set {
        what: &'static str,
        id: u32,
        source: nix::Error,
    },
    #[error("set supplementary groups to {gids:?}: {source}")]
    Groups { gids: Vec<u32>, source: nix::Error },
    #[error("set keepcaps to {on}: {source}")]
    KeepCaps { on: bool, source: nix::Error },
}

/// `setgroups_allowed` is false when the user namespace was made with setgroups=deny.
pub fn switch(user: &User, setgroups_allowed: bool) -> Result<(), IdentityError> {
    keepcaps(true)?;
    if setgroups_allowed {
        let gids = groups(user);
        let list: Vec<Gid> = gids.iter().map(|&g| Gid::from_raw(g)).collect();
        nix::unistd::setgroups(&list).map_err(|source| IdentityError::Groups { gids, source })?;
    }
    let (uid, gid) = (user.uid(), user.gid());
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|source| IdentityError::Set {
        what: "gid",
        id: gid,
        source,
    })?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|source| IdentityError::Set {
        what: "uid",
        id: uid,
        source,
    })?;
    keepcaps(false)?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask & 0o777));
    }
    Ok(())
}

fn keepcaps(on: bool) -> Result<(), IdentityError> {
    nix::sys::prctl::set_keepcaps(on).map_err(|source| IdentityError::KeepCaps { on, source })
}

/// The supplementary group list: `additionalGids` without duplicates. Not the primary gid: runc
/// sets exactly `additionalGids` (the gid is the process's group already), and a program that
/// drops its supplementary groups must not find the gid among them.
pub fn groups(user: &User) -> Vec<u32> {
    let mut out = Vec::new();
    for &g in user.additional_gids().iter().flatten() {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::UserBuilder;

    #[test]
    fn groups_are_additional_gids_without_duplicates() {
        let user = UserBuilder::default()
            .uid(1001u32)
            .gid(1001u32)
            .additional_gids(vec![1002u32, 1003, 1002])
            .build()
            .unwrap();
        assert_eq!(groups(&user), vec![1002, 1003]);
    }

    #[test]
    fn groups_without_additional_gids_is_empty() {
        let user = UserBuilder::default().gid(5u32).build().unwrap();
        assert!(groups(&user).is_empty());
    }

    #[test]
    fn error_names_the_id() {
        let e = IdentityError::Set {
            what: "uid",
            id: 1001,
            source: nix::Error::EPERM,
        };
        assert_eq!(
            e.to_string(),
            "set uid to 1001: EPERM: Operation not permitted"
        );
    }
}
