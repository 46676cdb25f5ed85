#!/usr/bin/env python3
"""e2e_multihost: switchboard behind HAProxy across hosts made of network
namespaces - the deployment of docs/deploy.md, under load, with failures.

Hosts (namespaces made by this test, named after its pid so that parallel
runs never clash, always deleted at the end):

    client 10.99.0.2 --- 10.99.0.1 haproxy 10.99.i.1 --- 10.99.i.2 sb<i>   (i = 1, 2, 3)

HAProxy runs deploy/haproxy.cfg itself (only the backend addresses and a
stats socket are filled in): leastconn, health checks every 500 ms with a
PROXY header, retries with redispatch, HTTP retry-on. Each sb host runs the
http app and the echo app with --proxy-protocol, two workers each.

During a bounded load run (switchboard bench over HTTP, and 30 echo
connections pinging through HAProxy) host 1 is killed (SIGKILL) and host 2
is restarted (a new instance with --reuseport, then SIGTERM to the old).
Then: the HTTP client saw no error; the echo connections that ended are at
most those that host 1 and host 2 held (host 3's all survive) and no reply
was ever wrong; the access logs show the client host's address for every
client request, never HAProxy's.

Needs root (ip netns) and HAProxy: CI runs as root and installs haproxy. If
namespaces cannot be made here the test FAILS, saying why.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

args = sbtest.parse_args()
BIN = os.path.abspath(args.bin)
r = sbtest.Runner("e2e_multihost", args)
PID = os.getpid()
HOSTS = ["c", "h", "s1", "s2", "s3"]
NS = {h: f"sb{PID}{h}" for h in HOSTS}
CLIENT_IP, LB_IP = "10.99.0.2", "10.99.0.1"
SB_IP = {i: f"10.99.{i}.2" for i in (1, 2, 3)}
LB_SIDE = {i: f"10.99.{i}.1" for i in (1, 2, 3)}
LOAD_S = 6.0

procs = []


def sh(*cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def ns_exec(host, *cmd):
    return ["ip", "netns", "exec", NS[host], *cmd]


class Proc:
    """A process in a namespace, its stderr in a file. `ip netns exec`
    execs the command, so the pid is the command's own."""

    def __init__(self, host, cmd, name, tmp, ready=None):
        self.name = name
        self.errpath = os.path.join(tmp, name + ".err")
        self.err = open(self.errpath, "wb")
        self.p = subprocess.Popen(ns_exec(host, *cmd), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=self.err,
                                  start_new_session=True)
        procs.append(self)
        if ready and not sbtest.wait_until(lambda: ready in self.stderr() or
                                           self.p.poll() is not None, 10):
            raise AssertionError(f"{name} did not start: {self.stderr()!r}")
        if ready and ready not in self.stderr():
            raise AssertionError(f"{name} exited {self.p.poll()}: {self.stderr()!r}")

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout):
        return self.p.wait(timeout=timeout)


def setup_hosts():
    if os.geteuid() != 0:
        raise AssertionError("needs root to create network namespaces (ip netns): "
                             "run as root (CI does)")
    if shutil.which("ip") is None:
        raise AssertionError("`ip` (iproute2) is not installed")
    if shutil.which("haproxy") is None:
        raise AssertionError("haproxy is not installed (apt-get install haproxy)")
    for h in HOSTS:
        p = sh("ip", "netns", "add", NS[h], check=False)
        if p.returncode != 0:
            raise AssertionError(f"cannot create network namespaces here (ip netns add: "
                                 f"{p.stderr.strip()}); this test needs them")
        sh("ip", "-n", NS[h], "link", "set", "lo", "up")

    def link(a, a_if, a_ip, b, b_if, b_ip):
        sh("ip", "link", "add", a_if, "netns", NS[a], "type", "veth", "peer", "name", b_if,
           "netns", NS[b])
        for host, ifn, ip in ((a, a_if, a_ip), (b, b_if, b_ip)):
            sh("ip", "-n", NS[host], "addr", "add", ip + "/24", "dev", ifn)
            sh("ip", "-n", NS[host], "link", "set", ifn, "up")

    link("c", f"v{PID}c", CLIENT_IP, "h", f"v{PID}hc", LB_IP)
    for i in (1, 2, 3):
        link(f"s{i}", f"v{PID}s{i}", SB_IP[i], "h", f"v{PID}h{i}", LB_SIDE[i])


