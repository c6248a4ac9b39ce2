//! Writes outside the workspace (image, /proc/sys, /sys, /dev, cgroups), /proc/self/exe, leaked
//! fds, the terminal, core dumps and symlink tricks on the workspace.

use super::*;
use crate::both;

both!(
    write_outside_the_workspace,
    write_proc_sys_and_sysrq,
    write_sys,
    dev_mem_kmem_and_block_devices,
    cgroup_escape,
    proc_self_exe_overwrite,
    leaked_fds,
    tty_injection_through_stdin,
    core_dump,
    symlink_swapped_result_file,
    symlink_in_the_default_workspace,
);

fn write_outside_the_workspace(t: &Ctx) {
    let tag = t.id("w");
    let targets = [
        format!("/evil-{tag}"),
        format!("/usr/evil-{tag}"),
        format!("/etc/evil-{tag}"),
        format!("/bin/evil-{tag}"),
        format!("/var/evil-{tag}"),
        format!("/root/evil-{tag}"),
        "/etc/passwd".to_string(),
        "/bin/busybox".to_string(),
    ];
    let mut script = String::new();
    for p in &targets {
        script += &format!("husk-probe write {p} pwned; ");
    }
    script += &format!(
        "husk-probe write /tmp/evil-{tag} x; husk-probe write /dev/evil-{tag} x; \
         husk-probe write /workspace/ok-{tag} x; t mknod /tmp/sda-{tag} b 8 0"
    );
    let rootfs_before = fs::read_dir(&host().rootfs).unwrap().count();
    let busybox_before = sha(&host().rootfs.join("bin/busybox"));
    let a = busybox(t, "write_outside", &script, &[]);
    for p in &targets {
        a.blocked(
            &format!("write {p}"),
            &["EROFS", "EACCES", "EPERM"],
            "read-only image root",
        );
    }
    // /tmp and /dev are the sandbox's own tmpfs: writable inside, never the host's.
    for (inside, host_path) in [
        (format!("write /tmp/evil-{tag}"), format!("/tmp/evil-{tag}")),
        (format!("write /dev/evil-{tag}"), format!("/dev/evil-{tag}")),
    ] {
        assert!(
            !Path::new(&host_path).exists(),
            "{}: {host_path} on the host",
            a.label
        );
        if let Some(tr) = a.tries.iter().find(|t| t.what == inside) {
            a.say(format!(
                "{inside} → {}: the sandbox's own tmpfs; host {host_path} absent",
                if tr.ok { "ok" } else { &tr.errno }
            ));
        }
    }
    a.blocked("mknod", &["EPERM"], "no CAP_MKNOD");
    assert!(
        workspace(t).join(format!("ok-{tag}")).exists(),
        "{}: the workspace is not writable: {}",
        a.label,
        a.dump()
    );
    for p in &targets[..6] {
        let on_host = host().rootfs.join(p.trim_start_matches('/'));
        assert!(
            !on_host.exists(),
            "{}: {} written",
            a.label,
            on_host.display()
        );
    }
    assert_eq!(
        fs::read_dir(&host().rootfs).unwrap().count(),
        rootfs_before,
        "{}",
        a.label
    );
    assert!(
        sha(&host().rootfs.join("bin/busybox")) == busybox_before,
        "{}: busybox changed",
        a.label
    );
    a.say("image unchanged; only the workspace got a file");
}

fn write_proc_sys_and_sysrq(t: &Ctx) {
    let knob = "/proc/sys/kernel/printk_ratelimit";
    let before = fs::read_to_string(knob).unwrap();
    let other = if before.trim() == "7" { "8" } else { "7" };
    let script = format!(
        "husk-probe write {knob} {other}; husk-probe open /proc/sysrq-trigger w; \
         husk-probe open /proc/sys/kernel/sysrq w; husk-probe open /proc/sys/kernel/core_pattern w; \
         husk-probe open /proc/sys/vm/overcommit_memory w; husk-probe open /proc/sys/fs/binfmt_misc/register w"
    );
    let a = busybox(t, "proc_sys", &script, &[]);
    let after = fs::read_to_string(knob).unwrap();
    if after != before {
        let _ = fs::write(knob, &before);
        panic!(
            "{}: ESCAPED: the sandbox changed the host's {knob}",
            a.label
        );
    }
    a.blocked(
        "write /proc/sys",
        &["EROFS", "EACCES"],
        "/proc/sys is read-only (runc's readonlyPaths)",
    );
    a.blocked(
        "open /proc/sys/",
        &["EROFS", "EACCES", "ENOENT"],
        "/proc/sys is read-only",
    );
    a.blocked(
        "open /proc/sysrq-trigger",
        &["EROFS", "EACCES", "ENOENT"],
        "/proc/sysrq-trigger is read-only (or absent)",
    );
    a.say(format!("host {knob} unchanged ({})", before.trim()));
}

