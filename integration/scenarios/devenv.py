#!/usr/bin/env python3
"""Scenario 1, the developer environment launcher (HPC/enterprise): a long-lived service (an IDE
server on a port, here python's http.server) started with `husk instance start`, reachable from
the host; `husk exec` and an interactive `husk shell` into the same environment; the caller's
uid/gid kept; a chosen home directory and shared directories bound (a read-only tool dir, an
"/nfs" share); X11 (DISPLAY, /tmp/.X11-unix, XAUTHORITY at ~/.Xauthority) against a real Xvfb
with a real client inside; proxy variables passed; variables by prefix (HUSKENV_); a FUSE
filesystem (the host's fuse-overlayfs) mounted inside; stop ends every process."""

import os
import pty
import secrets
import shutil
import tempfile
import select
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import check, free_port, instances, kill_quietly, main_guard, marked_pids, need_debian, wait_for  # noqa: E402

FUSE_BIN = "/usr/bin/fuse-overlayfs"
FUSE_LIB = "/usr/lib/x86_64-linux-gnu/libfuse3.so.3"


def run(s):
    deb = need_debian()
    # The chosen home lies outside /tmp (whose host copy is bound anyway), as a real one would.
    base = os.environ.get("HOME") or "/var/tmp"
    home = tempfile.mkdtemp(prefix=".husk-scn-home-", dir=base if os.access(base, os.W_OK) else "/var/tmp")
    s.cleanups.append(lambda: shutil.rmtree(home, ignore_errors=True))
    tools = s.mkdir("tools")
    nfs = s.mkdir("nfs")
    s.write("tools/xclient.py", open(os.path.join(os.path.dirname(__file__), "xclient.py")).read())
    s.write("tools/hello-tool", "#!/bin/sh\necho tool-ran\n", mode=0o755)
    s.write("nfs/project-readme.txt", "shared data\n")
    env = dict(os.environ)
    env.update(HOME=home, http_proxy="http://proxy.example:3128", https_proxy="http://proxy.example:3128",
               no_proxy="localhost,127.0.0.1", HUSKENV_TOOLCHAIN="gcc-12", APPTAINERENV_SITE="hpc-a")
    env.pop("DISPLAY", None)
    env.pop("XAUTHORITY", None)
    binds = ["--bind", f"{tools}:/opt/tools:ro", "--bind", f"{nfs}:/nfs"]
    name = f"ide-{os.getpid()}"
    port = free_port()
    mark = f"HUSK_SCN_MARK={name}"

    def husk(*a, **k):
        k.setdefault("env", env)
        return s.husk(*a, **k)

    def start_service():
        husk("instance", "start", "--env", mark, *binds, deb, name,
             "python3", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", "/nfs")
        s.cleanups.append(lambda: husk("instance", "stop", "--signal", "KILL", name, check=False))
        body = wait_for("the service to answer", lambda: fetch(f"http://127.0.0.1:{port}/"), timeout=30)
        check("project-readme.txt" in body, f"listing lacks the share's file: {body[:200]}")

    s.step("service started as an instance answers on its port from the host", start_service)
    uri = f"instance://{name}"

    def identity():
        out = husk("exec", uri, "sh", "-c", "id -u; id -g; cat /proc/1/cmdline | tr '\\0' ' '").stdout.split("\n")
        check(out[0] == str(os.getuid()) and out[1] == str(os.getgid()), f"ids inside: {out[:2]}")
        check("http.server" in out[2], f"pid 1 is not the service: {out[2]!r}")

    s.step("exec joins the service's environment with the caller's uid and gid", identity)

    def shell():
        out = interact([sys_husk(), "shell", uri], b"echo SHELL-$((6*7)) $(id -u)\nexit\n", env)
        check(f"SHELL-42 {os.getuid()}" in out, f"shell said: {out[-300:]!r}")

    s.step("interactive husk shell into the same instance", shell)

    def binds_and_home():
        script = ("echo $HOME; touch $HOME/h && echo home-rw; /opt/tools/hello-tool; "
                  "touch /opt/tools/x 2>/dev/null || echo tools-ro; ls /nfs; touch /nfs/w && echo nfs-rw")
        out = husk("exec", *binds, deb, "sh", "-c", script).stdout.split()
        check(out == [home, "home-rw", "tool-ran", "tools-ro", "project-readme.txt", "nfs-rw"], f"got {out}")
        check(os.path.exists(os.path.join(home, "h")), "the home write did not reach the host")

    s.step("chosen home bound read-write, tool dir read-only, share bound", binds_and_home)

    def environment():
        out = husk("exec", deb, "sh", "-c", "echo $http_proxy $https_proxy $no_proxy $TOOLCHAIN $SITE").stdout.split()
        want = ["http://proxy.example:3128", "http://proxy.example:3128", "localhost,127.0.0.1", "gcc-12", "hpc-a"]
        check(out == want, f"got {out}")

    s.step("proxy variables pass; HUSKENV_/APPTAINERENV_ prefixes set variables", environment)

    xvfb = None

    def x11():
        nonlocal xvfb
        if not os.path.exists("/usr/bin/Xvfb"):
            raise AssertionError("no Xvfb on the host (setup.sh installs xvfb)")
        number = 150 + os.getpid() % 100
        while os.path.exists(f"/tmp/.X{number}-lock"):
            number += 1
        xauth = os.path.join(home, ".Xauthority")
        cookie = secrets.token_hex(16)
        subprocess.run(["xauth", "-f", xauth, "add", f":{number}", "MIT-MAGIC-COOKIE-1", cookie], check=True)
        xvfb = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-auth", xauth,
                                 "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s.cleanups.append(lambda: kill_quietly(xvfb))
        wait_for("Xvfb's socket", lambda: os.path.exists(f"/tmp/.X11-unix/X{number}"), timeout=20)
        xenv = dict(env, DISPLAY=f":{number}", XAUTHORITY=xauth)
        out = s.husk("exec", "--x11", *binds, deb, "python3", "/opt/tools/xclient.py", env=xenv)
        check(out.stdout.startswith("x11 ok") and "1280x800" in out.stdout, f"client: {out.stdout} {out.stderr}")
        # The cookie is what lets it in: a wrong one is refused by the same server.
        bad = s.write("bad-xauth", "")
        subprocess.run(["xauth", "-f", bad, "add", f":{number}", "MIT-MAGIC-COOKIE-1", secrets.token_hex(16)],
                       check=True)
        out = s.husk("exec", "--x11", *binds, deb, "python3", "/opt/tools/xclient.py",
                     env=dict(xenv, XAUTHORITY=bad), check=False)
        check(out.returncode != 0 and "refused" in out.stdout, f"a wrong cookie got in: {out.stdout}")

    s.step("X11: a real client inside talks to Xvfb with ~/.Xauthority's cookie", x11)

    def fuse():
        for f in (FUSE_BIN, FUSE_LIB, "/dev/fuse"):
            check(os.path.exists(f), f"{f} missing on the host (setup.sh installs fuse-overlayfs)")
        extra = ["--bind", f"{FUSE_BIN}:/opt/fuse/fuse-overlayfs:ro,{FUSE_LIB}:/opt/fuse/libfuse3.so.3:ro"]
        node = os.environ.get("HUSK_SCN_FUSE_NODE")
        if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
            check(node, "/dev/fuse is not ours to open and no HUSK_SCN_FUSE_NODE was given")
            extra += ["--bind", f"{node}:/dev/fuse"]
        script = ("set -e; cd /tmp; mkdir -p l u w m; echo lower > l/f; "
                  "LD_LIBRARY_PATH=/opt/fuse /opt/fuse/fuse-overlayfs -o lowerdir=l,upperdir=u,workdir=w m "
                  "2>/dev/null; cat m/f; echo new > m/g; cat u/g; grep -c ' /tmp/m fuse' /proc/self/mounts")
        out = husk("exec", "--contain", "--fuse", *extra, deb, "sh", "-c", script).stdout.split()
        check(out == ["lower", "new", "1"], f"got {out}")

    s.step("FUSE: a real FUSE filesystem mounts inside with --fuse", fuse)

    def stop_all():
        husk("exec", "-d", uri, "sleep", "600", quiet=True)
        husk("exec", uri, "sh", "-c", "sleep 600 >/dev/null 2>&1 &")
        wait_for("the instance's processes", lambda: len(marked_pids(mark)) >= 3, timeout=15)
        pids = marked_pids(mark)
        husk("instance", "stop", name)
        wait_for("every process of the instance to end", lambda: not marked_pids(mark), timeout=15)
        check(not instances(s, name), "still listed after stop")
        check(pids, "no processes were seen")

    s.step("instance stop ends the service and everything exec'd into it", stop_all)


def sys_husk():
    from lib import HUSK
    return HUSK


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


def interact(argv, keys, env, timeout=20):
    """Runs argv on a new pty, types `keys`, returns everything it printed until it exits."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    os.write(fd, keys)
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif os.waitpid(pid, os.WNOHANG)[0]:
            break
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    os.close(fd)
    return out.decode(errors="replace")


if __name__ == "__main__":
    main_guard(run)
