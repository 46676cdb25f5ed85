#!/usr/bin/env python3
"""runner: the benchmark matrix behind bench/run.sh.

Every cell is one server process (started fresh, pinned to CPU 0) and one
`switchboard bench` client (pinned to CPU 1) against it. One run does every
workload against every server, interleaved by repetition (rep 1: every
cell, rep 2: every cell, ...) so that a drift of the machine spreads over
all servers alike; the report gives medians over repetitions.

Per cell it records the client's JSON (msgs/s, latency percentiles,
errors, the client's own CPU per message) and, from /proc, the server's
CPU: run time of the server process (all its threads, and its live
children for the fork model, from /proc/PID/task/*/schedstat) over a
sub-window of the client's measured window (from the client's "window
begins" mark, `bench --marks`, to 0.1 s before its end, while every
connection is still open), as CPU seconds per second divided by the
client's msgs/s: the same basis as the client's own CPU per message.

Workloads (len32 framing, loopback):
  A      64 B,   50 conns, pipeline 1
  A300   64 B,  300 conns, pipeline 1   (event loops only: bare epoll, libuv,
  A1000  64 B, 1000 conns, pipeline 1    libevent, sb event+epoll, sb event+uring)
  B      64 B,   50 conns, pipeline 16
  C      16 KiB, 10 conns, pipeline 1
  D  10,000 idle connections after one message each: server RSS per conn
  5.1  threads / fork / event(select, poll, epoll) x 10, 100, 1000 conns
       x --work-us 0, 50 (64 B, pipeline 1)
  HTTP wrk -t1 -c50 (keep-alive) against `serve --app http` and nginx (one
       process, sendfile on, access log off; and once more with
       open_file_cache), a 30-byte file and a 16 KiB file
  HTTPS the same over TLS 1.3 (one ECDSA P-256 certificate made at run time
       for both) against `serve --app http --tls-cert --tls-key` and nginx
       (one process, ssl_protocols TLSv1.3): both files with keep-alive, and
       new handshakes per second: `switchboard bench --reconnect` (a new
       connection and TLS handshake per request), full and resumed, and wrk
       with -H 'Connection: close'; each pair back to back, order
       alternating by repetition; and server RSS per idle TLS connection
       (bench/tls_hold.py)

`--only http` runs the HTTP workload alone, `--only https` the HTTPS one.

The client is one `switchboard bench` on one backend for every server of a
run (`--client-backend`), so that every server faces the same client. The
default is uring, bench's completion-based engine, where it runs: it costs
less CPU per message than the epoll client (docs/performance.md), and the
client must not be the limit of what it measures. Pairs: bare epoll and the
sb event servers run back to back (their order alternating) on A and B
(sb event+epoll, the parity) and on A, A300, A1000, B and C (sb event+uring,
judged against the targets of the completion-based backend).

Standard library only.
"""
import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WORKLOADS = {
    "A": dict(size=64, conns=50, pipeline=1),
    "A300": dict(size=64, conns=300, pipeline=1),
    "A1000": dict(size=64, conns=1000, pipeline=1),
    "B": dict(size=64, conns=50, pipeline=16),
    "C": dict(size=16384, conns=10, pipeline=1),
}
# The many-connection cells run the event loops alone.
MANY_CONNS = {"A300", "A1000"}
MANY_CONNS_SERVERS = ("bare_epoll", "libuv", "libevent", "sb event+epoll", "sb event+uring")
D_CONNS = 10000
PARITY = ("A", "B")  # workloads whose bare-epoll parity is measured in pairs
# sb event+uring / bare epoll, paired, must reach these (msgs/s).
URING_TARGETS = {"A": 1.15, "A300": 1.3, "A1000": 1.3, "B": 1.2, "C": 1.0}


def parse_workloads(text):
    """"ABC", "A,A300,B", "a1000": the workloads named, in WORKLOADS order."""
    named = set(re.findall(r"A1000|A300|[A-Z]", text.upper()))
    return [w for w in WORKLOADS if w in named]


# ----------------------------------------------------------------- servers

class Server:
    """How to start one server under test."""

    def __init__(self, name, argv, sb=False, model=None, work=False):
        self.name = name
        self.argv = argv        # with {port} and {work} placeholders
        self.sb = sb            # a `switchboard serve`: prints its counter
        self.model = model
        self.work = work        # accepts --work-us

    def command(self, port, work_us=0):
        return [a.format(port=port, work=work_us) for a in self.argv]


def make_servers(args):
    p, sb = args.peers, args.switchboard
    servers = [
        Server("bare_epoll", [os.path.join(p, "bare_epoll"), "{port}"]),
        Server("libuv", [os.path.join(p, "libuv_echo"), "{port}"]),
        Server("libevent", [os.path.join(p, "libevent_echo"), "{port}"]),
        Server("asyncio", [sys.executable, os.path.join(HERE, "peers", "asyncio_echo.py"), "{port}"]),
    ]

    def serve(name, model, backend=None, max_conns=20000):
        argv = [sb, "serve", "--listen", "127.0.0.1:{port}", "--app", "echo",
                "--model", model, "--frame", "len32", "--max-conns", str(max_conns)]
        if backend:
            argv += ["--backend", backend]
        if args.work_us_supported:
            argv += ["--work-us", "{work}"]
        return Server(name, argv, sb=True, model=model, work=args.work_us_supported)

    servers += [serve("sb event+epoll", "event", "epoll"),
                serve("sb event+poll", "event", "poll"),
                serve("sb event+select", "event", "select")]
    if args.uring:
        servers.append(serve("sb event+uring", "event", "uring"))
    servers += [serve("sb threads", "threads", max_conns=1100),
                serve("sb fork", "fork", max_conns=1100)]
    return servers


class Running:
    """A started server: its process, its stderr lines, its CPU counters."""

    def __init__(self, server, port, work_us=0):
        self.server = server
        self.port = port
        cmd = ["taskset", "-c", "0"] + server.command(port, work_us)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.listening = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self.listening.set()

    def wait_ready(self, timeout=10.0):
        """switchboard says when it listens; a peer is probed with a connect."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.server.sb:
                if self.listening.wait(0.02):
                    return True
                continue
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def cpu_us(self):
        return proc_tree_cpu_us(self.proc.pid)

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def stop(self):
        """SIGTERM, then the served-messages line (switchboard only)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(2)
        for line in self.lines:
            m = re.search(r"served (\d+) messages on (\d+) connections", line)
            if m:
                return int(m.group(1))
        return None


def task_runtime_ns(pid):
    """Nanoseconds on a CPU of every live thread of pid (schedstat), or
    None when the process is gone or the kernel lacks schedstat."""
    total = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def children_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                if int(st[st.rindex(")") + 2:].split()[1]) == pid:
                    kids.append(int(d))
            except (OSError, ValueError):
                continue
    return kids


def proc_tree_cpu_us(pid):
    """CPU time of pid: every thread's run time (ns precision, from
    /proc/PID/task/*/schedstat) plus that of its live children (the fork
    model's per-connection processes). /proc/PID/stat's utime and stime
    count whole clock ticks per process, which rounds a fork child that ran
    a few milliseconds to zero. Threads and children that exit inside the
    window take their time with them, so the window must hold the
    connections open (it does: the client samples before it closes)."""
    own = task_runtime_ns(pid)
    if own is None:
        return None
    for kid in children_of(pid):
        own += task_runtime_ns(kid) or 0
    return own / 1e3


# ------------------------------------------------------------------ client

