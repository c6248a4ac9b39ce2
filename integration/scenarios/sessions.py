#!/usr/bin/env python3
"""Scenario 3, the session runner (hands-on labs): sessions with a TTL on `husk instance`
(create/get/delete), exec with a working directory, the session's workspace files (list, read,
write, delete), an interactive terminal (a pty: resize, Ctrl-C), health with the active session
count, 1.5 GB / 1 CPU each, sessions isolated from each other, cleanup on expiry."""

import json
import os
import pty
import select
import shutil
import struct
import sys
import termios
import fcntl
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import HUSK, check, instances, main_guard, need_debian, wait_for  # noqa: E402

PREFIX = f"lab{os.getpid()}-"


class Runner:
    """The lab backend's session store: one instance per session, its workspace on the host."""

    def __init__(self, s, image):
        self.s, self.image = s, image
        self.base = s.mkdir("sessions")

    def workspace(self, sid):
        return os.path.join(self.base, sid)

    def create(self, ttl="30m", extra=()):
        sid = PREFIX + uuid.uuid4().hex[:8]
        ws = self.workspace(sid)
        os.makedirs(os.path.join(ws, "src"))
        self.s.husk("instance", "start", "--ttl", ttl, "--containall", "--memory", "1536m", "--cpus", "1",
                    "--bind", f"{ws}:/workspace", "--pwd", "/workspace", *extra, self.image, sid,
                    "sleep", "infinity")
        return sid

    def get(self, sid):
        found = [i for i in instances(self.s, sid) if i["name"] == sid]
        return found[0] if found else None

    def delete(self, sid):
        self.s.husk("instance", "stop", "--timeout", "2", sid)
        shutil.rmtree(self.workspace(sid), ignore_errors=True)

    def exec(self, sid, cmd, cwd="/workspace"):
        return self.s.husk("exec", "--cwd", cwd, f"instance://{sid}", "bash", "-c", cmd)

    def health(self):
        return {"status": "ok", "active": sum(1 for i in instances(self.s, PREFIX) if i["status"] == "running")}

    def reap(self):
        """Workspaces of sessions no longer listed (expired) go too."""
        live = {i["name"] for i in instances(self.s, PREFIX)}
        for sid in os.listdir(self.base):
            if sid not in live:
                shutil.rmtree(self.workspace(sid), ignore_errors=True)

    def files(self, sid):
        ws = self.workspace(sid)
        return sorted(os.path.relpath(os.path.join(d, f), ws) for d, _, fs in os.walk(ws) for f in fs)


