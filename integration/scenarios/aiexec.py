#!/usr/bin/env python3
"""Scenario 4, the isolated AI-code executor: a supervisor on the host serves tool calls on a
Unix socket; each piece of generated code runs with `husk exec --sandbox --socket` (no network,
read-only root, only its workspace writable, the host's environment filtered: no AWS_* or other
secrets) and leaves out/result.json, runtime.out.log and runtime.err.log in its workspace;
8 run at once. Throughput is measured and reported."""

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import HUSK, check, main_guard, need_debian  # noqa: E402

AGENT_CODE = r'''
import json, os, socket
def tool(name, **args):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/run/tools.sock")
    s.sendall((json.dumps({"tool": name, "args": args}) + "\n").encode())
    return json.loads(s.makefile().readline())
task = int(os.environ["TASK"])
answer = tool("add", a=task, b=100)
probes = {}
for p in ["/x", "/etc/x", "/usr/x", "/workspace/probe"]:
    try:
        open(p, "w").write("x")
        probes[p] = "writable"
    except OSError as e:
        probes[p] = "denied"
ifaces = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
secrets = sorted(k for k in os.environ if k.startswith("AWS_") or "SECRET" in k or "TOKEN" in k)
print("task", task, "answer", answer["result"])
import sys; print("a warning", file=sys.stderr)
os.makedirs("out", exist_ok=True)
json.dump({"task": task, "answer": answer["result"], "probes": probes, "ifaces": ifaces,
           "secrets": secrets, "cwd": os.getcwd()}, open("out/result.json", "w"))
'''


class Tools(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class ToolHandler(socketserver.StreamRequestHandler):
    calls = 0
    lock = threading.Lock()

    def handle(self):
        req = json.loads(self.rfile.readline())
        with ToolHandler.lock:
            ToolHandler.calls += 1
        if req["tool"] == "add":
            reply = {"result": req["args"]["a"] + req["args"]["b"]}
        else:
            reply = {"error": f"unknown tool {req['tool']}"}
        self.wfile.write((json.dumps(reply) + "\n").encode())


class Supervisor:
    def __init__(self, s, image):
        self.s, self.image = s, image
        self.sock = s.path("tools.sock")
        self.server = Tools(self.sock, ToolHandler)
        # The code runs as the caller (rootless) or as the sandbox's unprivileged host id (root).
        os.chmod(self.sock, 0o666)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def run_task(self, n):
        ws = self.s.mkdir(f"task{n}", mode=0o755)
        with open(os.path.join(ws, "agent.py"), "w") as f:
            f.write(AGENT_CODE)
        env = dict(os.environ, AWS_SECRET_ACCESS_KEY="AKIA-not-for-the-code", AWS_REGION="eu-west-1",
                   GITHUB_TOKEN="ghp_secret", HUSKENV_LEAK="prefixed")
        t0 = time.monotonic()
        p = subprocess.run([HUSK, "exec", "--sandbox", "--json", "--workspace", ws, "--timeout", "30s",
                            "--socket", f"{self.sock}:/run/tools.sock", "--env", f"TASK={n}",
                            self.image, "python3", "agent.py"], capture_output=True, text=True, env=env,
                           timeout=90)
        took = time.monotonic() - t0
        rec = json.loads(p.stdout) if p.stdout.strip() else {"stdout": "", "stderr": p.stderr}
        with open(os.path.join(ws, "runtime.out.log"), "w") as f:
            f.write(rec.get("stdout", ""))
        with open(os.path.join(ws, "runtime.err.log"), "w") as f:
            f.write(rec.get("stderr", "") or p.stderr)
        return ws, rec, took


def run(s):
    sup = Supervisor(s, need_debian())
    s.cleanups.append(sup.server.shutdown)

    def one():
        ws, rec, _ = sup.run_task(0)
        check(rec.get("exit_code") == 0, f"record: {rec}")
        res = json.load(open(os.path.join(ws, "out", "result.json")))
        check(res["answer"] == 100, f"{res}")
        check(open(os.path.join(ws, "runtime.out.log")).read() == "task 0 answer 100\n", "stdout log")
        check(open(os.path.join(ws, "runtime.err.log")).read() == "a warning\n", "stderr log")
        return res

    res = s.step("a task calls a tool over the socket and leaves out/result.json and its logs", one)

    def confined():
        check(res, "no result from the first task")
        want = {"/x": "denied", "/etc/x": "denied", "/usr/x": "denied", "/workspace/probe": "writable"}
        check(res["probes"] == want, f"{res['probes']}")
        check(res["ifaces"] == ["lo"], f"{res['ifaces']}")
        check(res["secrets"] == [], f"secrets reached the code: {res['secrets']}")
        check(res["cwd"] == "/workspace", f"{res['cwd']}")

    s.step("only the workspace is writable, no network, no AWS_*/secrets in the env", confined)

    def eight():
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(sup.run_task, range(1, 9)))
        wall = time.monotonic() - t0
        for n, (ws, rec, _) in enumerate(results, 1):
            check(rec.get("exit_code") == 0, f"task {n}: {rec}")
            got = json.load(open(os.path.join(ws, "out", "result.json")))
            check(got["task"] == n and got["answer"] == n + 100, f"task {n}: {got}")
        each = sorted(t for _, _, t in results)
        s.note(f"8 at once: {wall:.2f} s wall, {8 / wall:.1f} tasks/s, each {each[0]:.2f}-{each[-1]:.2f} s")

    s.step("8 tasks at once, each with its own result", eight)

    def nothing_left():
        check(ToolHandler.calls == 9, f"tool calls: {ToolHandler.calls}")
        out = subprocess.run([HUSK, "list", "-q"], capture_output=True, text=True).stdout.split()
        check(not out, f"containers left: {out}")

    s.step("every tool call served, no container left behind", nothing_left)


if __name__ == "__main__":
    main_guard(run)