class WindowCpu:
    """The server's CPU over a sub-window strictly inside the client's: from
    the moment bench's "window begins" mark is seen to `span` seconds later,
    so the server is sampled while every connection is open. Feed it bench's
    stderr lines (on_line), join() once the client exited, then per(rate)
    gives CPU µs per message (request) and pct() the server's share of one
    core, or None when no sound figure exists: a sample taken after the
    client's window closed (a starved runner) may miss threads or children
    that already exited, so no figure rather than a wrong one."""

    def __init__(self, running, span):
        self.r, self.span = running, span
        self.begin = self.end = self.ends_seen = None
        self.timer = None

    def _sample_end(self):
        self.end = (time.monotonic(), self.r.cpu_us())

    def on_line(self, line):
        if "window begins" in line:
            self.begin = (time.monotonic(), self.r.cpu_us())
            self.timer = threading.Timer(max(0.05, self.span), self._sample_end)
            self.timer.start()
        elif "window ends" in line:
            self.ends_seen = time.monotonic()

    def join(self):
        if self.timer is not None:
            self.timer.join()

    def _span(self):
        b, e = self.begin, self.end
        if b is None or e is None or None in (b[1], e[1]) or e[1] < b[1]:
            return None
        if self.ends_seen is not None and e[0] > self.ends_seen:
            return None
        return e[1] - b[1], e[0] - b[0]

    def per(self, rate):
        d = self._span()
        return d[0] / (d[1] * rate) if d and rate else None

    def pct(self):
        d = self._span()
        return 100.0 * d[0] / 1e6 / d[1] if d else None


def run_bench(args, port, size, conns, pipeline, duration, extra=(), on_line=None):
    cmd = ["taskset", "-c", "1", args.client, "bench", "127.0.0.1:%d" % port,
           "--conns", str(conns), "--pipeline", str(pipeline), "--size", str(size),
           "--duration", str(duration), "--warmup", str(args.warmup),
           "--frame", "len32", "--json", "--marks"] + list(extra)
    if args.client_backend and "--connect-only" not in extra:
        # Workload D's client holds idle connections; it stays on bench's
        # default loop, whatever the load cells' client is.
        cmd += ["--backend", args.client_backend]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    err = []

    def read_err():
        for line in p.stderr:
            err.append(line.rstrip("\n"))
            if on_line:
                on_line(line)
    t = threading.Thread(target=read_err, daemon=True)
    t.start()
    watchdog = threading.Timer(duration + args.warmup + args.hold + 90, p.kill)
    watchdog.start()
    out = p.stdout.read()  # stderr belongs to read_err alone
    p.wait()
    watchdog.cancel()
    t.join(2)
    try:
        return json.loads(out.strip().splitlines()[-1]), err
    except (ValueError, IndexError):
        return None, err + ["(exit %s, no JSON)" % p.returncode]


# ------------------------------------------------------------------- cells

class Matrix:
    def __init__(self, args):
        self.args = args
        self.port = args.port
        self.cells = []     # one dict per measured cell
        self.problems = []  # failures worth a line in the report

    def next_port(self):
        self.port += 1
        if self.port > 32000:
            self.port = self.args.port
        return self.port

    def start(self, server, work_us=0):
        port = self.next_port()
        r = Running(server, port, work_us)
        if not r.wait_ready():
            r.stop()
            msg = "%s did not start: %s" % (server.name, " | ".join(r.lines[-3:]) or "no output")
            return None, msg
        return r, None

    def load(self, rep, table, server, label, size, conns, pipeline, work_us=0, pair=None):
        cell = dict(rep=rep, table=table, server=server.name, workload=label,
                    size=size, conns=conns, pipeline=pipeline, work_us=work_us)
        if pair is not None:
            cell["pair"] = "%d/%s/%d" % (rep, pair[0], pair[1])
        r, why = self.start(server, work_us)
        if r is None:
            cell["error"] = why
            self.cells.append(cell)
            self.problems.append("rep %d %s %s: %s" % (rep, label, server.name, why))
            return cell
        cpu = WindowCpu(r, self.args.duration - 0.1)  # to 0.1 s before the window ends
        res, err = run_bench(self.args, r.port, size, conns, pipeline, self.args.duration,
                             on_line=cpu.on_line)
        cpu.join()
        served = r.stop()
        cell["bench"] = res
        if res is None:
            cell["error"] = "bench failed: " + " | ".join(err[-3:])
        else:
            total = res.get("received_total") or 0
            per = cpu.per(res.get("msgs_per_s"))
            if per is not None:
                cell["server_cpu_us_per_msg"] = per
            if served is not None:
                cell["served"] = served
                if total and served:
                    cell["agreement_pct"] = 100.0 * min(served, total) / max(served, total)
            if res.get("errors_total") or not res.get("messages"):
                cell["error"] = "bench reported %s errors, %s messages: %s" % (
                    res.get("errors_total"), res.get("messages"), " | ".join(err[-2:]))
        if "error" in cell:
            self.problems.append("rep %d %s %s: %s" % (rep, label, server.name, cell["error"]))
        self.cells.append(cell)
        return cell

    def idle(self, rep, server, conns):
        cell = dict(rep=rep, table="D", server=server.name, workload="D", conns=conns)
        r, why = self.start(server)
        if r is None:
            cell["error"] = why
            self.problems.append("rep %d D %s: %s" % (rep, server.name, why))
            self.cells.append(cell)
            return cell
        time.sleep(0.1)
        before = r.rss_kb()
        after = []

        def on_line(line):
            if "holding" in line and not after:
                time.sleep(0.2)
                after.append(r.rss_kb())
        res, err = run_bench(self.args, r.port, 64, conns, 1, 0,
                             ["--connect-only", "--hold", str(self.args.hold)], on_line)
        r.stop()
        cell["bench"] = res
        connected = (res or {}).get("connected", 0)
        if res is None or not after or not connected:
            cell["error"] = "no hold: " + " | ".join(err[-3:])
        else:
            cell["rss_before_kb"], cell["rss_after_kb"] = before, after[0]
            cell["rss_bytes_per_conn"] = (after[0] - before) * 1024.0 / connected
            if res.get("errors_total"):
                cell["error"] = "bench reported %d errors" % res["errors_total"]
        if "error" in cell:
            self.problems.append("rep %d D %s: %s" % (rep, server.name, cell["error"]))
        self.cells.append(cell)
        return cell


    def tls_idle(self, rep, server, conns, cafile):
        """Workload D over HTTPS: server RSS growth over `conns` idle TLS
        connections, each after one keep-alive GET of the 30-byte file
        (bench/tls_hold.py, pinned to CPU 1). The runner's own check GET
        comes first, so one-time costs of the first handshake are not
        counted."""
        cell = dict(rep=rep, table="TLSD", server=server.name, workload="TLSD", conns=conns)
        r, why = self.start(server)
        if r is not None:
            try:
                st, _ = http_fetch(r.port, "/small.txt", cafile=cafile)
                if st != 200:
                    raise OSError("status %d" % st)
            except OSError as e:
                r.stop()
                r, why = None, "check failed: %s" % e
        if r is None:
            cell["error"] = why
            self.problems.append("rep %d TLS idle %s: %s" % (rep, server.name, why))
            self.cells.append(cell)
            return cell
        time.sleep(0.1)
        before = r.rss_kb()
        after = []
        cmd = ["taskset", "-c", "1", sys.executable, os.path.join(HERE, "tls_hold.py"), str(r.port),
               str(conns), str(self.args.hold), cafile, "/small.txt"]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        err = []
        for line in p.stderr:
            err.append(line.rstrip("\n"))
            if "holding" in line and not after:
                time.sleep(0.2)
                after.append(r.rss_kb())
        out = p.stdout.read()
        p.wait()
        r.stop()
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = None
        connected = (res or {}).get("connected", 0)
        if res is None or not after or not connected or p.returncode != 0:
            cell["error"] = "tls_hold exit %s: %s" % (p.returncode, " | ".join(err[-3:]))
        else:
            cell["rss_before_kb"], cell["rss_after_kb"] = before, after[0]
            cell["rss_bytes_per_conn"] = (after[0] - before) * 1024.0 / connected
        if "error" in cell:
            self.problems.append("rep %d TLS idle %s: %s" % (rep, server.name, cell["error"]))
        self.cells.append(cell)
        return cell


def partners(by, w):
    """The servers paired with bare epoll on workload w."""
    names = ["sb event+epoll"] if w in PARITY else []
    if w in URING_TARGETS and "sb event+uring" in by:
        names.append("sb event+uring")
    return [n for n in names if n in by]


