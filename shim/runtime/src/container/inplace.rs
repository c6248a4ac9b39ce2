//! A container run in place: the calling process becomes the container, as ch-run does. No state
//! directory, no cgroup, no supervising parent, no sync points: unshare, own id maps, the init's
//! steps ([`process::init::in_place`]), execve. Exit status and signals are then the program's own.
//!
//! Only for configs that need nothing a parent would do (see [`blocker`]). The steps, in order:
//! [`InPlace::plan`] (no side effects; a failure leaves the caller free to take the normal path),
//! [`InPlace::unshare`] (nothing changed when it fails), [`InPlace::setup`] (id maps, propagation,
//! a private tmpfs for the caller's bundle files), then [`InPlace::exec`].

use super::create::spec_context;
use super::{ContainerError, CreateOptions, GlobalOptions};
use crate::cgroup::Driver;
use crate::ns::{self, NsPlan};
use crate::process::{self, InitContext, ProcessError};
use crate::{rootfs, spec};
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use std::convert::Infallible;
use std::path::Path;

/// Why `spec` cannot run in place (it needs a parent or a cgroup), or None when it can.
pub fn blocker(g: &GlobalOptions, spec: &Spec, opts: &CreateOptions) -> Option<&'static str> {
    if g.cgroup.driver != Driver::Disabled {
        return Some("a cgroup (someone must remove it afterwards)");
    }
    if opts.pid_file.is_some() || opts.console_socket.is_some() {
        return Some("--pid-file or --console-socket");
    }
    let (Some(process), Some(linux)) = (spec.process(), spec.linux()) else {
        return Some("no process or linux section");
    };
    if process.terminal().unwrap_or(false) {
        return Some("a terminal (the parent proxies it)");
    }
    if spec.hooks().as_ref().is_some_and(has_hooks) {
        return Some("hooks");
    }
    for n in linux.namespaces().iter().flatten() {
        if n.path().is_some() {
            return Some("a namespace to join");
        }
        if n.typ() == LinuxNamespaceType::Pid {
            return Some("a pid namespace (unshare moves only children into it)");
        }
    }
    if spec::namespace(spec, LinuxNamespaceType::User).is_some() {
        let own = |maps: &Option<Vec<LinuxIdMapping>>, id: u32| {
            ns::self_mappable(maps.as_deref().unwrap_or_default(), id)
        };
        // A process may write its own maps only as a single self-map, with setgroups denied;
        // root's maps keep setgroups, which needs a writer outside the namespace.
        if ns::privileged()
            || !own(linux.uid_mappings(), nix::unistd::geteuid().as_raw())
            || !own(linux.gid_mappings(), nix::unistd::getegid().as_raw())
        {
            return Some("id maps that only a parent can write");
        }
    }
    None
}

fn has_hooks(h: &oci_spec::runtime::Hooks) -> bool {
    let any = |l: &Option<Vec<oci_spec::runtime::Hook>>| l.as_ref().is_some_and(|l| !l.is_empty());
    #[allow(deprecated)]
    let prestart = any(h.prestart());
    prestart
        || any(h.create_runtime())
        || any(h.create_container())
        || any(h.start_container())
        || any(h.poststart())
        || any(h.poststop())
}

/// A planned in-place run: everything the init needs, built before any namespace is left.
#[derive(Debug)]
pub struct InPlace {
    ctx: InitContext,
    uid_maps: Vec<LinuxIdMapping>,
    gid_maps: Vec<LinuxIdMapping>,
}

impl InPlace {
    /// Plans the run of `spec` from `bundle` (which need not exist yet). Check [`blocker`] first.
    pub fn plan(spec: &Spec, bundle: &Path, opts: &CreateOptions) -> Result<Self, ContainerError> {
        let linux = spec.linux().clone().unwrap_or_default();
        let process = spec.process().clone().unwrap_or_default();
        let ns_plan = NsPlan::from_spec(spec)?;
        if !ns_plan.has_mount_ns() {
            return Err(ContainerError::Usage("run in place: no mount namespace"));
        }
        let userns = ns_plan.new_userns();
        let rootfs_plan = rootfs::plan(
            spec,
            bundle,
            &rootfs::Options {
                rootless: !nix::unistd::geteuid().is_root() || ns::in_user_ns() || userns,
                userns,
                no_pivot: opts.no_pivot,
            },
        )?;
        let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
        let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
        let setgroups_allowed = !userns || !ns::setgroups_denied(&gid_maps);
        let ctx = spec_context(spec, process, ns_plan, rootfs_plan, opts, setgroups_allowed)?;
        Ok(InPlace {
            ctx,
            uid_maps,
            gid_maps,
        })
    }

