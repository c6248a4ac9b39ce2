#!/usr/bin/env python3
"""Scenario 2, the code-execution service (a web IDE's backend): a tiny stdlib HTTP service
runs each submission with `husk exec --sandbox` (no network, read-only root, no-new-privs,
128 MB, 0.5 CPU, 50 pids, 10 s, 1 MB output) and answers {success, output, error,
executionTime}. Each limit is exercised through the service; cold and warm latency are
measured and reported, never asserted."""

import json
import os
import shutil
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import HUSK, check, main_guard, need_debian, percentile  # noqa: E402
import subprocess  # noqa: E402

LIMITS = ["--memory", "128m", "--cpus", "0.5", "--pids-limit", "50", "--timeout", "10s",
          "--output-limit", "1M"]


class Service:
    """The backend: POST /execute {"code", "tests": {name: text}, "user"} runs one submission."""

    def __init__(self, image, base):
        self.image, self.base, self.seq = image, base, 0
        self.lock = threading.Lock()
        handler = self.handler()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/execute"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def handler(self):
        svc = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = json.dumps(svc.execute(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        return H

    def execute(self, sub):
        with self.lock:
            self.seq += 1
            n = self.seq
        job = os.path.join(self.base, f"job{n}")
        ws = os.path.join(job, "ws")
        os.makedirs(ws)
        with open(os.path.join(ws, "main.py"), "w") as f:
            f.write(sub["code"])
        args = ["exec", "--sandbox", "--json", "--workspace", ws, *LIMITS]
        if sub.get("tests"):
            tests = os.path.join(job, "tests")
            os.makedirs(tests)
            for name, text in sub["tests"].items():
                with open(os.path.join(tests, name), "w") as f:
                    f.write(text)
            args += ["--bind", f"{tests}:/tests:ro"]
        if sub.get("user"):
            args += ["--user", sub["user"]]
        args += [self.image, "python3", "main.py"]
        t0 = time.monotonic()
        p = subprocess.run([HUSK, *args], capture_output=True, text=True, timeout=60)
        took = (time.monotonic() - t0) * 1000
        shutil.rmtree(job, ignore_errors=True)
        try:
            rec = json.loads(p.stdout)
        except ValueError:
            return {"success": False, "output": "", "error": f"husk: {p.stderr.strip()}",
                    "executionTime": round(took), "record": None}
        error = rec.get("stderr", "")
        if rec["timed_out"]:
            error += "\ntime limit exceeded"
        return {"success": rec["exit_code"] == 0 and not rec["timed_out"], "output": rec.get("stdout", ""),
                "error": error, "executionTime": rec["wall_ms"], "latencyMs": round(took), "record": rec}


def post(url, sub):
    req = urllib.request.Request(url, json.dumps(sub).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=90) as r:
        return json.loads(r.read())


def run(s):
    svc = Service(need_debian(), s.mkdir("jobs"))
    s.cleanups.append(svc.http.shutdown)

    def submit(code, **kw):
        return post(svc.url, dict(code=code, **kw))

    lat = {}

    def hello():
        r = submit("print('hello')")
        lat["cold"] = r["latencyMs"]
        check(r["success"] and r["output"] == "hello\n" and r["error"] == "", f"{r}")
        check(isinstance(r["executionTime"], int), f"{r}")

    s.step("a submission runs and maps to {success, output, error, executionTime}", hello)

    def failing():
        r = submit("raise ValueError('boom')")
        check(not r["success"] and "ValueError: boom" in r["error"], f"{r}")

    s.step("a failing submission: success false, the traceback in error", failing)

    def network():
        code = ("import socket\nprint(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))\n"
                f"try:\n    socket.create_connection(('127.0.0.1', {svc.http.server_address[1]}), 2)\n"
                "    print('reached the host')\nexcept OSError as e:\n    print('no network', e.errno)\n")
        r = submit(code)
        check(r["output"].startswith("['lo']\nno network"), f"{r}")

    s.step("no network: only lo, the host's service on 127.0.0.1 unreachable", network)

    def localhost():
        code = ("import socket\ns = socket.socket()\ns.bind(('localhost', 0))\ns.listen()\n"
                "c = socket.create_connection(('localhost', s.getsockname()[1]))\nprint('loopback ok')\n")
        r = submit(code)
        check(r["success"] and r["output"] == "loopback ok\n", f"{r}")

    s.step("localhost resolves and loopback works inside", localhost)

    def readonly():
        code = ("import os\nfor p in ['/usr/x', '/etc/x', '/x']:\n    try:\n        open(p, 'w')\n"
                "        print('wrote', p)\n    except OSError as e:\n        print('ro', e.errno)\n"
                "open('/workspace/out.txt', 'w').write('x')\nprint('workspace ok')\n"
                "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')])\n")
        r = submit(code)
        lines = r["output"].split("\n")
        check(all(line.startswith("ro ") for line in lines[:3]), f"{r}")
        check(lines[3:5] == ["workspace ok", "['1']"], f"{r}")

    s.step("read-only root, writable workspace, no_new_privs set", readonly)

    def memory():
        r = submit("b = bytearray(400 * 1024 * 1024)\nprint('allocated')\n")
        check(not r["success"] and "allocated" not in r["output"], f"{r}")
        lim = r["record"]["limits"]["memory_bytes"]
        s.note(f"128 MB enforced by {lim['enforced_by']}")

    s.step("128 MB: a 400 MB allocation fails", memory)

    def pids():
        code = ("import os, time\nn = 0\nfor i in range(100):\n    try:\n        if os.fork() == 0:\n"
                "            time.sleep(3)\n            os._exit(0)\n        n += 1\n    except OSError:\n"
                "        break\nprint('forked', n)\n")
        r = submit(code)
        n = int(r["output"].split()[-1])
        check(n < 50, f"{r}")

    s.step("50 pids: a fork loop stops below 50", pids)

    def timeout():
        r = submit("while True: pass\n")
        check(not r["success"] and r["record"]["timed_out"] and "time limit" in r["error"], f"{r}")

    s.step("10 s: an endless loop is killed and reported", timeout)

    def output():
        r = submit("import sys\nsys.stdout.write('x' * (2 * 1024 * 1024))\n")
        check(len(r["output"]) == 1024 * 1024 and r["record"]["stdout_truncated"], f"{len(r['output'])}")

    s.step("1 MB output: the rest is dropped and flagged", output)

    def cpu():
        lim = submit("print(1)")["record"]["limits"]["cpus"]
        s.note(f"0.5 CPU enforced by {lim['enforced_by']} ({lim['reason'] or 'ok'})")
        check(lim["value"] == 0.5, f"{lim}")

    s.step("0.5 CPU is asked for (the record names its enforcer)", cpu)

    def tests_ro():
        code = ("print(open('/tests/test_main.py').read().strip())\ntry:\n    open('/tests/x', 'w')\n"
                "    print('tests writable')\nexcept OSError:\n    print('tests ro')\n")
        r = submit(code, tests={"test_main.py": "assert True"})
        check(r["output"] == "assert True\ntests ro\n", f"{r}")

    s.step("read-only test files bound into the sandbox", tests_ro)

    def non_root():
        r = submit("import os\nprint(os.getuid(), os.getgid())\n", user="1000:1000")
        check(r["output"] == "1000 1000\n", f"{r}")

    s.step("the submission runs as a non-root user", non_root)

    def warm():
        times = [submit("print(1)")["latencyMs"] for _ in range(10)]
        s.note(f"latency cold {lat.get('cold')} ms, warm p50 {percentile(times, 50)} ms, "
               f"p90 {percentile(times, 90)} ms (10 runs, husk exec --sandbox + python3 start)")

    s.step("latency measured (cold, warm)", warm)


if __name__ == "__main__":
    main_guard(run)