def plan(args, servers, http_servers=(), http_root=None, https_servers=(), cafile=None):
    """The cells of one repetition, in order: (kind, parameters)."""
    by = {s.name: s for s in servers}
    cells = []
    names = [s.name for s in servers]
    wl = args.workloads
    if args.quick:
        names = [n for n in names if n in ("bare_epoll", "libuv", "sb event+epoll",
                                           "sb event+poll", "sb threads", "sb fork")]
    for w in wl:
        spec = WORKLOADS[w]
        load = lambda n, pair=None: ("load", "ABC", by[n], w, spec["size"], spec["conns"],
                                     spec["pipeline"], 0, pair)
        wnames = [n for n in names if w not in MANY_CONNS or n in MANY_CONNS_SERVERS]
        group = [] if args.quick or "bare_epoll" not in by else ["bare_epoll"] + partners(by, w)
        if len(group) < 2:
            group = []
        # The paired cells: bare epoll and its partners back to back, plus
        # --pairs more such groups, the order reversed every other time, so
        # each group shares the machine's state of the moment (see report()).
        cells += [load(n, (w, 0)) for n in group]
        for n in wnames:
            if n not in group:
                cells.append(load(n))
        for k in range(1, args.pairs + 1 if group else 1):
            cells += [load(n, (w, k)) for n in (group[::-1] if k % 2 else group)]
    if args.table51:
        t51 = ["sb threads", "sb fork", "sb event+select", "sb event+poll", "sb event+epoll"]
        conns = [10] if args.quick else [10, 100, 1000]
        works = [0, 50] if by["sb event+epoll"].work else [0]
        for c in conns:
            for wu in works:
                for n in t51:
                    cells.append(("load", "5.1", by[n], "%dc/%dus" % (c, wu), 64, c, 1, wu, None))
    if args.idle:
        dnames = ["bare_epoll", "libuv", "libevent", "asyncio", "sb event+epoll"]
        if "sb event+uring" in by:  # its memory per idle connection beside epoll's
            dnames.append("sb event+uring")
        if args.quick:
            dnames = ["bare_epoll", "sb event+epoll"]
        for n in dnames:
            cells.append(("idle", by[n], args.idle_conns))
    for label, name, size in (HTTP_FILES if http_servers and args.only != "https" else []):
        for x in http_servers:
            cells.append(("http", x, label, name, size, http_root, "HTTP", None, ()))
    for label, name, size, extra in (HTTPS_WORKLOADS if https_servers else []):
        for x in https_servers:
            cells.append(("http", x, label, name, size, http_root, "HTTPS", cafile, extra))
    for label, extra in (HTTPS_HANDSHAKES if https_servers else []):
        for x in https_servers:
            cells.append(("hs", x, label, http_root, cafile, extra))
    for x in https_servers:
        cells.append(("tlsidle", x, args.tls_idle_conns, cafile))
    return cells


# -------------------------------------------------------------------- HTTP

# The HTTP workload: wrk against static files, keep-alive, 50 connections.
HTTP_FILES = [("30 B", "small.txt", 30), ("16 KiB", "16k.bin", 16384)]
HTTP_CONNS = 50

NGINX_CONF = """\
# Generated by bench/runner.py: one process (master_process off, so the
# single worker is the process we measure), no access log, sendfile;
# tcp_nopush corks the head and the file into one segment.
worker_processes 1;
daemon off;
master_process off;
pid {tmp}/nginx-{port}.pid;
error_log {tmp}/nginx-error.log error;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush {nopush};
    keepalive_requests 100000;
    keepalive_timeout 65s;
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{extra}    server {{
        listen 127.0.0.1:{port}{listen_tls};
        root {root};
{server_extra}    }}
}}
"""
OPEN_FILE_CACHE = "    open_file_cache max=1000 inactive=20s;\n    open_file_cache_valid 1s;\n"
# HTTPS: the certificate and key switchboard gets; TLS 1.3 only; OpenSSL's
# own session cache in the worker at OpenSSL's default size (20,480
# sessions: what switchboard's context has, untouched) and stateless
# session tickets (nginx's default, and OpenSSL's, which switchboard keeps).
# Under TLS 1.3 a resumption uses a ticket either way.
NGINX_TLS = """\
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_session_cache builtin:20480;
        ssl_session_tickets on;
"""


class NginxServer(Server):
    """nginx with a config generated per port (the config names the port)."""

    def __init__(self, name, nginx, tmp, root, extra="", nopush="off", prefix=(), tls=None,
                 worker_connections=1024):
        super().__init__(name, [])
        self.nginx, self.tmp, self.root, self.extra, self.nopush = nginx, tmp, root, extra, nopush
        self.prefix = list(prefix)
        self.tls = tls              # (cert, key) for HTTPS, else None
        self.worker_connections = worker_connections

    def command(self, port, work_us=0):
        conf = os.path.join(self.tmp, "nginx-%d.conf" % port)
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(
                tmp=self.tmp, port=port, root=self.root, extra=self.extra, nopush=self.nopush,
                worker_connections=self.worker_connections,
                listen_tls=" ssl" if self.tls else "",
                server_extra=NGINX_TLS.format(cert=self.tls[0], key=self.tls[1]) if self.tls else ""))
        return self.prefix + [self.nginx, "-e", os.path.join(self.tmp, "nginx-error.log"), "-p", self.tmp,
                "-c", conf]


def make_http_root(tmp):
    """The document root: a 30-byte text file and 16 KiB of bytes."""
    root = os.path.join(tmp, "www")
    os.makedirs(root, exist_ok=True)
    for _, name, size in HTTP_FILES:
        data = b"hello world, thirty bytes!!!\r\n" if size == 30 else bytes(
            (i * 7 + 3) & 255 for i in range(size))
        assert len(data) == size
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    return root


def sched_prefix(args):
    """`chrt -f 10` when --fifo asks for it and the system allows it: the
    server and wrk then preempt the rest of the machine's load at once
    instead of waiting for the scheduler to get round to them."""
    if not args.fifo:
        return []
    chrt = shutil.which("chrt")
    if chrt and subprocess.run([chrt, "-f", "10", "true"], capture_output=True).returncode == 0:
        return [chrt, "-f", "10"]
    print("bench: --fifo: chrt -f is not allowed here; running at normal priority", file=sys.stderr)
    args.fifo = False
    return []


def make_http_servers(args, tmp):
    root = make_http_root(tmp)
    servers = []
    pre = args.sched_prefix
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx:
        servers.append(NginxServer("nginx", nginx, tmp, root, nopush=args.nginx_nopush, prefix=pre))
        if not args.quick:
            servers.append(NginxServer("nginx open_file_cache", nginx, tmp, root, OPEN_FILE_CACHE,
                                       nopush=args.nginx_nopush, prefix=pre))
    base = pre + [args.switchboard, "serve", "--listen", "127.0.0.1:{port}", "--app", "http",
            "--root", root, "--model", "event", "--backend", "epoll"]
    servers.append(Server("sb event+epoll", base, sb=True, model="event"))
    if args.only == "http":   # the full run keeps to its time budget without it
        servers.append(Server("sb event+epoll no cache", base + ["--no-file-cache"], sb=True,
                              model="event"))
    return root, servers


# ------------------------------------------------------------------- HTTPS

# The HTTPS workload: the same files over TLS 1.3, wrk keep-alive with 50
# connections, and "handshakes": wrk with `Connection: close`, so each
# request is a new connection and a new TLS handshake (wrk resumes its
# session with the ticket of the last connection: see docs/performance.md).
HTTPS_WORKLOADS = [("30 B", "small.txt", 30, ()), ("16 KiB", "16k.bin", 16384, ()),
                   ("handshakes (wrk)", "small.txt", 30, ("-H", "Connection: close"))]
