#!/usr/bin/env python3
"""workers: msgs/s and CPU per message of `serve --workers N` on workload B
(64 B messages, 50 connections, pipeline 16, len32 framing, loopback).

    bench/workers.py build/switchboard [--reps 3] [--duration 2] [--workers 1,2,4]

Cells are interleaved by repetition (rep 1: N = 1, 2, 4; rep 2: ...) and
the report gives medians. Nothing is pinned: the server's N threads and the
client (`switchboard bench`, one thread) share the machine's CPUs, so the
client's CPU share of the total is printed beside each figure. Server CPU:
run time of all its threads (/proc/PID/task/*/schedstat) over the client's
whole run (warmup included) divided by the messages of that run; the
client's own figure is its `client_cpu_us_per_msg` (measured window).

Standard library only.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import time


def cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def one(bin_path, workers, duration):
    srv = subprocess.Popen([bin_path, "serve", "--listen", "127.0.0.1:0", "--frame", "len32",
                            "--workers", str(workers)], stderr=subprocess.PIPE, text=True)
    line = srv.stderr.readline()
    addr = re.search(r"listening on (\S+)", line).group(1)
    try:
        t0 = time.monotonic()
        c0 = cpu_ns(srv.pid)
        out = subprocess.run([bin_path, "bench", addr, "-c", "50", "--pipeline", "16", "--size", "64",
                              "--frame", "len32", "--duration", str(duration), "--warmup", "0.25",
                              "--json"], capture_output=True, text=True, timeout=duration + 30)
        c1 = cpu_ns(srv.pid)
        wall = time.monotonic() - t0
        b = json.loads(out.stdout)
        if b["errors_total"]:
            raise SystemExit(f"bench errors: {b['errors']}")
        msgs = b["msgs_per_s"]
        server_cpu_s = (c1 - c0) / 1e9
        # Server µs/msg over the whole run: its CPU over every message answered
        # (the warmup's included; the rate is steady, so the ratio holds).
        server_us = server_cpu_s / max(1, msgs * wall) * 1e6
        client_us = b["client_cpu_us_per_msg"]
        return dict(msgs=msgs, server_us=server_us, client_us=client_us,
                    client_share=client_us / (client_us + server_us))
    finally:
        srv.terminate()
        srv.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--workers", default="1,2,4")
    a = ap.parse_args()
    ns = [int(x) for x in a.workers.split(",")]
    cells = {n: [] for n in ns}
    load = os.getloadavg()
    for rep in range(a.reps):
        for n in ns:
            cells[n].append(one(a.bin, n, a.duration))
    print(f"CPUs: {os.cpu_count()}; load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    print("| workers | msgs/s (median) | runs | server CPU µs/msg | client CPU µs/msg | client share of CPU |")
    print("|---:|---:|---|---:|---:|---:|")
    for n in ns:
        c = cells[n]
        med = lambda k: statistics.median(x[k] for x in c)  # noqa: E731
        runs = ", ".join(f"{x['msgs'] / 1e6:.2f}M" for x in c)
        print(f"| {n} | {med('msgs'):,.0f} | {runs} | {med('server_us'):.3f} | "
              f"{med('client_us'):.3f} | {100 * med('client_share'):.0f}% |")


if __name__ == "__main__":
    main()