def teardown():
    for p in procs:
        p.kill()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        p.err.close()
    for h in HOSTS:
        subprocess.run(["ip", "netns", "del", NS[h]], capture_output=True, timeout=30)


def start_sb(i, tmp, root, gen):
    """The http and echo servers of host i (gen: 0 first, 1 restarted)."""
    common = ["--workers", "2", "--reuseport", "--proxy-protocol", "--drain-timeout", "1"]
    http = Proc(f"s{i}", [BIN, "serve", "--app", "http", "--root", root,
                          "--listen", f"{SB_IP[i]}:8080", "--access-log",
                          os.path.join(tmp, f"access{i}.log")] + common,
                f"http{i}.{gen}", tmp, ready="listening on")
    echo = Proc(f"s{i}", [BIN, "serve", "--listen", f"{SB_IP[i]}:7000",
                          "--metrics", f"{SB_IP[i]}:{9102 + gen}"] + common,
                f"echo{i}.{gen}", tmp, ready="listening on")
    return http, echo


def haproxy_config(tmp):
    with open(os.path.join(args.src, "deploy", "haproxy.cfg")) as f:
        cfg = f.read()
    for i in (1, 2, 3):
        cfg = cfg.replace(f"10.0.1.1{i}:", f"{SB_IP[i]}:")
    # The shipped maxconn wants ~200,000 descriptors; a test needs few.
    cfg = cfg.replace("maxconn 100000", "maxconn 2000")
    sock = os.path.join(tmp, "haproxy.sock")
    cfg = cfg.replace("global\n", f"global\n    stats socket {sock} mode 600 level admin\n", 1)
    path = os.path.join(tmp, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    return path, sock


def haproxy_status(sock):
    """{(backend, server): status} from HAProxy's stats socket (a unix
    socket: reachable from this namespace)."""
    import socket as so
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    out = {}
    for line in data.decode().splitlines():
        f = line.split(",")
        if len(f) > 17 and not line.startswith("#") and f[1] not in ("FRONTEND", "BACKEND"):
            out[(f[0], f[1])] = f[17]
    return out


ECHO_CLIENT = r"""
import json, select, socket, sys, time
host, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
conns = {}
for i in range(n):
    s = socket.create_connection((host, port), timeout=5)
    s.setblocking(False)
    conns[i] = [s, b""]
ended, wrong, rounds = {}, 0, 0
t0 = time.monotonic()
while time.monotonic() - t0 < secs and conns:
    rounds += 1
    for i, (s, _) in list(conns.items()):
        try:
            s.send(b"c%d-r%d\n" % (i, rounds))
        except OSError as e:
            ended[i] = "send: %s" % e
            s.close(); del conns[i]
    deadline = time.monotonic() + 3
    waiting = set(conns)
    while waiting and time.monotonic() < deadline:
        rd, _, _ = select.select([conns[i][0] for i in waiting], [], [], 0.2)
        for s in rd:
            i = next(k for k in waiting if conns[k][0] is s)
            try:
                d = s.recv(4096)
            except OSError as e:
                d = None
            if not d:
                ended[i] = "closed"
                s.close(); del conns[i]; waiting.discard(i)
                continue
            conns[i][1] += d
            if conns[i][1].endswith(b"\n"):
                if conns[i][1] != b"c%d-r%d\n" % (i, rounds):
                    wrong += 1
                conns[i][1] = b""
                waiting.discard(i)
    for i in list(waiting):
        ended[i] = "no reply"
        conns[i][0].close(); del conns[i]
    time.sleep(0.05)
print(json.dumps({"total": n, "survived": len(conns), "ended": ended, "wrong": wrong,
                  "rounds": rounds}))
"""


def scrape_open(i, port):
    """connections open on host i's echo server (its /metrics, from the
    HAProxy host)."""
    p = subprocess.run(ns_exec("h", BIN, "get", f"http://{SB_IP[i]}:{port}/metrics"),
                       capture_output=True, text=True, timeout=10)
    vals = re.findall(r'switchboard_connections_open\{worker="\d+"\} (\d+)', p.stdout)
    if not vals:
        raise AssertionError(f"no metrics from host {i}: {p.stdout!r} {p.stderr!r}")
    return sum(int(v) for v in vals)


def check_multihost():
    tmp = tempfile.mkdtemp(prefix="sb-multihost-")
    try:
        setup_hosts()
        root = os.path.join(tmp, "www")
        os.mkdir(root)
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<p>switchboard</p>\n")
        servers = {i: start_sb(i, tmp, root, 0) for i in (1, 2, 3)}
        cfg, sock = haproxy_config(tmp)
        haproxy = Proc("h", ["haproxy", "-f", cfg, "-db"], "haproxy", tmp)
        up = sbtest.wait_until(lambda: haproxy.p.poll() is not None or (
            os.path.exists(sock) and list(haproxy_status(sock).values()).count("UP") == 6), 15)
        up = up and haproxy.p.poll() is None
        if not up:
            raise AssertionError(f"HAProxy did not see 6 servers UP: "
                                 f"{haproxy_status(sock) if os.path.exists(sock) else 'no socket'}"
                                 f"\n{haproxy.stderr()[-2000:]}")
        # The load: HTTP through HAProxy's port 80, echo through 7000.
        bench = subprocess.Popen(ns_exec("c", BIN, "bench", f"http://{LB_IP}/index.html",
                                         "-c", "8", "--duration", str(LOAD_S), "--json"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
        echo = subprocess.Popen(ns_exec("c", sys.executable, "-c", ECHO_CLIENT, LB_IP, "7000",
                                        "30", str(LOAD_S)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        time.sleep(1.5)
        held = {i: scrape_open(i, 9102) for i in (1, 2, 3)}
        # Host 1 dies.
        for p in servers[1]:
            p.kill(signal.SIGKILL)
        time.sleep(1.0)
        # Host 2 restarts: the new instance binds beside the old, the old drains.
        new2 = start_sb(2, tmp, root, 1)
        for p in servers[2]:
            p.kill(signal.SIGTERM)
        for p in servers[2]:
            rc = p.wait(10)
            if rc != 0:
                raise AssertionError(f"{p.name} exit {rc}: {p.stderr()!r}")
        bout, berr = bench.communicate(timeout=LOAD_S + 30)
        eout, eerr = echo.communicate(timeout=LOAD_S + 30)
        if bench.returncode != 0 and not bout:
            raise AssertionError(f"bench failed: {berr.decode()!r}")
        b = json.loads(bout)
        e = json.loads(eout)
        print(f"     http: {b['received_total']} responses, errors {b['errors']}")
        print(f"     echo: {e['survived']} of {e['total']} connections survived "
              f"({e['rounds']} rounds); held per host before: {held}; ended: {e['ended']}")
        if b["errors_total"] != 0:
            raise AssertionError(f"HTTP client errors: {b['errors']}")
        if b["received_total"] < 100:
            raise AssertionError(f"too little HTTP traffic: {b}")
        if e["wrong"]:
            raise AssertionError(f"{e['wrong']} wrong echo replies")
        lost = e["total"] - e["survived"]
        if lost > held[1] + held[2]:
            raise AssertionError(f"{lost} echo connections ended, but hosts 1 and 2 held "
                                 f"only {held[1] + held[2]}")
        if held[1] > 0 and lost == 0:
            raise AssertionError("killing host 1 ended no echo connection: it held none?")
        # The logs: every client request from the client host.
        for i in (1, 2, 3):
            text = open(os.path.join(tmp, f"access{i}.log")).read()
            reqs = [ln for ln in text.splitlines() if "/index.html" in ln]
            if not reqs:
                raise AssertionError(f"host {i} logged no client request")
            bad = [ln for ln in reqs if not ln.startswith(CLIENT_IP + " ")]
            if bad:
                raise AssertionError(f"host {i} logged other peers: {bad[:3]}")
            print(f"     host {i}: {len(reqs)} requests logged from {CLIENT_IP}")
        for p in [*servers[3], *new2]:
            p.kill(signal.SIGTERM)
            if p.wait(10) != 0:
                raise AssertionError(f"{p.name} exit: {p.stderr()!r}")
        haproxy.kill(signal.SIGTERM)
        # Sanitizer builds: any report from any switchboard process fails.
        pat = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|WARNING: ThreadSanitizer"
                         r"|runtime error:|SUMMARY: \w+Sanitizer")
        for p in procs:
            if p.name != "haproxy" and pat.search(p.stderr()):
                raise AssertionError(f"sanitizer report from {p.name}:\n{p.stderr()[-3000:]}")
    finally:
        teardown()
        shutil.rmtree(tmp, ignore_errors=True)


r.check("HAProxy + 3 switchboard hosts: a kill and a restart under load", check_multihost,
        limit=120)
sys.exit(r.finish())