# New handshakes per second, measured with `switchboard bench --reconnect`
# (a connection, a TLS handshake and one GET of the 30-byte file per
# request, 50 at a time): full handshakes (no session offered), and
# resumed ones (each connection offers the ticket its slot's previous
# connection got). The client skips certificate verification (-k): both
# servers meet the same client, and its CPU per handshake stays below
# theirs (see the report's client columns).
HTTPS_HANDSHAKES = [("handshakes (full)", ()), ("handshakes (resumed)", ("--tls-resume",))]
HTTPS_TARGETS = {"30 B": 1.3, "16 KiB": 1.2, "handshakes (full)": 1.0,
                 "handshakes (resumed)": 1.0}
HTTPS_ROWS = [w[0] for w in HTTPS_WORKLOADS[:2]] + [h[0] for h in HTTPS_HANDSHAKES] + \
    [HTTPS_WORKLOADS[2][0]]
TLS_IDLE_CONNS = 1000


def make_cert(tmp):
    """A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1,
    made now with the openssl command; (cert, key) or None."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"], capture_output=True)
    return (cert, key) if r.returncode == 0 else None


def make_https_servers(args, tmp, root, pair):
    """nginx and switchboard over TLS, the same certificate for both."""
    servers = []
    pre = args.sched_prefix
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx:
        servers.append(NginxServer("nginx", nginx, tmp, root, nopush=args.nginx_nopush, prefix=pre,
                                   tls=pair, worker_connections=max(1024, args.tls_idle_conns + 100)))
    servers.append(Server("sb event+epoll", pre + [
        args.switchboard, "serve", "--listen", "127.0.0.1:{port}", "--app", "http", "--root", root,
        "--model", "event", "--backend", "epoll", "--tls-cert", pair[0], "--tls-key", pair[1]],
        sb=True, model="event"))
    return servers


def wrk_parse(out):
    """requests/s, MB/s, latency percentiles (µs), errors from wrk's text."""
    def num(pat, conv=float):
        m = re.search(pat, out)
        return conv(m.group(1)) if m else None

    def us(v, unit):
        return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    res = dict(requests_per_s=num(r"Requests/sec:\s+([\d.]+)"),
               requests=num(r"(\d+) requests in", int), latency_us={})
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out)
    if m:
        res["mb_per_s"] = float(m.group(1)) * {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576,
                                               "GB": 1073.741824}[m.group(2)]
    for pct, v, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        res["latency_us"]["p" + pct] = us(v, unit)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    res["non_2xx"] = num(r"Non-2xx or 3xx responses:\s+(\d+)", int) or 0
    return res


def http_fetch(port, path, timeout=5.0, cafile=None):
    """One GET with a fresh connection (HTTPS when cafile is given, which
    must then negotiate TLS 1.3): (status, body)."""
    import http.client
    if cafile:
        import ssl
        ctx = ssl.create_default_context(cafile=cafile)
        h = http.client.HTTPSConnection("localhost", port, timeout=timeout, context=ctx)
    else:
        h = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h.request("GET", path)
        r = h.getresponse()
        body = r.read()
        if cafile and h.sock is not None and h.sock.version() != "TLSv1.3":
            raise OSError("negotiated %s, not TLSv1.3" % h.sock.version())
        return r.status, body
    finally:
        h.close()