fn write_sys(t: &Ctx) {
    let script = "for p in /sys/kernel/uevent_helper /sys/kernel/mm/transparent_hugepage/enabled \
        /sys/class/net/lo/mtu /sys/power/state /sys/kernel/profiling /sys/module/printk/parameters/time \
        /sys/firmware/efi/efivars/x; do husk-probe open $p w; done; husk-probe write /sys/evil x";
    let a = busybox(t, "write_sys", script, &[]);
    a.blocked(
        "open /sys",
        &["EROFS", "EACCES", "ENOENT"],
        "sysfs mounted read-only; /sys/firmware masked",
    );
    a.blocked("write /sys", &["EROFS", "EACCES"], "sysfs read-only");
    assert!(
        a.tries.iter().any(|t| t.errno == "EROFS"),
        "{}: nothing hit the read-only sysfs: {}",
        a.label,
        a.dump()
    );
}

fn dev_mem_kmem_and_block_devices(t: &Ctx) {
    let mut devs = vec![
        "/dev/mem".to_string(),
        "/dev/kmem".into(),
        "/dev/port".into(),
        "/dev/kmsg".into(),
        "/dev/sda".into(),
        "/dev/vda".into(),
        "/dev/nvme0n1".into(),
        "/dev/loop0".into(),
        "/dev/loop-control".into(),
        "/dev/mapper/control".into(),
        "/dev/fuse".into(),
        "/dev/net/tun".into(),
    ];
    // The host's real disks, by name.
    for e in fs::read_dir("/sys/class/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        devs.push(format!("/dev/{}", e.file_name().to_string_lossy()));
    }
    let mut script = String::new();
    for d in &devs {
        script += &format!("husk-probe open {d} r; ");
    }
    script += "t mknod /tmp/mem c 1 1; t mknod /dev/vda2 b 254 0; t devmem 0x1000; \
        echo x > /tmp/node 2>/dev/null; husk-probe open /proc/self/root/dev/mem r";
    let a = busybox(t, "dev_mem", &script, &[]);
    a.blocked(
        "open /dev/",
        &["ENOENT"],
        "minimal /dev: null, zero, full, random, urandom, tty, pts, shm only",
    );
    a.blocked(
        "mknod",
        &["EPERM", "EACCES"],
        "no CAP_MKNOD; /tmp and /dev/shm are nodev; Landlock refuses new files in /dev (EACCES)",
    );
    a.blocked_or(
        "devmem",
        &["ENOENT", "EPERM", "EACCES"],
        "no /dev/mem",
        "impossible",
    );
    assert!(
        !a.tries.iter().any(|t| t.what.starts_with("devmem") && t.ok),
        "{}: devmem read memory",
        a.label
    );
}

fn cgroup_escape(t: &Ctx) {
    let script = "f before \"$(cat /proc/self/cgroup)\"; \
        for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/*/tasks; do \
          [ -e \"$f\" ] && husk-probe write \"$f\" $$; done; \
        husk-probe write /sys/fs/cgroup/cgroup.procs $$; \
        mkdir -p /tmp/cg; t mount -t cgroup2 none /tmp/cg; \
        t mount -t cgroup -o memory,release_agent=/workspace/x none /tmp/cg; \
        f after \"$(cat /proc/self/cgroup)\"";
    let a = busybox(t, "cgroup_escape", script, &[]);
    a.blocked(
        "write /sys/fs/cgroup",
        &["EROFS", "ENOENT", "EACCES"],
        "no cgroupfs in the sandbox; /sys read-only",
    );
    a.blocked(
        "mount",
        &["EPERM"],
        "seccomp/no CAP_SYS_ADMIN: no cgroupfs (and no release_agent, CVE-2022-0492)",
    );
    assert_eq!(a.fact("before"), a.fact("after"), "{}", a.dump());
    a.say(format!("cgroup unchanged: {}", a.fact("after")));
}

