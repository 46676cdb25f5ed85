#!/usr/bin/env python3
"""vs_wrk: `switchboard bench http://...` beside wrk on the same nginx.

    bench/vs_wrk.py build/switchboard [--pairs 5] [--seconds 5] [--conns 50] [--fifo]

One nginx (one process, sendfile, no access log, a 30-byte file) pinned to
CPU 0; the clients pinned to CPU 1, one thread each, keep-alive, the same
connection count. The runs are interleaved in pairs (wrk then bench, bench
then wrk, alternating), so that a machine shared with other load drifts
alike under both; the report gives the medians and the median of the
per-pair ratios. Client CPU per request is the client process's user +
system time (wait4's rusage over its whole life: connect, run, close)
over every response it received.

Standard library only; needs nginx and wrk (bench/run.sh installs them).
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""


PREFIX = []  # ["chrt", "-f", "10"] with --fifo


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_nginx(nginx, tmp, port):
    os.makedirs(os.path.join(tmp, "www"))
    with open(os.path.join(tmp, "www", "small.txt"), "w") as f:
        f.write("switchboard says hello, nginx\n")  # 30 bytes
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, port=port))
    p = subprocess.Popen(PREFIX + ["taskset", "-c", "0", nginx, "-c", conf, "-p", tmp + "/"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("nginx did not start (see %s/error.log)" % tmp)


def run_client(cmd):
    """Run cmd; returns (stdout, cpu seconds of the process)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit("%s exited %d: %s" % (" ".join(cmd), p.returncode, out[-300:]))
    return out.decode(), ru.ru_utime + ru.ru_stime


def run_wrk(a, url):
    cmd = PREFIX + ["taskset", "-c", "1", a.wrk, "-t1", "-c%d" % a.conns, "-d%ds" % a.seconds, url]
    out, cpu = run_client(cmd)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("wrk reported errors:\n" + out)
    return dict(rps=rps, total=total, cpu=cpu, cpu_us=cpu * 1e6 / total)


def run_bench(a, url):
    cmd = PREFIX + ["taskset", "-c", "1", a.switchboard, "bench", url, "-c", str(a.conns),
           "--duration", str(a.seconds), "--warmup", "0", "--json"]
    out, cpu = run_client(cmd)
    d = json.loads(out)
    if d["errors_total"]:
        raise SystemExit("bench reported errors: %s" % d["errors"])
    total = d["received_total"]
    return dict(rps=d["msgs_per_s"], total=total, cpu=cpu, cpu_us=cpu * 1e6 / total,
                p50=d["latency_us"]["p50"], p99=d["latency_us"]["p99"])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("switchboard")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    ap.add_argument("--fifo", action="store_true",
                    help="run nginx and the clients under chrt -f 10 (SCHED_FIFO): shields "
                         "them from other load on a shared machine")
    a = ap.parse_args()
    if a.fifo:
        PREFIX[:] = ["chrt", "-f", "10"]
    a.switchboard = os.path.abspath(a.switchboard)
    tmp = tempfile.mkdtemp(prefix="sb-vs-wrk-")
    port = free_port()
    nginx = start_nginx(a.nginx, tmp, port)
    url = "http://127.0.0.1:%d/small.txt" % port
    rows = []
    try:
        for k in range(a.pairs):
            order = ("wrk", "bench") if k % 2 == 0 else ("bench", "wrk")
            pair = {}
            for who in order:
                pair[who] = run_wrk(a, url) if who == "wrk" else run_bench(a, url)
                print("pair %d %-5s %9.0f req/s  %.2f us CPU/req" % (
                    k + 1, who, pair[who]["rps"], pair[who]["cpu_us"]), file=sys.stderr)
            rows.append(pair)
    finally:
        nginx.terminate()
        nginx.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    med = lambda who, key: statistics.median(r[who][key] for r in rows)
    ratio = [r["bench"]["rps"] / r["wrk"]["rps"] for r in rows]
    cpu_ratio = [r["bench"]["cpu_us"] / r["wrk"]["cpu_us"] for r in rows]
    print("| pair | wrk req/s | bench req/s | bench/wrk | wrk CPU µs/req | bench CPU µs/req |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k, r in enumerate(rows):
        print("| %d | %.0f | %.0f | %.3f | %.2f | %.2f |" % (
            k + 1, r["wrk"]["rps"], r["bench"]["rps"], ratio[k], r["wrk"]["cpu_us"],
            r["bench"]["cpu_us"]))
    print("| median | %.0f | %.0f | %.3f | %.2f | %.2f |" % (
        med("wrk", "rps"), med("bench", "rps"), statistics.median(ratio),
        med("wrk", "cpu_us"), med("bench", "cpu_us")))
    print("\nbench/wrk req/s, paired: median %.3f (min %.3f, max %.3f); client CPU per "
          "request bench/wrk, paired: median %.3f; bench p50 %.0f µs, p99 %.0f µs (medians)" % (
              statistics.median(ratio), min(ratio), max(ratio), statistics.median(cpu_ratio),
              med("bench", "p50"), med("bench", "p99")))


if __name__ == "__main__":
    main()