def http_load(m, rep, server, label, name, size, root, table="HTTP", cafile=None, extra=()):
    """One wrk run against a fresh server; server CPU sampled over
    [0.2 s, duration - 0.1 s] of wrk's run, divided by wrk's requests/s.
    table HTTPS: https:// (cafile: the certificate), extra: wrk options."""
    args = m.args
    cell = dict(rep=rep, table=table, server=server.name, workload=label, size=size,
                conns=HTTP_CONNS)
    r, why = m.start(server)
    if r is None:
        cell["error"] = why
        m.problems.append("rep %d %s %s %s: %s" % (rep, table, label, server.name, why))
        m.cells.append(cell)
        return cell
    try:
        with open(os.path.join(root, name), "rb") as f:
            want = f.read()
        st, body = http_fetch(r.port, "/" + name, cafile=cafile)
        if st != 200 or body != want:
            raise OSError("GET /%s: status %d, %d bytes, %s" % (
                name, st, len(body), "right body" if body == want else "wrong body"))
    except OSError as e:
        r.stop()
        cell["error"] = "check failed: %s" % e
        m.problems.append("rep %d %s %s %s: %s" % (rep, table, label, server.name, cell["error"]))
        m.cells.append(cell)
        return cell
    # wrk reconnecting under chrt -f (the handshakes cell) was seen to run
    # on far past -d and starve the machine: it keeps normal priority there.
    cmd = ["taskset", "-c", "1"] + (args.sched_prefix if not extra else []) + [
        args.wrk, "-t1", "-c%d" % HTTP_CONNS, "-d%ds" % args.http_duration, "--latency"] + list(extra) + [
        "%s://127.0.0.1:%d/%s" % ("https" if cafile else "http", r.port, name)]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    samples = []

    def sample():
        # wrk's thread takes its run time with it when it exits: a sample
        # taken after that (a starved runner) is no sample.
        if p.poll() is None:
            samples.append((time.monotonic(), r.cpu_us(), task_runtime_ns(p.pid)))
    timers = [threading.Timer(0.2, sample), threading.Timer(args.http_duration - 0.1, sample)]
    for t in timers:
        t.start()
    try:
        out, _ = p.communicate(timeout=args.http_duration + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    for t in timers:
        t.join()
    r.stop()
    res = wrk_parse(out)
    cell["wrk"] = res
    rps = res.get("requests_per_s")
    if len(samples) == 2 and rps and None not in samples[0] + samples[1] \
            and samples[1][2] >= samples[0][2]:
        (t0, c0, w0), (t1, c1, w1) = samples
        cell["server_cpu_us_per_req"] = (c1 - c0) / ((t1 - t0) * rps)
        cell["server_cpu_pct"] = 100.0 * (c1 - c0) / 1e6 / (t1 - t0)
        cell["wrk_cpu_pct"] = 100.0 * (w1 - w0) / 1e9 / (t1 - t0)
        cell["client_cpu_us_per_req"] = (w1 - w0) / 1e3 / ((t1 - t0) * rps)
    if p.returncode != 0 or not res.get("requests") or res["socket_errors"] or res["non_2xx"]:
        cell["error"] = "wrk exit %s, %s requests, %s socket errors, %s non-2xx: %s" % (
            p.returncode, res.get("requests"), res["socket_errors"], res["non_2xx"],
            " | ".join(out.strip().splitlines()[-2:]))
        m.problems.append("rep %d %s %s %s: %s" % (rep, table, label, server.name, cell["error"]))
    m.cells.append(cell)
    return cell


def hs_load(m, rep, server, label, root, cafile, extra=()):
    """One `switchboard bench --reconnect` run (a TLS handshake per request)
    against a fresh server, the cell shaped like http_load's (cell["wrk"]
    holds the client's figures under wrk's names). Server CPU is sampled
    from the client's "window begins" mark to 80% of its window, per
    connection; the client's CPU comes from its own report."""
    args = m.args
    cell = dict(rep=rep, table="HTTPS", server=server.name, workload=label, size=30,
                conns=HTTP_CONNS, client="switchboard bench")
    r, why = m.start(server)
    if r is None:
        cell["error"] = why
        m.problems.append("rep %d HTTPS %s %s: %s" % (rep, label, server.name, why))
        m.cells.append(cell)
        return cell
    # 80% of the window: slack for a runner that a loaded machine wakes late.
    cpu = WindowCpu(r, args.http_duration * 0.8)
    # --fifo: the client too (its run ends with its window and drain, unlike wrk's).
    cmd = ["taskset", "-c", "1"] + args.sched_prefix + [args.switchboard, "bench",
           "https://127.0.0.1:%d/small.txt" % r.port, "--reconnect", "-k", "-c", str(HTTP_CONNS),
           "--duration", str(args.http_duration), "--warmup", str(args.warmup), "--json",
           "--marks"] + list(extra)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    err = []

    def read_err():
        for line in p.stderr:
            err.append(line.rstrip("\n"))
            cpu.on_line(line)
    t = threading.Thread(target=read_err, daemon=True)
    t.start()
    try:
        out, _ = p.communicate(timeout=args.http_duration + args.warmup + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    t.join(2)
    cpu.join()
    r.stop()
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = None
    cell["bench"] = res
    if res is None:
        cell["error"] = "bench failed (exit %s): %s" % (p.returncode, " | ".join(err[-3:]))
        m.problems.append("rep %d HTTPS %s %s: %s" % (rep, label, server.name, cell["error"]))
        m.cells.append(cell)
        return cell
    rps = res.get("msgs_per_s")
    cell["wrk"] = dict(requests_per_s=rps, requests=res.get("messages"),
                       mb_per_s=res.get("mb_per_s"), latency_us=res.get("latency_us") or {},
                       socket_errors=res.get("errors_total"), non_2xx=0)
    if res.get("window_s"):
        cell["wrk_cpu_pct"] = 100.0 * res["client_cpu_s"] / res["window_s"]
    cell["client_cpu_us_per_req"] = res.get("client_cpu_us_per_msg")
    cell["resumed_pct"] = 100.0 * res["tls_resumed"] / res["tls_handshakes"] \
        if res.get("tls_handshakes") else None
    per = cpu.per(rps)
    if per is not None:
        cell["server_cpu_us_per_req"] = per
        cell["server_cpu_pct"] = cpu.pct()
    if p.returncode != 0 or res.get("errors_total") or not res.get("messages"):
        cell["error"] = "bench exit %s, %s connections, %s errors: %s" % (
            p.returncode, res.get("messages"), res.get("errors_total"), " | ".join(err[-2:]))
        m.problems.append("rep %d HTTPS %s %s: %s" % (rep, label, server.name, cell["error"]))
    m.cells.append(cell)
    return cell


def http_report(s, servers, fifo=False, verdict=True):
    """The HTTP table; verdict=False (--quick: one short run proves nothing
    about speed) leaves out the target lines."""
    L = ["\n## HTTP (wrk, keep-alive, %d conns)\n" % HTTP_CONNS,
         "`wrk -t1 -c%d --latency` on CPU 1 against a static file; the server on CPU 0 "
         "(switchboard `serve --app http`, event+epoll, one thread; nginx one process, "
         "sendfile on, access log off). Requests/s and latency from wrk; server CPU from "
         "schedstat over the run, per request; CPU %% of one core for the server and for wrk "
         "(near 100%% means that side is the limit). MB/s is wrk's Transfer/sec (response "
         "bytes, heads included).%s\n" % (HTTP_CONNS, " Server and wrk ran under `chrt -f 10` "
                                           "(--fifo)." if fifo else ""),
         "| file | server | requests/s | vs nginx | MB/s | p50 µs | p99 µs | server CPU µs/req "
         "| server CPU % | wrk CPU % |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, _, _ in HTTP_FILES:
        base = (s.get(("HTTP", label, "nginx")) or {}).get("rps")
        for x in servers:
            r = s.get(("HTTP", label, x.name))
            if r is None:
                continue
            ratio = r["rps"] / base if base and r["rps"] else None
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, x.name + ("" if r["ok"] == r["reps"] else " (%d/%d ok)" % (r["ok"], r["reps"])),
                fmt(r["rps"]), fmt(ratio, "%.2f"), fmt(r["mb"], "%.1f"), fmt(r["p50"]),
                fmt(r["p99"]), fmt(r["cpu"], "%.2f"), fmt(r["cpu_pct"]), fmt(r["wrk_pct"])))
    lines = []
    for (label, _, _), target in zip(HTTP_FILES if verdict else [], (1.5, 1.2)):
        sb = (s.get(("HTTP", label, "sb event+epoll")) or {}).get("rps")
        ng = (s.get(("HTTP", label, "nginx")) or {}).get("rps")
        if sb and ng:
            lines.append("%s %.2f× (target ≥ %.1f×: %s)" % (
                label, sb / ng, target, "met" if sb / ng >= target else "not met"))
    if lines:
        L.append("\nsb event+epoll / nginx requests/s: " + "; ".join(lines) + ".")
    return L


def https_paired(m, label, key=None):
    """sb event+epoll / nginx requests/s (or the cell's figure `key`) of the
    same repetition (the two cells run back to back, their order
    alternating by repetition)."""
    reps = {}
    for c in m.cells:
        if c["table"] == "HTTPS" and c["workload"] == label and c.get("wrk") and "error" not in c:
            v = c.get(key) if key else c["wrk"].get("requests_per_s")
            if v:
                reps.setdefault(c["rep"], {})[c["server"]] = v
    return [p["sb event+epoll"] / p["nginx"] for p in reps.values()
            if p.get("nginx") and p.get("sb event+epoll")]


def https_report(m, s, servers, fifo=False, verdict=True, conns=TLS_IDLE_CONNS):
    """The HTTPS table, its paired ratios and targets (not with --quick),
    and memory per idle TLS connection."""
    L = ["\n## HTTPS (TLS 1.3, %d conns)\n" % HTTP_CONNS,
         "The HTTP workload over TLS 1.3, both servers with the same ECDSA P-256 certificate "
         "(made at run time with `openssl req`), the client on CPU 1. \"30 B\" and \"16 KiB\": "
         "`wrk -t1 -c%d --latency https://...` (keep-alive). \"handshakes (full)\" and "
         "\"handshakes (resumed)\": `switchboard bench https://.../small.txt --reconnect -k "
         "-c%d` (`--tls-resume` for resumed), a new TCP connection and TLS handshake per "
         "request (`Connection: close`), full handshakes (no session offered: certificate, "
         "signature, X25519) or resumed ones (the ticket of the slot's previous connection "
         "offered: no certificate or signature, a fresh X25519 exchange); -k skips the "
         "client's certificate-chain check (the handshake's signature is still checked). "
         "\"handshakes (wrk)\": wrk with `-H 'Connection: close'` (wrk offers the ticket of "
         "its previous connection: resumed handshakes; wrk sits at its core's limit there). "
         "nginx: one process, `ssl_protocols TLSv1.3; ssl_session_cache builtin:20480; "
         "ssl_session_tickets on`; switchboard: `serve --app http --tls-cert --tls-key`, "
         "event+epoll, one thread. Requests/s (connections/s for handshakes) from the client; "
         "server CPU from schedstat, per request; client CPU per request from the client's "
         "own report (switchboard bench) or schedstat (wrk); CPU %% of one core (near 100%% "
         "means that side is the limit).%s\n" % (
             HTTP_CONNS, HTTP_CONNS,
             " Server, handshake client and wrk (but in its handshakes cell) ran under "
             "`chrt -f 10` (--fifo)." if fifo else ""),
         "| workload | server | requests/s | vs nginx | MB/s | p50 µs | p99 µs | server CPU µs/req "
         "| server CPU % | client CPU µs/req | client CPU % |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label in HTTPS_ROWS:
        base = (s.get(("HTTPS", label, "nginx")) or {}).get("rps")
        for x in servers:
            r = s.get(("HTTPS", label, x.name))
            if r is None:
                continue
            ratio = r["rps"] / base if base and r["rps"] else None
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, x.name + ("" if r["ok"] == r["reps"] else " (%d/%d ok)" % (r["ok"], r["reps"])),
                fmt(r["rps"]), fmt(ratio, "%.2f"), fmt(r["mb"], "%.1f"), fmt(r["p50"]),
                fmt(r["p99"]), fmt(r["cpu"], "%.2f"), fmt(r["cpu_pct"]),
                fmt(r["client_cpu"], "%.2f"), fmt(r["wrk_pct"])))
    lines = []
    for label in (HTTPS_ROWS if verdict else []):
        pr = https_paired(m, label)
        sb = (s.get(("HTTPS", label, "sb event+epoll")) or {}).get("rps")
        ng = (s.get(("HTTPS", label, "nginx")) or {}).get("rps")
        if not (sb and ng and pr):
            continue
        target = HTTPS_TARGETS.get(label)
        lines.append("- %s: ratio of medians %.2f×, paired median %.2f× (min %.2f, max %.2f, "
                     "%d pairs)%s" % (
                         label, sb / ng, statistics.median(pr), min(pr), max(pr), len(pr),
                         "; target ≥ %.1f×: %s" % (target, "met" if statistics.median(pr) >= target
                                                  else "not met") if target else
                         " (no target: wrk is the limit)"))
        cpu = https_paired(m, label, "server_cpu_us_per_req")
        if cpu:
            lines[-1] += "; server CPU per request, sb / nginx, paired median %.3f" % (
                statistics.median(cpu))
        # A client near 100% of its core sets the rate for both servers.
        cl = [(s.get(("HTTPS", label, n)) or {}).get("wrk_pct") for n in ("nginx", "sb event+epoll")]
        if None not in cl:
            lines[-1] += "; client at %.0f%% / %.0f%% of its core" % tuple(cl)
    if lines:
        L.append("\nsb event+epoll / nginx over HTTPS (the verdict judges the paired median):\n")
        L += lines
    mem = [(x.name, s.get(("TLSD", "TLSD", x.name))) for x in servers]
    if any(r for _, r in mem):
        L.append("\n## Memory per idle TLS connection\n")
        L.append("`bench/tls_hold.py` (CPU 1) opens %d TLS 1.3 connections one by one, one "
                 "keep-alive GET of the 30-byte file on each, and holds them idle; the server's "
                 "VmRSS growth from before the first to 0.2 s into the hold, per connection "
                 "(user space only, as workload D). The same client and the same server "
                 "configuration as the HTTPS cells (nginx's worker_connections raised to hold "
                 "them).\n" % conns)
        L.append("| server | RSS growth per idle TLS connection (bytes) | min | max |")
        L.append("|---|---:|---:|---:|")
        for n, r in mem:
            if r:
                L.append("| %s | %s | %s | %s |" % (n, fmt(r["rss"]), fmt(r["rss_min"]),
                                                   fmt(r["rss_max"])))
    return L


