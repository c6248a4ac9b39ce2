//! Capability sets (bounding, effective, permitted, inheritable, ambient) from the OCI names.
//!
//! Names map by their kernel spelling (`CAP_X`). Like runc, a capability the `caps` crate or the
//! running kernel does not know is skipped with a warning instead of failing, so one config works
//! across kernels. A set missing from `process.capabilities` is the empty set (as in runc).
//!
//! Order and kernel rules (capabilities(7), capset(2)): the bounding set is dropped first, while
//! CAP_SETPCAP is still effective; after the identity switch the sets are written inheritable →
//! effective → permitted, one capset(2) each, because the kernel checks every call against the sets
//! left by the previous one: inheritable may only grow within the old permitted set (still full
//! here), and effective must stay within permitted. Ambient comes last and only holds capabilities
//! that are both permitted and inheritable.

use caps::{CapSet, Capability as KernelCap, CapsHashSet};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("read capability set {set}: {source}")]
    Read {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("drop {cap} from the bounding set: {source}")]
    DropBounding {
        cap: KernelCap,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("set capability set {set} to {caps}: {source}")]
    Set {
        set: &'static str,
        caps: String,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("raise ambient capability {cap}: {source}")]
    RaiseAmbient {
        cap: KernelCap,
        #[source]
        source: caps::errors::CapsError,
    },
}

/// Drops every capability not in `bounding` from the bounding set (needs CAP_SETPCAP, so before
/// setuid). A missing `bounding` is the empty set, as in runc: keeping the full set would let a
/// setuid-root or file-capability binary regain every capability.
///
/// No read of the set first: dropping a capability that is already out of it succeeds. Only a
/// failed drop is checked against the set, so without CAP_SETPCAP a set that already matches is
/// still accepted.
pub fn drop_bounding(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    let supported = supported();
    let keep = caps
        .bounding()
        .as_ref()
        .map(|b| to_kernel(b, "process.capabilities.bounding", &supported))
        .unwrap_or_default();
    let mut drop: Vec<KernelCap> = supported.difference(&keep).copied().collect();
    drop.sort_by_key(|c| c.index());
    for cap in drop {
        if let Err(source) = caps::drop(None, CapSet::Bounding, cap) {
            if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(true) {
                return Err(CapsError::DropBounding { cap, source });
            }
        }
    }
    Ok(())
}

/// Sets effective, permitted, inheritable and ambient sets (after the identity switch).
pub fn apply_sets(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    let supported = supported();
    let set = |c: &Option<Capabilities>, key: &str| {
        c.as_ref()
            .map(|c| to_kernel(c, key, &supported))
            .unwrap_or_default()
    };
    let inheritable = set(caps.inheritable(), "process.capabilities.inheritable");
    let effective = set(caps.effective(), "process.capabilities.effective");
    let permitted = set(caps.permitted(), "process.capabilities.permitted");
    let ambient = set(caps.ambient(), "process.capabilities.ambient");
    write_set(CapSet::Inheritable, "inheritable", &inheritable)?;
    write_set(CapSet::Effective, "effective", &effective)?;
    write_set(CapSet::Permitted, "permitted", &permitted)?;
    apply_ambient(&ambient, &permitted, &inheritable)
}

fn write_set(set: CapSet, name: &'static str, value: &CapsHashSet) -> Result<(), CapsError> {
    caps::set(None, set, value).map_err(|source| CapsError::Set {
        set: name,
        caps: describe(value),
        source,
    })
}

/// Clears the ambient set and raises each wanted capability that the kernel allows (it must be in
/// permitted and inheritable); the others are skipped with a warning, like runc.
fn apply_ambient(
    ambient: &CapsHashSet,
    permitted: &CapsHashSet,
    inheritable: &CapsHashSet,
) -> Result<(), CapsError> {
    if caps::runtime::ambient_set_supported().is_err() {
        if !ambient.is_empty() {
            log::warn!("ambient capabilities are not supported by this kernel; ignoring them");
        }
        return Ok(());
    }
    caps::clear(None, CapSet::Ambient).map_err(|source| CapsError::Set {
        set: "ambient",
        caps: String::new(),
        source,
    })?;
    for cap in sorted(ambient) {
        if !(permitted.contains(&cap) && inheritable.contains(&cap)) {
            // runc's own `spec` lists ambient caps that are not inheritable; it skips them silently,
            // so this is debug, not a warning on every start of such a config.
            log::debug!("ambient capability {cap} skipped: not in both permitted and inheritable");
            continue;
        }
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|source| CapsError::RaiseAmbient { cap, source })?;
    }
    Ok(())
}

