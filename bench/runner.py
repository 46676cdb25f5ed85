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
  A  64 B,   50 conns, pipeline 1
  B  64 B,   50 conns, pipeline 16
  C  16 KiB, 10 conns, pipeline 1
  D  10,000 idle connections after one message each: server RSS per conn
  5.1  threads / fork / event(select, poll, epoll) x 10, 100, 1000 conns
       x --work-us 0, 50 (64 B, pipeline 1)

Standard library only.
"""
import argparse
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WORKLOADS = {
    "A": dict(size=64, conns=50, pipeline=1),
    "B": dict(size=64, conns=50, pipeline=16),
    "C": dict(size=16384, conns=10, pipeline=1),
}
D_CONNS = 10000


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

def run_bench(args, port, size, conns, pipeline, duration, extra=(), on_line=None):
    cmd = ["taskset", "-c", "1", args.switchboard, "bench", "127.0.0.1:%d" % port,
           "--conns", str(conns), "--pipeline", str(pipeline), "--size", str(size),
           "--duration", str(duration), "--warmup", str(args.warmup),
           "--frame", "len32", "--json", "--marks"] + list(extra)
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

    def load(self, rep, table, server, label, size, conns, pipeline, work_us=0):
        cell = dict(rep=rep, table=table, server=server.name, workload=label,
                    size=size, conns=conns, pipeline=pipeline, work_us=work_us)
        r, why = self.start(server, work_us)
        if r is None:
            cell["error"] = why
            self.cells.append(cell)
            self.problems.append("rep %d %s %s: %s" % (rep, label, server.name, why))
            return cell
        marks = {}

        def sample_end():
            marks["end"] = (time.monotonic(), r.cpu_us())

        def on_line(line):
            # A sub-window strictly inside the client's: from the moment the
            # begin mark is seen to 0.1 s before the client's window ends,
            # so the server is sampled while every connection is open.
            if "window begins" in line:
                marks["begin"] = (time.monotonic(), r.cpu_us())
                timer = threading.Timer(max(0.05, self.args.duration - 0.1), sample_end)
                timer.start()
                marks["timer"] = timer
            elif "window ends" in line:
                marks["ends_seen"] = time.monotonic()
        res, err = run_bench(self.args, r.port, size, conns, pipeline, self.args.duration,
                             on_line=on_line)
        if "timer" in marks:
            marks["timer"].join()
        served = r.stop()
        cell["bench"] = res
        if res is None:
            cell["error"] = "bench failed: " + " | ".join(err[-3:])
        else:
            total = res.get("received_total") or 0
            b, e = marks.get("begin"), marks.get("end")
            # A sample taken after the client's window closed (a starved
            # runner) may miss threads or children that already exited:
            # no figure rather than a wrong one.
            late = e is not None and e[0] > marks.get("ends_seen", float("inf"))
            if b and e and b[1] is not None and e[1] is not None and res.get("msgs_per_s") \
                    and not late and e[1] >= b[1]:
                cell["server_cpu_us_per_msg"] = (e[1] - b[1]) / ((e[0] - b[0]) * res["msgs_per_s"])
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


def plan(args, servers):
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
        for n in names:
            cells.append(("load", "ABC", by[n], w, spec["size"], spec["conns"], spec["pipeline"], 0))
    if args.table51:
        t51 = ["sb threads", "sb fork", "sb event+select", "sb event+poll", "sb event+epoll"]
        conns = [10] if args.quick else [10, 100, 1000]
        works = [0, 50] if by["sb event+epoll"].work else [0]
        for c in conns:
            for wu in works:
                for n in t51:
                    cells.append(("load", "5.1", by[n], "%dc/%dus" % (c, wu), 64, c, 1, wu))
    if args.idle:
        dnames = ["bare_epoll", "libuv", "libevent", "asyncio", "sb event+epoll"]
        if args.quick:
            dnames = ["bare_epoll", "sb event+epoll"]
        for n in dnames:
            cells.append(("idle", by[n], args.idle_conns))
    return cells


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
        groups.setdefault((c["table"], c["workload"], c["server"]), []).append(c)
    out = {}
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


def report(args, m, servers, elapsed):
    s = summarize(m)
    names = [x.name for x in servers]
    L = []
    L.append("# switchboard bench results\n")
    L.append("Run: `%s`, %s, %d repetition(s), %.1f s per cell (+%.2f s warmup), "
             "total %.0f s. Server pinned to CPU 0, client to CPU 1. Values are medians "
             "over repetitions; MB/s counts payload both ways.\n"
             % (" ".join(sys.argv[1:]), time.strftime("%Y-%m-%d %H:%M:%S"),
                args.reps, args.duration, args.warmup, elapsed))
    L.append("Machine: %s, %d CPUs, Linux %s.\n" % (cpu_model(), os.cpu_count(), os.uname().release))
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
    if m.problems:
        L.append("\n## Problems\n")
        L += ["- " + p for p in m.problems]
    return "\n".join(L) + "\n", s


def chart_data(args, s, servers):
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("switchboard", help="the switchboard binary")
    ap.add_argument("--peers", required=True, help="directory of the built peers")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke: 1 rep, 0.5 s cells, a subset, fails on any error")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=1.0, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=0.25)
    ap.add_argument("--hold", type=float, default=1.0, help="workload D: seconds to hold")
    ap.add_argument("--idle-conns", type=int, default=D_CONNS)
    ap.add_argument("--workloads", default="ABC")
    ap.add_argument("--no-51", dest="table51", action="store_false")
    ap.add_argument("--no-idle", dest="idle", action="store_false")
    ap.add_argument("--no-uring", action="store_true")
    ap.add_argument("--port", type=int, default=21000)
    ap.add_argument("--out", help="results directory (default bench/results, --quick: build/bench-quick)")
    args = ap.parse_args()
    args.switchboard = os.path.abspath(args.switchboard)
    args.workloads = [w for w in args.workloads.upper() if w in WORKLOADS]
    if args.quick:
        args.reps, args.duration, args.warmup, args.hold = 1, 0.5, 0.1, 0.5
        args.idle_conns = min(args.idle_conns, 500)
    out = args.out or (os.path.join(ROOT, "build", "bench-quick") if args.quick
                       else os.path.join(HERE, "results"))
    os.makedirs(out, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    probe(args)
    servers = make_servers(args)
    m = Matrix(args)
    cells = plan(args, servers)
    per = args.duration + args.warmup + 0.4
    print("bench: %d cells x %d reps, about %.0f s (--work-us %s, uring %s)" % (
        len(cells), args.reps, len(cells) * args.reps * per,
        "yes" if args.work_us_supported else "no", "yes" if args.uring else "no"), file=sys.stderr)
    t0 = time.monotonic()
    for rep in range(1, args.reps + 1):
        for i, c in enumerate(cells):
            if c[0] == "load":
                _, table, server, label, size, conns, pipe, wu = c
                cell = m.load(rep, table, server, label, size, conns, pipe, wu)
                b = cell.get("bench") or {}
                print("rep %d [%d/%d] %-4s %-10s %-16s %10s msgs/s  p99 %s µs%s" % (
                    rep, i + 1, len(cells), table, label, server.name,
                    fmt(b.get("msgs_per_s")), fmt((b.get("latency_us") or {}).get("p99")),
                    "  ERROR" if "error" in cell else ""), file=sys.stderr)
            else:
                _, server, conns = c
                cell = m.idle(rep, server, conns)
                print("rep %d [%d/%d] D    %-10s %-16s %s B/conn%s" % (
                    rep, i + 1, len(cells), "%d idle" % conns, server.name,
                    fmt(cell.get("rss_bytes_per_conn")), "  ERROR" if "error" in cell else ""),
                    file=sys.stderr)
    elapsed = time.monotonic() - t0
    text, s = report(args, m, servers, elapsed)
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "latest.json"), "w") as f:
        json.dump(dict(argv=sys.argv[1:], elapsed_s=elapsed, cells=m.cells), f, indent=1)
    with open(os.path.join(out, "chart.json"), "w") as f:
        json.dump(chart_data(args, s, servers), f)
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
