//! POSIX rlimits from `process.rlimits`, set with setrlimit(2) in the container child.
//!
//! Names map by their kernel spelling (RLIMIT_NOFILE). Lowering is always allowed; raising a hard
//! limit above the current one needs CAP_SYS_RESOURCE in the user namespace that owns the process,
//! so that failure is reported with the current hard limit to make the cause obvious.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use oci_spec::runtime::PosixRlimit;

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("set rlimit {name} to {soft}/{hard}: {source}")]
    Set {
        name: String,
        soft: u64,
        hard: u64,
        source: nix::Error,
    },
    #[error(
        "set rlimit {name} to {soft}/{hard}: hard limit is {current_hard} and raising it needs \
         CAP_SYS_RESOURCE: {source}"
    )]
    RaiseHard {
        name: String,
        soft: u64,
        hard: u64,
        current_hard: u64,
        source: nix::Error,
    },
    #[error("map process.rlimits type {name}: unknown rlimit")]
    Unknown { name: String },
}

/// Applies every entry of `process.rlimits`, in order.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<(), RlimitError> {
    for rlimit in rlimits {
        let name = rlimit.typ().to_string();
        let resource = resource(&name)?;
        let (soft, hard) = (rlimit.soft(), rlimit.hard());
        if let Err(source) = setrlimit(resource, soft, hard) {
            let current_hard = getrlimit(resource).map(|(_, h)| h).ok();
            return Err(match current_hard {
                Some(current_hard) if source == nix::Error::EPERM && hard > current_hard => {
                    RlimitError::RaiseHard {
                        name,
                        soft,
                        hard,
                        current_hard,
                        source,
                    }
                }
                _ => RlimitError::Set {
                    name,
                    soft,
                    hard,
                    source,
                },
            });
        }
    }
    Ok(())
}

/// "RLIMIT_NOFILE" → the resource; every Linux rlimit is known.
pub fn resource(name: &str) -> Result<Resource, RlimitError> {
    Ok(match name {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        _ => {
            return Err(RlimitError::Unknown {
                name: name.to_string(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::PosixRlimitType;

    const ALL: [&str; 16] = [
        "RLIMIT_AS",
        "RLIMIT_CORE",
        "RLIMIT_CPU",
        "RLIMIT_DATA",
        "RLIMIT_FSIZE",
        "RLIMIT_LOCKS",
        "RLIMIT_MEMLOCK",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_NOFILE",
        "RLIMIT_NPROC",
        "RLIMIT_RSS",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
        "RLIMIT_SIGPENDING",
        "RLIMIT_STACK",
    ];

    #[test]
    fn every_oci_rlimit_type_maps() {
        for name in ALL {
            let typ: PosixRlimitType = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(typ.to_string(), name);
            assert!(resource(&typ.to_string()).is_ok(), "{name}");
        }
        assert_eq!(resource("RLIMIT_NOFILE").unwrap(), Resource::RLIMIT_NOFILE);
        assert_eq!(resource("RLIMIT_RTTIME").unwrap(), Resource::RLIMIT_RTTIME);
    }

    #[test]
    fn unknown_name_names_the_key() {
        let err = resource("RLIMIT_BOGUS").unwrap_err();
        assert!(matches!(err, RlimitError::Unknown { ref name } if name == "RLIMIT_BOGUS"));
        assert_eq!(
            err.to_string(),
            "map process.rlimits type RLIMIT_BOGUS: unknown rlimit"
        );
        assert!(
            resource("rlimit_nofile").is_err(),
            "names are case-sensitive"
        );
    }

    #[test]
    fn empty_list_is_a_no_op() {
        apply(&[]).unwrap();
    }
}
