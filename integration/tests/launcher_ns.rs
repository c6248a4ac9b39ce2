//! The launcher's namespace flags, seen from inside with the probe: `--hostname`, `--ipc`,
//! `--net host|none`. The default profile (hpc) shares the host's network, ipc and uts.

use crate::both;
use crate::harness::{host, host_ns, Ctx, Probe};

both!(
    hostname_gets_its_own_uts_namespace,
    ipc_is_the_hosts_unless_asked,
    net_host_and_none,
);

fn probe(t: &Ctx, flags: &[&str]) -> Probe {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[host().rootfs.to_str().unwrap(), "/bin/husk-probe"]);
    t.rt(&args).ok().probe()
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn hostname_gets_its_own_uts_namespace(t: &Ctx) {
    let p = probe(t, &[]);
    assert_eq!(p.ns("uts"), host_ns("self", "uts"), "{}", p.0);
    assert_eq!(p.get("hostname").as_str(), Some(host_hostname().as_str()));
    let p = probe(t, &["--hostname", "husk-it-box"]);
    assert_ne!(p.ns("uts"), host_ns("self", "uts"), "{}", p.0);
    assert_eq!(p.get("hostname").as_str(), Some("husk-it-box"), "{}", p.0);
    // The host's name is untouched.
    assert_ne!(host_hostname(), "husk-it-box");
    t.assert_nothing_left();
}

fn ipc_is_the_hosts_unless_asked(t: &Ctx) {
    let host_ipc = host_ns("self", "ipc");
    let p = probe(t, &[]);
    assert_eq!(p.ns("ipc"), host_ipc, "{}", p.0);
    // A bare --ipc before the IMAGE (Apptainer's flag) still means a new namespace.
    for flags in [
        &["--ipc"][..],
        &["--ipc", "private"],
        &["--ipc=private"],
        &["--containall"],
    ] {
        let p = probe(t, flags);
        assert_ne!(p.ns("ipc"), host_ipc, "{flags:?}: {}", p.0);
    }
    // host: the host's, also over --containall and a profile with its own.
    for flags in [
        &["--ipc", "host"][..],
        &["--ipc=host"],
        &["--containall", "--ipc", "host"],
        &["--profile", "default", "--ipc=host"],
    ] {
        let p = probe(t, flags);
        assert_eq!(p.ns("ipc"), host_ipc, "{flags:?}: {}", p.0);
    }
    assert_ne!(probe(t, &["--profile", "default"]).ns("ipc"), host_ipc);
    // The other verbs read the mode the same way.
    let img = host().rootfs.to_str().unwrap();
    let ns = |out: crate::harness::Out| out.ok().probe().ns("ipc");
    assert_eq!(
        ns(t.rt(&["run", "--ipc", "host", img, "/bin/husk-probe"])),
        host_ipc
    );
    assert_ne!(
        ns(t.rt(&["run", "--ipc", img, "/bin/husk-probe"])),
        host_ipc
    );
    let shell = |flags: &[&str]| {
        let mut args = vec!["shell", "--shell", "/bin/husk-probe"];
        args.extend_from_slice(flags);
        args.push(img);
        ns(t.rt_stdin(&args, ""))
    };
    assert_eq!(shell(&["--ipc", "host"]), host_ipc);
    assert_ne!(shell(&["--ipc"]), host_ipc);
    // A bad mode is a one-line usage error.
    let out = t.rt(&["exec", "--ipc=shared", img, "true"]).code(2);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    assert!(out.stderr.contains("--ipc"), "{out}");
    t.rt(&["shell", "--ipc", "host", img, "extra"]).code(2);
    t.assert_nothing_left();
}

fn net_host_and_none(t: &Ctx) {
    let host_net = host_ns("self", "net");
    assert_eq!(probe(t, &[]).ns("net"), host_net);
    assert_ne!(probe(t, &["--net", "none"]).ns("net"), host_net);
    // A profile with its own network namespace, and --net host taking it away again.
    assert_ne!(probe(t, &["--profile", "default"]).ns("net"), host_net);
    let p = probe(t, &["--profile", "default", "--net", "host"]);
    assert_eq!(p.ns("net"), host_net, "{}", p.0);
    t.assert_nothing_left();
}