/// The capabilities this kernel knows: they are numbered from 0 without gaps, and PR_CAPBSET_READ
/// answers EINVAL past the last one, so a binary search over the `caps` crate's list finds the
/// end in a few calls (one on a kernel that knows them all) instead of one call per capability.
fn supported() -> CapsHashSet {
    static SUPPORTED: std::sync::OnceLock<CapsHashSet> = std::sync::OnceLock::new();
    SUPPORTED
        .get_or_init(|| {
            let mut all = caps::all().into_iter().collect::<Vec<_>>();
            all.sort_by_key(|c| c.index());
            let known = |c: &KernelCap| caps::has_cap(None, CapSet::Bounding, *c).is_ok();
            let n = match all.last() {
                Some(last) if known(last) => all.len(),
                _ => all.partition_point(known),
            };
            all.truncate(n);
            all.into_iter().collect()
        })
        .clone()
}

/// OCI capabilities → the ones this kernel supports; the others are skipped with a warning.
fn to_kernel(oci: &Capabilities, key: &str, supported: &CapsHashSet) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    for cap in oci {
        match kernel_cap(*cap) {
            Some(k) if supported.contains(&k) => {
                out.insert(k);
            }
            Some(k) => log::warn!("{key}: capability {k} is not supported by this kernel, skipped"),
            None => log::warn!("{key}: capability {} is unknown, skipped", oci_name(*cap)),
        }
    }
    out
}

/// The kernel name of an OCI capability ("CAP_SYS_ADMIN").
pub fn oci_name(cap: Capability) -> String {
    format!("CAP_{cap}")
}

/// Maps an OCI capability to the `caps` crate's by name; `None` when that crate does not know it.
pub fn kernel_cap(cap: Capability) -> Option<KernelCap> {
    KernelCap::from_str(&oci_name(cap)).ok()
}

fn sorted(set: &CapsHashSet) -> Vec<KernelCap> {
    let mut v: Vec<KernelCap> = set.iter().copied().collect();
    v.sort_by_key(|c| c.index());
    v
}

fn describe(set: &CapsHashSet) -> String {
    let names: Vec<String> = sorted(set).iter().map(|c| c.to_string()).collect();
    format!("[{}]", names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_cap_round_trips_through_the_oci_name() {
        for k in caps::all() {
            let oci: Capability = serde_json::from_value(serde_json::json!(k.to_string())).unwrap();
            assert_eq!(kernel_cap(oci), Some(k), "{k}");
        }
    }

    #[test]
    fn oci_names_use_the_kernel_spelling() {
        assert_eq!(oci_name(Capability::SysAdmin), "CAP_SYS_ADMIN");
        assert_eq!(oci_name(Capability::NetBindService), "CAP_NET_BIND_SERVICE");
        assert_eq!(
            oci_name(Capability::CheckpointRestore),
            "CAP_CHECKPOINT_RESTORE"
        );
    }

    #[test]
    fn unsupported_caps_are_skipped_not_fatal() {
        let oci: Capabilities = [Capability::Chown, Capability::Bpf, Capability::Kill].into();
        let supported: CapsHashSet = [KernelCap::CAP_CHOWN, KernelCap::CAP_KILL].into();
        let got = to_kernel(&oci, "process.capabilities.effective", &supported);
        assert_eq!(got, supported);
    }

    #[test]
    fn describe_is_sorted_by_number() {
        let set: CapsHashSet = [KernelCap::CAP_KILL, KernelCap::CAP_CHOWN].into();
        assert_eq!(describe(&set), "[CAP_CHOWN,CAP_KILL]");
    }
}