fn proc_self_exe_overwrite(t: &Ctx) {
    let husk_before = sha(&host().runtime);
    let python_bin = debian().join("usr/bin/python3.11");
    let py_meta = fs::metadata(&python_bin)
        .ok()
        .map(|m| (m.mtime(), m.size()));
    let a = python(t, "exe_overwrite", &[], &[]);
    a.blocked(
        "open",
        &["ETXTBSY", "EROFS", "EACCES"],
        "the binary is running (ETXTBSY), the image is read-only, not the caller's file",
    );
    a.blocked_or(
        "reopen",
        &["ETXTBSY", "EROFS", "EACCES"],
        "same",
        "impossible",
    );
    assert!(
        sha(&host().runtime) == husk_before,
        "{}: husk changed",
        a.label
    );
    assert_eq!(
        fs::metadata(&python_bin)
            .ok()
            .map(|m| (m.mtime(), m.size())),
        py_meta,
        "{}",
        a.label
    );
    a.say(
        "no husk process is visible inside (its init is the program); husk and the image unchanged",
    );
}

fn leaked_fds(t: &Ctx) {
    let hostdir = t.mkdir(&t.dir.join("host-only"));
    fs::write(hostdir.join("host-secret"), "x").unwrap();
    let fds = (3..10)
        .map(|n| {
            (
                n,
                std::os::fd::OwnedFd::from(fs::File::open(&hostdir).unwrap()),
            )
        })
        .collect();
    let launch = Launch {
        fds,
        ..Launch::default()
    };
    let a = python_with(t, "leaked_fds", &[], &[], &launch);
    assert_eq!(
        a.fact("open_fds"),
        &serde_json::json!([0, 1, 2]),
        "{}",
        a.dump()
    );
    for (n, target) in a.fact("targets").as_object().unwrap() {
        let tg = target.as_str().unwrap();
        assert!(
            tg == "/dev/null" || tg.starts_with("pipe:"),
            "{}: fd {n} is {tg}",
            a.label
        );
    }
    a.blocked(
        "openat(fd 3",
        &["EBADF"],
        "husk closes every fd but stdio before exec",
    );
    a.say("husk was started with a host directory on fds 3..9 → the program has 0, 1, 2 only (/dev/null and husk's pipes)");
}

/// husk's stdin is the caller's terminal (an interactive run): TIOCSTI would type commands into
/// the caller's shell for it to run after the sandbox ends.
fn tty_injection_through_stdin(t: &Ctx) {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut raw = tcgetattr(&pty.slave).unwrap();
    cfmakeraw(&mut raw);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &raw).unwrap();
    let ours = pty.slave.try_clone().unwrap();
    // The caller's shell: a host session whose controlling terminal this is.
    let session = Command::new("setsid")
        .args(["--ctty", "sleep", "600"])
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let session = Kill(session);
    let sid = session.0.id();
    t.wait_for("the host session to own the terminal", || {
        // Field 7 of /proc/PID/stat: tty_nr, non-zero once it has a controlling terminal.
        fs::read_to_string(format!("/proc/{sid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(") ")?.1.to_string();
                rest.split_whitespace().nth(4).map(|v| v != "0")
            })
            .unwrap_or(false)
    });
    let launch = Launch {
        fds: vec![(0, pty.slave)],
        ..Launch::default()
    };
    let a = python_with(t, "tty_inject", &[], &[], &launch);
    assert_eq!(
        a.fact("isatty"),
        true,
        "{}: stdin is no terminal: {}",
        a.label,
        a.dump()
    );
    a.blocked(
        "ioctl(0, TIOCSTI",
        &["EPERM", "EIO"],
        "the program runs in its own session (setsid): the terminal is not its controlling tty",
    );
    a.blocked(
        "ioctl(0, TIOCSCTTY",
        &["EPERM"],
        "it is the caller's session's terminal; stealing needs CAP_SYS_ADMIN",
    );
    // Nothing reached the terminal's input queue.
    let flags = nix::fcntl::fcntl(ours.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(ours.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
    let mut buf = [0u8; 64];
    match nix::unistd::read(ours.as_raw_fd(), &mut buf) {
        Err(nix::errno::Errno::EAGAIN) => {}
        other => panic!("{}: ESCAPED: the terminal got input: {other:?}", a.label),
    }
    a.say("the terminal's input queue is empty");
}

fn core_dump(t: &Ctx) {
    let a = python(t, "core_dump", &[], &[]);
    assert_eq!(
        a.fact("RLIMIT_CORE"),
        &serde_json::json!([0, 0]),
        "{}",
        a.dump()
    );
    a.blocked("prlimit64(RLIMIT_CORE", &["EPERM"], "hard RLIMIT_CORE 0");
    a.blocked(
        "open /proc/sys/kernel/core_pattern",
        &["EROFS", "EACCES"],
        "/proc/sys read-only: core_pattern cannot become a host-side pipe",
    );
    assert_eq!(a.fact("child_signal"), 6, "{}", a.dump());
    assert_eq!(a.fact("core_dumped"), false, "{}", a.dump());
    let cores: Vec<_> = fs::read_dir(workspace(t))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "{}: core files {cores:?}", a.label);
    a.say("abort() in a child → SIGABRT, no core dumped, none in the workspace: RLIMIT_CORE 0");
}

