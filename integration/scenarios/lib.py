"""Shared pieces of the scenario suites: each suite builds one of the four systems husk exists for
(issue 14) the way its users would, with the public CLI only, and checks it end to end.

A suite is a list of named steps. Each prints one line (ok, FAIL, xfail, XPASS) and the suite ends
with "== NAME as USER: N passed, N failed, N xfail". Steps named in EXPECTED_TO_FAIL_UNTIL_MERGED
need launcher flags another branch adds; they run anyway, and their failure is reported as xfail,
their success as XPASS (then take the name out of the list).

Env: HUSK (the binary; default target/release/husk of this tree), HUSK_DEBIAN_ROOTFS (default:
bundles/debian/rootfs, made by bundles/debian/make-rootfs), HUSK_SCN_FUSE_NODE (a 0666 FUSE
node made by root for a user whose /dev/fuse is 0600), HUSK_SCN_KEEP=1 (keep the work dirs).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HUSK = os.environ.get("HUSK", os.path.join(TOP, "target", "release", "husk"))
BUSYBOX = os.path.join(TOP, "bundles", "busybox", "rootfs")
DEBIAN = os.environ.get("HUSK_DEBIAN_ROOTFS", os.path.join(TOP, "bundles", "debian", "rootfs"))

# Steps that need launcher flags another branch adds (none now: read-only input binds, --user and
# `instance start --sandbox` are in). Add "suite: step" names here while such a branch is pending.
EXPECTED_TO_FAIL_UNTIL_MERGED: set = set()


class Scenario:
    """One suite run: its work directory, its steps' results, husk calls."""

    def __init__(self, name):
        self.name = name
        self.user = "root" if os.geteuid() == 0 else os.environ.get("USER", str(os.geteuid()))
        self.dir = tempfile.mkdtemp(prefix=f"husk-scn-{name}-")
        os.chmod(self.dir, 0o755)
        self.passed = self.failed = self.xfailed = 0
        self.cleanups = []
        self.notes = []

    def step(self, title, fn):
        """Runs step `fn` (it raises to fail); returns its value, or None when it failed."""
        full = f"{self.name}: {title}"
        expected = full in EXPECTED_TO_FAIL_UNTIL_MERGED
        try:
            value = fn()
        except Exception as e:  # noqa: BLE001 - a step fails on anything
            why = f"{type(e).__name__}: {e}".strip().replace("\n", " | ")[:600]
            if expected:
                self.xfailed += 1
                print(f"xfail - {full} (expected to fail until merged): {why}", flush=True)
            else:
                self.failed += 1
                print(f"FAIL - {full}: {why}", flush=True)
                if os.environ.get("HUSK_SCN_TRACE"):
                    traceback.print_exc()
            return None
        self.passed += 1
        tag = "XPASS" if expected else "ok"
        extra = " (passes now: remove it from EXPECTED_TO_FAIL_UNTIL_MERGED)" if expected else ""
        print(f"{tag} - {full}{extra}", flush=True)
        return value if value is not None else True

    def note(self, text):
        """A measurement or fact worth the report (not a check)."""
        self.notes.append(text)
        print(f"note - {self.name}: {text}", flush=True)

    def husk(self, *args, check=True, env=None, input=None, timeout=120, cwd=None, quiet=False):
        """Runs husk ARGS; with `check`, a non-zero exit raises with its stderr. `quiet`: output
        to /dev/null (a detached process keeps husk's stdout: a pipe would never see its end)."""
        out = subprocess.DEVNULL if quiet else subprocess.PIPE
        p = subprocess.run(
            [HUSK, *args],
            input=input,
            stdout=out,
            stderr=out,
            text=True,
            env=env,
            timeout=timeout,
            cwd=cwd or self.dir,
        )
        if check and p.returncode != 0:
            raise AssertionError(f"husk {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
        return p

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def mkdir(self, *parts, mode=0o755):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def write(self, rel, text, mode=0o644):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def finish(self):
        """Runs the cleanups (last first), prints the suite's line; the exit status."""
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                print(f"note - {self.name}: cleanup: {e}", flush=True)
        if not os.environ.get("HUSK_SCN_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        print(
            f"== {self.name} as {self.user}: {self.passed} passed, {self.failed} failed, "
            f"{self.xfailed} xfail",
            flush=True,
        )
        return 1 if self.failed else 0


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, cond, timeout=30.0, every=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def instances(s, prefix=""):
    p = s.husk("instance", "list", "--json")
    return [i for i in json.loads(p.stdout or "[]") if i["name"].startswith(prefix)]


def marked_pids(mark):
    """Our processes whose environment holds `mark` (KEY=VALUE), zombies left out."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark.encode() in env and state != "Z":
            out.append(int(d))
    return out


def need_debian():
    check(os.path.isfile(os.path.join(DEBIAN, "usr/bin/python3")),
          f"no Debian fixture at {DEBIAN} (run bundles/debian/make-rootfs as root)")
    return DEBIAN


def kill_quietly(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(values, p):
    v = sorted(values)
    if not v:
        return 0.0
    k = min(len(v) - 1, max(0, round(p / 100 * (len(v) - 1))))
    return v[k]


def main_guard(run):
    """Runs suite function `run(scenario)` and exits with the suite's status."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    s = Scenario(name)
    try:
        run(s)
    except Exception as e:  # noqa: BLE001 - a crash of the suite itself is one failure
        s.failed += 1
        print(f"FAIL - {name}: the suite itself: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
    sys.exit(s.finish())
