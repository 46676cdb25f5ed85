#!/usr/bin/env python3
"""client_cost: what `switchboard bench` costs per message on each client
backend, against one server, in back-to-back pairs.

    bench/client_cost.py SWITCHBOARD SERVER_BIN [--pairs 5] [--duration 2]
                         [--workload A|A300|A1000|B|C] [--backends epoll,uring]

SERVER_BIN is a framed (len32) echo server that takes its port as its only
argument (build/bench-peers/bare_epoll, made by bench/run.sh). It runs
pinned to CPU 0, the client to CPU 1; each pair runs the client once on
every backend (the order alternating by pair), each run against a fresh
server. Per run: msgs/s, the client's CPU per message (its own report) and
the server's (its run time from /proc over the client's measured window,
divided by the messages): if the client's figure is below the server's,
the server is the limit the run measures. Prints one line per run and the
medians per backend. Standard library only.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import WORKLOADS, task_runtime_ns  # noqa: E402 (the runner's workloads and CPU reading)


def one(args, backend, port):
    srv = subprocess.Popen(["taskset", "-c", "0", args.server, str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        w = WORKLOADS[args.workload]
        cmd = ["taskset", "-c", "1", args.switchboard, "bench", "127.0.0.1:%d" % port,
               "--conns", str(w["conns"]), "--pipeline", str(w["pipeline"]),
               "--size", str(w["size"]), "--frame", "len32", "--duration", str(args.duration),
               "--warmup", str(args.warmup), "--backend", backend, "--json", "--marks"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        marks = {}

        def read_err():
            for line in p.stderr:
                if "window begins" in line:
                    marks["b"] = (time.monotonic(), task_runtime_ns(srv.pid))
                elif "window ends" in line:
                    marks["e"] = (time.monotonic(), task_runtime_ns(srv.pid))
        t = threading.Thread(target=read_err, daemon=True)
        t.start()
        out = p.stdout.read()
        p.wait()
        t.join(2)
        res = json.loads(out)
        server = None
        if "b" in marks and "e" in marks and res["msgs_per_s"]:
            (t0, c0), (t1, c1) = marks["b"], marks["e"]
            server = (c1 - c0) / 1e3 / ((t1 - t0) * res["msgs_per_s"])
        return dict(backend=backend, rc=p.returncode, msgs=res["msgs_per_s"],
                    client=res["client_cpu_us_per_msg"], server=server,
                    p99=res["latency_us"]["p99"], errors=res["errors_total"])
    finally:
        srv.terminate()
        srv.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("switchboard")
    ap.add_argument("server")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.3)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="A")
    ap.add_argument("--backends", default="epoll,uring")
    ap.add_argument("--port", type=int, default=23000)
    args = ap.parse_args()
    backends = args.backends.split(",")
    runs = []
    port = args.port
    for k in range(args.pairs):
        for b in (backends if k % 2 == 0 else backends[::-1]):
            port += 1
            r = one(args, b, port)
            runs.append(r)
            print("pair %d %-6s %9.0f msgs/s  client %.2f µs/msg  server %s µs/msg  p99 %.0f µs%s"
                  % (k + 1, b, r["msgs"], r["client"],
                     "%.2f" % r["server"] if r["server"] is not None else "n/a", r["p99"],
                     "" if r["rc"] == 0 and not r["errors"] else "  FAILED rc=%s" % r["rc"]),
                  flush=True)
    print("medians, workload %s, %d pairs x %g s:" % (args.workload, args.pairs, args.duration))
    for b in backends:
        rs = [r for r in runs if r["backend"] == b]
        sv = [r["server"] for r in rs if r["server"] is not None]
        print("  %-6s %9.0f msgs/s  client %.2f µs/msg  server %s µs/msg" % (
            b, statistics.median(r["msgs"] for r in rs), statistics.median(r["client"] for r in rs),
            "%.2f" % statistics.median(sv) if sv else "n/a"))
    return 1 if any(r["rc"] != 0 or r["errors"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