fn symlink_swapped_result_file(t: &Ctx) {
    let ws = workspace(t);
    let victim = t.dir.join("victim.txt");
    fs::write(&victim, "precious\n").unwrap();
    // Rootless, husk runs as the test user: a victim it may write makes the attack real.
    t.give(&victim);
    let victim_dir = t.mkdir(&t.dir.join("victim-dir"));
    // Root's sandbox runs as an unprivileged host id: let it swap this directory too, so the
    // attack really happens (rootless, the program is the owner anyway).
    let open_out = |dir: &std::path::Path| {
        t.mkdir(dir);
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        dir.to_path_buf()
    };
    let out_dir = open_out(&ws.join("out"));
    let result = ws.join("result.json");
    let nested = out_dir.join("result.json");
    let script = format!(
        "rm -f /workspace/result.json; ln -s {} /workspace/result.json; \
         rm -rf /workspace/out; ln -s {} /workspace/out; echo swapped",
        victim.display(),
        victim_dir.display()
    );
    for (path, what) in [(&result, "result.json"), (&nested, "out/result.json")] {
        let args = [
            "exec",
            "--sandbox",
            "--workspace",
            ws.to_str().unwrap(),
            "--result",
            path.to_str().unwrap(),
            host().rootfs.to_str().unwrap(),
            "sh",
            "-c",
            &script,
        ];
        let out = t.rt(&args);
        let l = label(t, "symlink_result");
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "{l}: {out}"
        );
        assert!(
            fs::read_dir(&victim_dir).unwrap().next().is_none(),
            "{l}: husk wrote into {}: {out}",
            victim_dir.display()
        );
        // Issue 12: a record the program could append to or replace is refused outright.
        assert_eq!(out.code, 2, "{l}: {out}");
        assert!(out.stderr.contains("inside the workspace"), "{l}: {out}");
        println!(
            "{l}: --result {what} inside the workspace (the program could swap it for a symlink to a host file/dir) → usage error {}, nothing run; the victim untouched",
            out.code
        );
        // Put the workspace back for the second round.
        let _ = fs::remove_file(&result);
        let _ = fs::remove_file(ws.join("out"));
        open_out(&out_dir);
    }
}

fn symlink_in_the_default_workspace(t: &Ctx) {
    let victim_dir = t.mkdir(&t.dir.join("victim-dir"));
    fs::write(victim_dir.join("precious"), "x").unwrap();
    let script = format!(
        "ln -s {v} /workspace/link; mkdir /workspace/d; ln -s {v}/precious /workspace/d/f; \
         ln -s / /workspace/root; ls /workspace/link/ 2>&1; echo done",
        v = victim_dir.display()
    );
    // No --workspace: husk makes one and removes it afterwards.
    let out = t
        .rt(&[
            "exec",
            "--sandbox",
            host().rootfs.to_str().unwrap(),
            "sh",
            "-c",
            &script,
        ])
        .ok();
    let l = label(t, "default_workspace_symlinks");
    assert!(out.stdout.contains("done"), "{l}: {out}");
    assert!(
        !out.stdout.contains("precious"),
        "{l}: followed inside: {out}"
    );
    assert!(
        victim_dir.join("precious").exists(),
        "{l}: the cleanup followed a symlink: {out}"
    );
    println!("{l}: symlinks in the scratch workspace to a host dir, a host file and / → dangling inside (no such host path), and husk's cleanup removed the links, not their targets");
}