def http_summarize(m):
    groups = {}
    for c in m.cells:
        if c["table"] == "TLSD":
            groups.setdefault((c["table"], c["workload"], c["server"]), []).append(c)
    out = {}
    for key, cs in groups.items():
        v = [c["rss_bytes_per_conn"] for c in cs if "rss_bytes_per_conn" in c and "error" not in c]
        out[key] = dict(reps=len(cs), ok=len(v), rss=med(v), rss_min=min(v) if v else None,
                        rss_max=max(v) if v else None)
    groups = {}
    for c in m.cells:
        if c["table"] in ("HTTP", "HTTPS"):
            groups.setdefault((c["table"], c["workload"], c["server"]), []).append(c)
    for key, cs in groups.items():
        ok = [c for c in cs if c.get("wrk") and "error" not in c]
        w = [c["wrk"] for c in ok]
        out[key] = dict(reps=len(cs), ok=len(ok),
                        rps=med([x.get("requests_per_s") for x in w]),
                        mb=med([x.get("mb_per_s") for x in w]),
                        p50=med([x["latency_us"].get("p50") for x in w]),
                        p99=med([x["latency_us"].get("p99") for x in w]),
                        cpu=med([c.get("server_cpu_us_per_req") for c in ok]),
                        cpu_pct=med([c.get("server_cpu_pct") for c in ok]),
                        wrk_pct=med([c.get("wrk_cpu_pct") for c in ok]),
                        client_cpu=med([c.get("client_cpu_us_per_req") for c in ok]),
                        resumed=med([c.get("resumed_pct") for c in ok]))
    return out


# ------------------------------------------------------------------ report

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.0f"):
    return "—" if v is None else spec % v


def summarize(m):
    """Medians per (table, workload, server)."""
    groups = {}
    for c in m.cells:
        if c["table"] not in ("HTTP", "HTTPS", "TLSD"):
            groups.setdefault((c["table"], c["workload"], c["server"]), []).append(c)
    out = http_summarize(m)
    for key, cs in groups.items():
        ok = [c for c in cs if c.get("bench") and "error" not in c]
        b = [c["bench"] for c in ok]
        lat = lambda k: med([x["latency_us"][k] for x in b])
        out[key] = dict(
            reps=len(cs), ok=len(ok),
            msgs_per_s=med([x["msgs_per_s"] for x in b]),
            mb_per_s=med([x["mb_per_s"] for x in b]),
            p50=lat("p50") if b else None, p99=lat("p99") if b else None,
            p999=lat("p99.9") if b else None, max=lat("max") if b else None,
            server_cpu=med([c.get("server_cpu_us_per_msg") for c in ok]),
            client_cpu=med([x.get("client_cpu_us_per_msg") for x in b]),
            agreement=med([c.get("agreement_pct") for c in ok]),
            rss=med([c.get("rss_bytes_per_conn") for c in ok]),
        )
    return out


def ratio_of_medians(s, w):
    a = (s.get(("ABC", w, "sb event+epoll")) or {}).get("msgs_per_s")
    b = (s.get(("ABC", w, "bare_epoll")) or {}).get("msgs_per_s")
    return a / b if a and b else None


def paired_ratios(m, w, name="sb event+epoll"):
    """msgs/s of name over bare epoll, per back-to-back group."""
    pairs = {}
    for c in m.cells:
        if c.get("pair") and c["workload"] == w and c.get("bench") and "error" not in c:
            pairs.setdefault(c["pair"], {})[c["server"]] = c["bench"]["msgs_per_s"]
    return [p[name] / p["bare_epoll"] for p in pairs.values()
            if p.get("bare_epoll") and p.get(name)]


def uring_report(args, m, s):
    """sb event+uring against the bare epoll loop: the paired ratios and
    the server CPU per message, judged against URING_TARGETS; and whether
    the client cost less per message than the servers it drove."""
    lines = []
    for w in [w for w in args.workloads if w in URING_TARGETS]:
        pr = paired_ratios(m, w, "sb event+uring")
        u = s.get(("ABC", w, "sb event+uring")) or {}
        b = s.get(("ABC", w, "bare_epoll")) or {}
        if not pr or not u.get("msgs_per_s") or not b.get("msgs_per_s"):
            continue
        target, med_pr = URING_TARGETS[w], statistics.median(pr)
        cpu = "—"
        if u.get("server_cpu") and b.get("server_cpu"):
            cpu = "%.2f vs %.2f µs/msg (%s)" % (
                u["server_cpu"], b["server_cpu"],
                "below" if u["server_cpu"] < b["server_cpu"] else "not below")
        lines.append("- %s: ratio of medians %.2f×, paired median %.2f× (min %.2f, max %.2f, %d "
                     "pairs); target ≥ %.2f×: %s. Server CPU, sb event+uring vs bare epoll: %s. "
                     "Client CPU against them: %s and %s µs/msg." % (
                         w, u["msgs_per_s"] / b["msgs_per_s"], med_pr, min(pr), max(pr),
                         len(pr), target, "met" if med_pr >= target else "not met", cpu,
                         fmt(u.get("client_cpu"), "%.2f"), fmt(b.get("client_cpu"), "%.2f")))
    if not lines:
        return []
    return ["\n## sb event+uring vs the bare epoll loop\n",
            "sb event+uring and bare epoll back to back in each repetition (%d+%d pairs per "
            "workload, the order alternating), client `bench --backend %s`; the verdict judges "
            "the paired median of msgs/s, and the server CPU per message (medians) must be "
            "below the bare loop's. Where the client's CPU per message is not below the "
            "servers', the client is the limit and the ratio says less than the CPU figures.\n"
            % (1, args.pairs, args.client_backend or "epoll")] + lines