def run(s):
    r = Runner(s, need_debian())
    s.cleanups.append(lambda: [s.husk("instance", "stop", "--signal", "KILL", i["name"], check=False)
                               for i in instances(s, PREFIX)])
    ids = {}

    def crud():
        a = r.create()
        ids["a"] = a
        got = r.get(a)
        check(got and got["status"] == "running" and got["ttl"] > 1700, f"get: {got}")
        check(r.health() == {"status": "ok", "active": 1}, f"health: {r.health()}")
        b = r.create()
        ids["b"] = b
        check(r.health()["active"] == 2, f"health: {r.health()}")

    s.step("create and get sessions (TTL 30 min); health counts them", crud)

    def exec_cwd():
        a = ids["a"]
        out = r.exec(a, "pwd; mkdir -p build && cd build && pwd", cwd="/workspace/src").stdout.split()
        check(out == ["/workspace/src", "/workspace/src/build"], f"{out}")
        out = r.exec(a, "id -u").stdout.strip()
        check(out == str(os.getuid()), f"uid {out}")

    s.step("exec with a working directory, as the caller", exec_cwd)

    def files():
        a = ids["a"]
        with open(os.path.join(r.workspace(a), "src", "main.c"), "w") as f:
            f.write("int main(void) { return 0; }\n")
        check(r.exec(a, "cat src/main.c").stdout.startswith("int main"), "written file not visible inside")
        r.exec(a, "echo built > src/out.txt")
        check(r.files(a) == ["src/main.c", "src/out.txt"], f"list: {r.files(a)}")
        check(open(os.path.join(r.workspace(a), "src", "out.txt")).read() == "built\n", "read")
        os.remove(os.path.join(r.workspace(a), "src", "main.c"))
        seen = r.exec(a, "ls src").stdout.split()
        check(seen == ["build", "out.txt"], f"delete not seen inside: {seen}")

    s.step("workspace files: write, list, read, delete, seen both sides", files)

    def terminal():
        out = pty_session([HUSK, "exec", "-t", f"instance://{ids['a']}", "bash", "--norc", "-i"])
        check("SIZE 40 120" in out, f"no resize seen: {out[-400:]!r}")
        check("AFTER-INT 130" in out, f"Ctrl-C did not interrupt: {out[-400:]!r}")

    s.step("interactive terminal: a pty, resize, Ctrl-C", terminal)

    def isolation():
        a, b = ids["a"], ids["b"]
        r.exec(a, "echo secret > /workspace/a.txt; echo t > /tmp/a-tmp")
        out = r.exec(b, "ls /workspace; ls /tmp").stdout.split()
        check("a.txt" not in out and "a-tmp" not in out, f"b sees a's files: {out}")
        ns = [r.exec(x, "readlink /proc/self/ns/pid; cat /proc/1/cmdline | tr '\\0' ' '").stdout
              for x in (a, b)]
        check(ns[0].split()[0] != ns[1].split()[0], f"one pid namespace: {ns}")
        check(all("sleep infinity" in n for n in ns), f"pid 1 is not the session's own: {ns}")
        check(not os.path.exists(os.path.join(r.workspace(b), "a.txt")), "workspaces shared")

    s.step("sessions are isolated (files, /tmp, processes)", isolation)

    def limits():
        rec = json.loads(s.husk("instance", "list", "--json").stdout)
        check(any(i["name"] == ids["a"] for i in rec), "session a gone")
        mem = s.husk("exec", f"instance://{ids['a']}", "sh", "-c",
                     "p=$(grep -E ':memory:|^0::' /proc/self/cgroup | head -1 | cut -d: -f3); "
                     "cat /sys/fs/cgroup/memory$p/memory.limit_in_bytes 2>/dev/null || "
                     "cat /sys/fs/cgroup$p/memory.max 2>/dev/null || echo none").stdout.strip()
        s.note(f"1.5 GB / 1 CPU per session: memory limit seen inside: {mem}")

    s.step("1.5 GB / 1 CPU asked for each session (reported)", limits)

    def sandboxed():
        sid = PREFIX + "sbx"
        s.husk("instance", "start", "--sandbox", "--ttl", "5m", r.image, sid, "sleep", "infinity")
        out = s.husk("exec", f"instance://{sid}", "sh", "-c", "cat /proc/net/dev | tail -n +3 | wc -l").stdout
        check(out.strip() == "1", f"interfaces: {out}")
        s.husk("instance", "stop", sid)

    s.step("a session can be sandboxed (instance start --sandbox)", sandboxed)

    def delete():
        b = ids["b"]
        r.delete(b)
        check(r.get(b) is None and not os.path.exists(r.workspace(b)), "b still there")
        check(r.health()["active"] == 1, f"{r.health()}")

    s.step("delete a session: instance and workspace gone", delete)

    def expiry():
        c = r.create(ttl="3s")
        t0 = time.monotonic()
        wait_for("the session to expire", lambda: r.get(c) is None, timeout=30, every=0.2)
        s.note(f"a 3 s TTL session was gone after {time.monotonic() - t0:.1f} s")
        r.reap()
        check(not os.path.exists(r.workspace(c)), "workspace left after expiry")
        r.delete(ids["a"])
        check(r.health()["active"] == 0, f"{r.health()}")

    s.step("an expired session is cleaned up by itself", expiry)


def pty_session(argv, timeout=30):
    """Drives an interactive shell on a pty: resize, then Ctrl-C of a sleep; returns the output."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["PS1"] = "$ "
        os.execv(argv[0], argv)
    out = b""

    def read_until(token, limit=15):
        nonlocal out
        end = time.monotonic() + limit
        while time.monotonic() < end and token not in out:
            rd, _, _ = select.select([fd], [], [], 0.3)
            if rd:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    try:
        os.write(fd, b"echo READY\n")
        read_until(b"READY\r\n")
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        time.sleep(0.3)
        os.write(fd, b"echo SIZE $(stty size)\n")
        read_until(b"SIZE 40 120")
        os.write(fd, b"sleep 30\n")
        time.sleep(1)
        os.write(fd, b"\x03")
        os.write(fd, b"echo AFTER-INT $?\n")
        read_until(b"AFTER-INT 130", limit=10)
        os.write(fd, b"exit\n")
        read_until(b"\x00", limit=3)
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    return out.decode(errors="replace")


if __name__ == "__main__":
    main_guard(run)
