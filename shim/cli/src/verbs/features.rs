//! `husk features` (the OCI features document, truthful about what husk does) and `--version`.

use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct FeaturesArgs {}

/// `husk version X` / `commit: Y` / `spec: Z`, the lines Docker and containerd parse.
pub fn version_text() -> String {
    format!(
        "husk version {}\ncommit: {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("HUSK_COMMIT"),
        oci_spec::runtime::VERSION
    )
}

pub fn features() -> serde_json::Value {
    let caps: Vec<String> = oci_caps();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "iversion",
            "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion",
            "nolazytime", "nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow",
            "private", "ratime", "rbind", "rdev", "rdiratime", "relatime", "remount", "rexec",
            "rnoatime", "rnodev", "rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime",
            "rnosuid", "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw", "rshared",
            "rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw", "shared",
            "silent", "slave", "strictatime", "suid", "symfollow", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
            },
            "apparmor": {"enabled": true},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.husk.version": env!("CARGO_PKG_VERSION"),
            "org.opencontainers.runtime-spec.features.husk.commit": env!("HUSK_COMMIT"),
            "org.opencontainers.runtime-spec.features.husk.cgroupv2-devices": "enforced as root by a BPF_PROG_TYPE_CGROUP_DEVICE program (cgroupfs and systemd drivers, replaced on update); rootless: not attached (the user namespace refuses mknod)",
            "org.opencontainers.runtime-spec.features.husk.annotation.run.husk.landlock.write":
                "PATH[:PATH...]: Landlock limits writes to these container paths (and the standard devices); best effort by kernel ABI, a warning without Landlock",
            "org.opencontainers.runtime-spec.features.husk.annotation.run.husk.rootfs.early-readonly":
                "true: every mount point exists in the rootfs and /dev is a mount; a read-only root is made read-only before the mounts, so nothing is ever created in it"
        }
    })
}

fn oci_caps() -> Vec<String> {
    let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

pub fn run(_: FeaturesArgs) -> anyhow::Result<i32> {
    println!("{}", serde_json::to_string_pretty(&features())?);
    Ok(0)
}