def report(args, m, servers, elapsed, http_servers=(), https_servers=()):
    s = summarize(m)
    names = [x.name for x in servers]
    L = []
    L.append("# switchboard bench results\n")
    L.append("Run: `%s`, %s, %d repetition(s), %.1f s per cell (+%.2f s warmup), "
             "total %.0f s. Server pinned to CPU 0, client to CPU 1. Values are medians "
             "over repetitions; MB/s counts payload both ways.%s\n"
             % (" ".join(sys.argv[1:]), time.strftime("%Y-%m-%d %H:%M:%S"),
                args.reps, args.duration, args.warmup, elapsed,
                " HTTP cells: %d s of wrk each." % args.http_duration if http_servers else ""))
    L.append("Machine: %s, %d CPUs, Linux %s.\n" % (cpu_model(), os.cpu_count(), os.uname().release))
    L.append("Client: `switchboard bench --backend %s`%s for every load cell of every server.%s\n" % (
        args.client_backend or "epoll",
        " (the completion-based engine)" if args.client_backend == "uring" else "",
        " " + args.client_note[0].upper() + args.client_note[1:] + "." if args.client_note else
        " (client binary: %s)" % args.client if args.client != args.switchboard else ""))
    if args.quick:
        L.append("A --quick run: one short pass that checks every cell works. Its figures are "
                 "not measurements and it judges no target; `make bench` measures.\n")
    for w in args.workloads:
        spec = WORKLOADS[w]
        base = (s.get(("ABC", w, "bare_epoll")) or {}).get("msgs_per_s")
        L.append("\n## Workload %s: %d B, %d conns, pipeline %d\n" % (w, spec["size"], spec["conns"], spec["pipeline"]))
        L.append("| server | msgs/s | vs bare epoll | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/msg | client CPU µs/msg |%s" % (" served/bench |" if w == "A" else ""))
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|%s" % ("---:|" if w == "A" else ""))
        for n in names:
            r = s.get(("ABC", w, n))
            if r is None:
                continue
            ratio = r["msgs_per_s"] / base if base and r["msgs_per_s"] else None
            row = "| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                n + ("" if r["ok"] == r["reps"] else " (%d/%d ok)" % (r["ok"], r["reps"])),
                fmt(r["msgs_per_s"]), fmt(ratio, "%.2f"), fmt(r["mb_per_s"], "%.1f"),
                fmt(r["p50"]), fmt(r["p99"]), fmt(r["p999"]),
                fmt(r["server_cpu"], "%.2f"), fmt(r["client_cpu"], "%.2f"))
            if w == "A":
                row += " %s |" % (fmt(r["agreement"], "%.2f%%") if n.startswith("sb ") else "n/a")
            L.append(row)
        pr = paired_ratios(m, w)
        if pr:
            L.append("\nParity, paired: sb event+epoll / bare epoll run back to back in %d pairs: "
                     "median ratio %.3f (min %.2f, max %.2f), sb ahead in %d of %d; ratio of the "
                     "medians above: %s.\n" % (
                         len(pr), statistics.median(pr), min(pr), max(pr), sum(x >= 1 for x in pr),
                         len(pr), fmt(ratio_of_medians(s, w), "%.3f")))
    L += uring_report(args, m, s)
    if args.table51:
        L.append("\n## HOWTO 5.1: dispatch models (64 B, pipeline 1; msgs/s, p99 µs, server CPU µs/msg)\n")
        labels = sorted({c["workload"] for c in m.cells if c["table"] == "5.1"},
                        key=lambda x: (int(x.split("c/")[0]), x))
        t51 = ["sb threads", "sb fork", "sb event+select", "sb event+poll", "sb event+epoll"]
        L.append("| conns / work | " + " | ".join(t51) + " |")
        L.append("|---|" + "---:|" * len(t51))
        for lab in labels:
            row = "| %s |" % lab.replace("c/", " conns, work ").replace("us", " µs")
            for n in t51:
                r = s.get(("5.1", lab, n))
                if r is None or r["msgs_per_s"] is None:
                    row += " failed |" if r else " — |"
                else:
                    row += " %s / %s / %s |" % (fmt(r["msgs_per_s"]), fmt(r["p99"]), fmt(r["server_cpu"], "%.1f"))
            L.append(row)
    if args.idle:
        L.append("\n## Workload D: %d idle connections (one message each), server RSS\n" % args.idle_conns)
        L.append("| server | RSS growth per connection (bytes) |")
        L.append("|---|---:|")
        for n in names:
            r = s.get(("D", "D", n))
            if r is not None:
                L.append("| %s | %s |" % (n, fmt(r["rss"])))
    if http_servers and any(c["table"] == "HTTP" for c in m.cells):
        L += http_report(s, http_servers, args.fifo, verdict=not args.quick)
    if https_servers:
        L += https_report(m, s, https_servers, args.fifo, verdict=not args.quick,
                          conns=args.tls_idle_conns)
    if m.problems:
        L.append("\n## Problems\n")
        L += ["- " + p for p in m.problems]
    return "\n".join(L) + "\n", s


def chart_data(args, s, servers, http_servers=()):
    data = dict(title="switchboard bench: msgs/s (median)", panels=[])
    for w in args.workloads:
        spec = WORKLOADS[w]
        bars = []
        for x in servers:
            r = s.get(("ABC", w, x.name))
            if r and r["msgs_per_s"]:
                bars.append([x.name, r["msgs_per_s"]])
        data["panels"].append(dict(title="%s: %d B, %d conns, pipeline %d" % (
            w, spec["size"], spec["conns"], spec["pipeline"]), bars=bars))
    for label, _, _ in (HTTP_FILES if http_servers else []):
        bars = [[x.name, s[("HTTP", label, x.name)]["rps"]] for x in http_servers
                if (s.get(("HTTP", label, x.name)) or {}).get("rps")]
        data["panels"].append(dict(title="HTTP %s file: requests/s (wrk, keep-alive, %d conns)" % (
            label, HTTP_CONNS), bars=bars))
    return data


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


# -------------------------------------------------------------------- main

def probe(args):
    """What this switchboard binary offers: --work-us, the uring backend."""
    h = subprocess.run([args.switchboard, "serve", "--help"], capture_output=True, text=True)
    args.work_us_supported = "--work-us" in (h.stdout + h.stderr)
    args.uring = False
    if args.no_uring:
        return
    r = Running(Server("uring probe", [args.switchboard, "serve", "--listen", "127.0.0.1:{port}",
                                       "--app", "echo", "--backend", "uring"], sb=True), args.port - 1)
    args.uring = r.wait_ready(3)
    r.stop()