    /// Moves the calling process into the new namespaces (all but time, which [`InPlace::exec`]
    /// enters). The process must be single-threaded. On failure nothing has changed.
    pub fn unshare(&self) -> Result<(), ContainerError> {
        nix::sched::unshare(self.ctx.ns.clone_flags).map_err(|source| ContainerError::Sys {
            op: "unshare namespaces",
            source,
        })
    }

    /// After [`InPlace::unshare`]: writes our own id maps, keeps our mounts from propagating to the
    /// host, and mounts a tmpfs on `scratch` (an existing directory) that only this mount namespace
    /// sees: the caller writes its bundle files there, and nothing is left on disk at exit.
    pub fn setup(&self, scratch: &Path) -> Result<(), ContainerError> {
        if self.ctx.ns.new_userns() {
            // Single self-maps (checked by [`blocker`]): written directly, setgroups denied
            // first, as the kernel requires of an unprivileged writer.
            for (file, text) in [
                ("uid_map", ns::map_text(&self.uid_maps)),
                ("setgroups", "deny".to_string()),
                ("gid_map", ns::map_text(&self.gid_maps)),
            ] {
                let path = std::path::PathBuf::from(format!("/proc/self/{file}"));
                std::fs::write(&path, text)
                    .map_err(|source| ns::NsError::WriteMap { path, source })?;
            }
        }
        let sys = |op: &'static str| move |source| ContainerError::Sys { op, source };
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("make / a slave mount"))?;
        nix::mount::mount(
            Some("tmpfs"),
            scratch,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("mode=0700,size=16m"),
        )
        .map_err(|source| ContainerError::Io {
            op: "mount tmpfs on",
            path: scratch.to_path_buf(),
            source: source.into(),
        })
    }

    /// Sets the container up in this process and execs its program (returns only on error). The
    /// bundle files must be in place: the config is validated against them first.
    pub fn exec(self, spec: &Spec, bundle: &Path) -> Result<Infallible, ContainerError> {
        spec::validate(spec, bundle)?;
        let Err(e) = process::init::in_place(&self.ctx);
        Err(ContainerError::Process(ProcessError::Init(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn global(driver: Driver) -> GlobalOptions {
        GlobalOptions {
            root: "/nonexistent".into(),
            rootless: true,
            cgroup: crate::cgroup::Options {
                driver,
                ..Default::default()
            },
        }
    }

    fn spec(edit: impl FnOnce(&mut serde_json::Value)) -> Spec {
        let mut v = json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "network"}]}
        });
        edit(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_mount_namespace_without_cgroup_runs_in_place() {
        let g = global(Driver::Disabled);
        assert_eq!(blocker(&g, &spec(|_| {}), &CreateOptions::default()), None);
    }

    #[test]
    fn anything_a_parent_does_blocks() {
        let g = global(Driver::Disabled);
        let opts = CreateOptions::default();
        let blocked = |s: Spec| blocker(&g, &s, &opts).is_some();
        assert!(blocker(&global(Driver::Cgroupfs), &spec(|_| {}), &opts).is_some());
        assert!(blocked(spec(|v| v["process"]["terminal"] = json!(true))));
        assert!(blocked(spec(|v| {
            v["hooks"] = json!({"poststop": [{"path": "/bin/true"}]})
        })));
        assert!(blocked(spec(|v| {
            v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}])
        })));
        assert!(blocked(spec(|v| {
            v["linux"]["namespaces"] =
                json!([{"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}])
        })));
        let pid_file = CreateOptions {
            pid_file: Some("/tmp/pid".into()),
            ..CreateOptions::default()
        };
        assert!(blocker(&g, &spec(|_| {}), &pid_file).is_some());
        // Maps of ids other than our own need newuidmap or a privileged parent.
        assert!(blocked(spec(|v| {
            v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "user"}]);
            v["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        })));
    }
}