def probe_client(args):
    """The client's backend: the one asked for, else uring where bench's
    completion engine runs here, else epoll. Returns an error or None."""
    if args.client_backend == "epoll":
        return None
    r = Running(Server("client probe", [args.switchboard, "serve", "--listen", "127.0.0.1:{port}",
                                        "--app", "echo", "--frame", "len32"], sb=True), args.port - 2)
    try:
        if not r.wait_ready(3):
            return "the client probe's server did not start"
        p = subprocess.run([args.client, "bench", "127.0.0.1:%d" % r.port, "--frame", "len32",
                            "-n", "10", "--backend", "uring", "--json"],
                           capture_output=True, text=True, timeout=30)
    finally:
        r.stop()
    if p.returncode == 0:
        args.client_backend = "uring"
        return None
    why = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
    if args.client_backend == "uring":
        return "--client-backend uring: " + why
    args.client_backend = "epoll"
    args.client_note = "bench --backend uring cannot run here (%s); the client is on epoll" % why
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("switchboard", help="the switchboard binary")
    ap.add_argument("--peers", required=True, help="directory of the built peers")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke: 1 rep, 0.5 s cells, a subset, fails on any error")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=1,
                    help="A and B: extra back-to-back bare epoll / sb event+epoll pairs per repetition")
    ap.add_argument("--duration", type=float, default=1.0, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=0.25)
    ap.add_argument("--hold", type=float, default=1.0, help="workload D: seconds to hold")
    ap.add_argument("--idle-conns", type=int, default=D_CONNS)
    ap.add_argument("--workloads", default="A,A300,A1000,B,C",
                    help="of A, A300, A1000, B, C (A1000 is left out of --quick)")
    ap.add_argument("--client", metavar="BIN",
                    help="the switchboard binary whose bench is the client (default: the one "
                         "under test), to hold the client fixed while servers change")
    ap.add_argument("--client-backend", choices=["uring", "epoll"],
                    help="the client's backend for every load cell (default: uring where "
                         "bench can use it, else epoll)")
    ap.add_argument("--no-51", dest="table51", action="store_false")
    ap.add_argument("--no-idle", dest="idle", action="store_false")
    ap.add_argument("--no-uring", action="store_true")
    ap.add_argument("--no-http", dest="http", action="store_false")
    ap.add_argument("--no-https", dest="https", action="store_false")
    ap.add_argument("--tls-idle-conns", type=int, default=TLS_IDLE_CONNS,
                    help="HTTPS: idle TLS connections held for the memory figure")
    ap.add_argument("--only", choices=["http", "https"], help="run one workload alone")
    ap.add_argument("--http-duration", type=int, default=1, help="HTTP: seconds per wrk run")
    ap.add_argument("--fifo", action="store_true",
                    help="HTTP: run server and wrk under chrt -f 10 (shields them from other load)")
    ap.add_argument("--nginx-nopush", choices=["on", "off"], default="on",
                    help="nginx tcp_nopush (default on, as Debian ships it: head and file go out "
                         "in one segment, which costs nginx two setsockopt per response and still "
                         "measured faster here than off)")
    ap.add_argument("--port", type=int, default=21000)
    ap.add_argument("--out", help="results directory (default bench/results, --quick: build/bench-quick)")
    args = ap.parse_args()
    args.switchboard = os.path.abspath(args.switchboard)
    args.client = os.path.abspath(args.client or args.switchboard)
    args.workloads = parse_workloads(args.workloads)
    if args.only in ("http", "https"):
        args.workloads, args.table51, args.idle, args.http = [], False, False, True
        args.https = args.only == "https"
    if args.quick:
        args.reps, args.duration, args.warmup, args.hold = 1, 0.5, 0.1, 0.5
        args.workloads = [w for w in args.workloads if w != "A1000"]
        args.idle_conns = min(args.idle_conns, 500)
        args.tls_idle_conns = min(args.tls_idle_conns, 100)
    out = args.out or (os.path.join(ROOT, "build", "bench-quick") if args.quick
                       else os.path.join(HERE, "results"))
    os.makedirs(out, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    probe(args)
    args.client_note = None
    err = probe_client(args)
    if err:
        print("bench: %s" % err, file=sys.stderr)
        return 1
    servers = make_servers(args)
    m = Matrix(args)
    http_tmp, http_root, http_servers = None, None, []
    args.wrk = shutil.which("wrk")
    args.sched_prefix = []
    if args.http and args.wrk is None:
        m.problems.append("HTTP: wrk is not installed; the HTTP workload was not run")
    elif args.http:
        http_tmp = tempfile.mkdtemp(prefix="sb-bench-http-")
        args.sched_prefix = sched_prefix(args)
        http_root, http_servers = make_http_servers(args, http_tmp)
        if not any(isinstance(x, NginxServer) for x in http_servers):
            m.problems.append("HTTP: nginx is not installed; no comparison")
    https_servers, cafile = [], None
    if args.https and http_root:
        pair = make_cert(http_tmp)
        if pair is None:
            m.problems.append("HTTPS: the openssl command could not make a certificate; not run")
        else:
            cafile = pair[0]
            https_servers = make_https_servers(args, http_tmp, http_root, pair)
    cells = plan(args, servers, http_servers, http_root, https_servers, cafile)
    per = args.duration + args.warmup + 0.4
    nhttp = sum(1 for c in cells if c[0] in ("http", "hs", "tlsidle"))
    print("bench: %d cells x %d reps, about %.0f s (--work-us %s, uring %s, client %s)" % (
        len(cells), args.reps, ((len(cells) - nhttp) * per + nhttp * (args.http_duration + 0.6)) * args.reps,
        "yes" if args.work_us_supported else "no", "yes" if args.uring else "no",
        args.client_backend), file=sys.stderr)
    t0 = time.monotonic()
    for rep in range(1, args.reps + 1):
        # HTTPS pairs alternate their order by repetition (nginx first in
        # odd ones, switchboard first in even ones).
        cells = plan(args, servers, http_servers, http_root,
                     https_servers if rep % 2 else https_servers[::-1], cafile)
        for i, c in enumerate(cells):
            if c[0] == "load":
                _, table, server, label, size, conns, pipe, wu, pair = c
                cell = m.load(rep, table, server, label, size, conns, pipe, wu, pair)
                b = cell.get("bench") or {}
                print("rep %d [%d/%d] %-4s %-10s %-16s %10s msgs/s  p99 %s µs%s" % (
                    rep, i + 1, len(cells), table, label, server.name,
                    fmt(b.get("msgs_per_s")), fmt((b.get("latency_us") or {}).get("p99")),
                    "  ERROR" if "error" in cell else ""), file=sys.stderr)
            elif c[0] == "http":
                _, server, label, name, size, root, table, cafile, extra = c
                cell = http_load(m, rep, server, label, name, size, root, table, cafile, extra)
                w = cell.get("wrk") or {}
                print("rep %d [%d/%d] %-5s %-10s %-22s %10s req/s  p99 %s µs  server %s µs/req%s" % (
                    rep, i + 1, len(cells), table, label, server.name, fmt(w.get("requests_per_s")),
                    fmt((w.get("latency_us") or {}).get("p99")),
                    fmt(cell.get("server_cpu_us_per_req"), "%.2f"),
                    "  ERROR" if "error" in cell else ""), file=sys.stderr)
            elif c[0] == "hs":
                _, server, label, root, cafile, extra = c
                cell = hs_load(m, rep, server, label, root, cafile, extra)
                w = cell.get("wrk") or {}
                print("rep %d [%d/%d] HTTPS %-20s %-16s %10s conn/s  p99 %s µs  server %s µs/conn"
                      "  client %s µs/conn%s" % (
                          rep, i + 1, len(cells), label, server.name, fmt(w.get("requests_per_s")),
                          fmt((w.get("latency_us") or {}).get("p99")),
                          fmt(cell.get("server_cpu_us_per_req"), "%.2f"),
                          fmt(cell.get("client_cpu_us_per_req"), "%.2f"),
                          "  ERROR" if "error" in cell else ""), file=sys.stderr)
            elif c[0] == "tlsidle":
                _, server, conns, cafile = c
                cell = m.tls_idle(rep, server, conns, cafile)
                print("rep %d [%d/%d] TLS  %-10s %-16s %s B/conn%s" % (
                    rep, i + 1, len(cells), "%d idle" % conns, server.name,
                    fmt(cell.get("rss_bytes_per_conn")), "  ERROR" if "error" in cell else ""),
                    file=sys.stderr)
            else:
                _, server, conns = c
                cell = m.idle(rep, server, conns)
                print("rep %d [%d/%d] D    %-10s %-16s %s B/conn%s" % (
                    rep, i + 1, len(cells), "%d idle" % conns, server.name,
                    fmt(cell.get("rss_bytes_per_conn")), "  ERROR" if "error" in cell else ""),
                    file=sys.stderr)
    elapsed = time.monotonic() - t0
    if http_tmp:
        shutil.rmtree(http_tmp, ignore_errors=True)
    text, s = report(args, m, servers, elapsed, http_servers, https_servers)
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "latest.json"), "w") as f:
        json.dump(dict(argv=sys.argv[1:], elapsed_s=elapsed, client_backend=args.client_backend,
                       cells=m.cells), f, indent=1)
    with open(os.path.join(out, "chart.json"), "w") as f:
        json.dump(chart_data(args, s, servers, http_servers), f)
    subprocess.run([sys.executable, os.path.join(HERE, "chart.py"), os.path.join(out, "chart.json"),
                    os.path.join(out, "latest.svg")], check=False)
    print(text)
    print("bench: wrote %s/latest.{md,json,svg}" % out, file=sys.stderr)
    if args.quick and m.problems:
        print("bench: FAILED: %d problem(s)" % len(m.problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
