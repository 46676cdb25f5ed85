#!/usr/bin/env python3
"""e2e_scale: every core of one machine, and life behind a load balancer.

- workers: `--workers 2` spreads 1,000 connections with max/min open per
  worker <= 1.3, read from /metrics through prometheus_client's parser.
- echo, chat and http on 1, 2 and 4 workers (a fast subset of their suites;
  chat across workers: every message reaches every other client, and a
  client that never reads is cut at the out-cap without stalling the rest).
- /metrics agrees with `switchboard bench -n N --json`: messages and bytes
  received, connections accepted; errors and sheds are counted by cause
  (malformed, timeout, out-cap, EMFILE - where 4 workers out of descriptors
  serve or shed every one of 200 connections, leaving none in a queue).
  TLS handshakes are counted (ok, failed), TLS errors under cause "tls".
  Silent connections to the metrics port do not hold up a scrape; a fork
  child holds none of the exporter's descriptors.
- SIGTERM drains: an idle connection is closed at once, a message under way
  is finished and answered, a silent connection is cut at --drain-timeout
  (fractional), and the server exits 0 within it.
- restart with --reuseport: a client loop (a new connection per request)
  runs while a second instance starts on the same port and the first gets
  SIGTERM: no refused connection, no lost request (in a network namespace of
  the test's own with net.ipv4.tcp_migrate_req=1, as docs/deploy.md asks;
  needs root, which CI has).
- systemd socket activation: a socket passed as fd 3 (LISTEN_FDS) is served;
  one that is not listening is refused (exit 1).
- --proxy-protocol: v1 and v2 headers (whole or split) make the client in the
  header the peer (the access log shows it); a connection without a valid
  header is closed unanswered and counted.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import Framing, recv_msgs, recv_until_eof  # noqa: E402

args = sbtest.parse_args()
BIN = args.bin
r = sbtest.Runner("e2e_scale", args)
LINE = Framing("line")
SAN = bool(sbtest.sanitizers(args.build))


def eq(got, want, what="value"):
    if got != want:
        raise AssertionError(f"{what}: got {got!r:.300}, want {want!r:.300}")


def metrics_addr(srv):
    m = sbtest.wait_until(lambda: re.search(r"metrics on http://(\S+)/metrics", srv.stderr_text()), 5)
    if not m:
        raise AssertionError(f"no metrics line: {srv.stderr_text()!r}")
    return m.group(1)


def scrape(addr):
    """{(name, (labels...)): value} through the real Prometheus text parser."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        # Debian's package, when the python3 running us is another one.
        sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise AssertionError("python3-prometheus-client is not installed (apt-get install "
                             "python3-prometheus-client): the /metrics checks need its parser")
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as f:
        eq(f.status, 200, "status")
        ctype = f.headers.get("Content-Type", "")
        if not ctype.startswith("text/plain; version=0.0.4"):
            raise AssertionError(f"Content-Type {ctype!r}")
        text = f.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def per_worker(m, name, **labels):
    rows = {}
    for (n, lab), v in m.items():
        d = dict(lab)
        if n == name and all(d.get(k) == v2 for k, v2 in labels.items()):
            rows[int(d["worker"])] = v
    return [rows[i] for i in sorted(rows)]


def total(m, name, **labels):
    return sum(per_worker(m, name, **labels))


def closed_unanswered(s, timeout=5.0):
    """What the peer sent before closing (an EOF or, with our bytes unread,
    a reset)."""
    try:
        return recv_until_eof(s, timeout=timeout)
    except ConnectionResetError:
        return b""


def echo_ok(srv, n=1):
    s = srv.connect()
    try:
        for i in range(n):
            s.sendall(b"ping%d\n" % i)
            eq(recv_msgs(s, LINE.decoder(), 1), [b"ping%d" % i], "echo")
    finally:
        s.close()


# ---------------------------------------------------------------- workers

def check_spread():
    sbtest.raise_nofile(8192)
    with sbtest.start_server(BIN, "--workers", "2", "--metrics", "127.0.0.1:0") as srv:
        maddr = metrics_addr(srv)
        socks = []
        try:
            for _ in range(1000):
                socks.append(srv.connect())
            ok = sbtest.wait_until(
                lambda: total(scrape(maddr), "switchboard_connections_open") == 1000, 10)
            m = scrape(maddr)
            if not ok:
                raise AssertionError(f"open: {per_worker(m, 'switchboard_connections_open')}")
            eq(m[("switchboard_workers", ())], 2, "workers")
            open_ = per_worker(m, "switchboard_connections_open")
            eq(len(open_), 2, "workers reported")
            ratio = max(open_) / max(1, min(open_))
            print(f"     open per worker {open_}, max/min {ratio:.3f}; accepted per worker "
                  f"{per_worker(m, 'switchboard_connections_accepted_total')}")
            if ratio > 1.3:
                raise AssertionError(f"imbalance {ratio:.3f} > 1.3: {open_}")
            # Every one of them is served, whichever worker holds it.
            for s in socks[::50]:
                s.sendall(b"x\n")
                eq(recv_msgs(s, LINE.decoder(), 1), [b"x"], "echo")
        finally:
            for s in socks:
                s.close()
        rc, err = srv.stop()
        eq(rc, 0, "exit")


def check_echo(n, *extra):
    with sbtest.start_server(BIN, "--workers", str(n), *extra) as srv:
        socks = [srv.connect() for _ in range(40)]
        try:
            for rnd in range(3):
                for i, s in enumerate(socks):
                    s.sendall(b"m%d-%d\n" % (rnd, i))
                for i, s in enumerate(socks):
                    eq(recv_msgs(s, LINE.decoder(), 1), [b"m%d-%d" % (rnd, i)], "echo")
        finally:
            for s in socks:
                s.close()
        eq(srv.stop()[0], 0, "exit")


def check_chat(n, *extra):
    with sbtest.start_server(BIN, "--app", "chat", "--workers", str(n), *extra) as srv:
        k = 12
        socks = [srv.connect() for _ in range(k)]
        decs = [LINE.decoder() for _ in range(k)]
        try:
            time.sleep(0.2)  # every on_open has run (joins are not acknowledged)
            for i, s in enumerate(socks):
                s.sendall(b"from%d\n" % i)
            for i, s in enumerate(socks):
                got = sorted(recv_msgs(s, decs[i], k - 1))
                want = sorted(b"from%d" % j for j in range(k) if j != i)
                eq(got, want, f"client {i} received")
            for s in socks:
                s.settimeout(0.02)
                try:
                    extra = s.recv(100)
                except socket.timeout:
                    extra = b""
                eq(extra, b"", "nothing more (the sender never gets its own)")
        finally:
            for s in socks:
                s.close()
        eq(srv.stop()[0], 0, "exit")


def check_chat_slow_reader(n):
    """A client that never reads is cut at the out-cap; readers on every
    worker get every line, and keep getting them promptly."""
    with sbtest.start_server(BIN, "--app", "chat", "--workers", str(n), "--out-cap", "256K",
                             "--metrics", "127.0.0.1:0") as srv:
        maddr = metrics_addr(srv)
        slow = srv.connect(rcvbuf=4096)
        readers = [srv.connect() for _ in range(2 * n)]
        talker = srv.connect()
        decs = [LINE.decoder() for _ in readers]
        time.sleep(0.2)
        line = b"y" * 8000
        count = 1500  # 12 MB: far over the slow reader's cap and the kernel's buffers
        try:
            for i in range(count):
                talker.sendall(line + b"\n")
                if i % 10 == 9:
                    for rd, d in zip(readers, decs):
                        eq(len(recv_msgs(rd, d, 10, timeout=10)), 10, "lines")
            closed = closed_unanswered(slow, timeout=10)
            if len(closed) >= count * (len(line) + 1):
                raise AssertionError("the non-reader got everything: the cap did not act")
            ok = sbtest.wait_until(lambda: total(scrape(maddr), "switchboard_connection_errors_total",
                                                 cause="out_cap") == 1, 5)
            if not ok:
                raise AssertionError(f"out_cap not counted once: {scrape(maddr)}")
        finally:
            for s in readers + [talker, slow]:
                s.close()
        eq(srv.stop()[0], 0, "exit")


def http_get(srv, path="/", conn=None, headers=""):
    s = conn or srv.connect()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before the response: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("closed in the body")
        body += chunk
    return s, head.split(b"\r\n")[0], body


def check_http(n, *extra):
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "a.txt"), "wb") as f:
            f.write(b"hello world\n" * 100)
        with sbtest.start_server(BIN, "--app", "http", "--root", root, "--workers", str(n),
                                 *extra) as srv:
            conns = []
            try:
                for _ in range(3 * n):
                    s, status, body = http_get(srv, "/a.txt")
                    eq(status, b"HTTP/1.1 200 OK", "status")
                    eq(body, b"hello world\n" * 100, "body")
                    conns.append(s)
                for s in conns:  # keep-alive: each again on its connection
                    _, status, _ = http_get(srv, "/nope", conn=s)
                    eq(status, b"HTTP/1.1 404 Not Found", "status")
            finally:
                for s in conns:
                    s.close()
            eq(srv.stop()[0], 0, "exit")


# ---------------------------------------------------------------- metrics

def check_metrics_vs_bench():
    with sbtest.start_server(BIN, "--workers", "2", "--metrics", "127.0.0.1:0") as srv:
        maddr = metrics_addr(srv)
        before = scrape(maddr)
        eq(total(before, "switchboard_messages_received_total"), 0, "messages before")
        res = sbtest.run_cli(BIN, "bench", srv.addr_str, "-n", "3000", "-c", "8", "--json",
                             timeout=60)
        eq(res.rc, 0, f"bench exit ({res.err!r})")
        import json
        b = json.loads(res.out)
        eq(b["errors_total"], 0, "bench errors")
        # Counters move when the loops have run: wait for the closes too.
        sbtest.wait_until(lambda: total(scrape(maddr), "switchboard_connections_open") == 0, 5)
        m = scrape(maddr)
        eq(total(m, "switchboard_messages_received_total"), b["sent_total"], "messages received")
        eq(total(m, "switchboard_messages_sent_total"), b["received_total"], "messages sent")
        eq(total(m, "switchboard_connections_accepted_total"), b["connected"], "accepted")
        eq(total(m, "switchboard_bytes_received_total"), b["sent_total"] * (b["size"] + 1),
           "bytes received (payload + newline)")
        eq(total(m, "switchboard_bytes_sent_total"), b["bytes_received"], "bytes sent")
        eq(total(m, "switchboard_connection_errors_total"), 0, "errors")
        for w in (0, 1):
            if per_worker(m, "switchboard_messages_received_total")[w] == 0:
                raise AssertionError(f"worker {w} served nothing: {m}")
        eq(srv.stop()[0], 0, "exit")


def check_metrics_errors():
    """Errors by cause: a malformed frame (over --max-msg) and a timeout."""
    with sbtest.start_server(BIN, "--frame", "len16", "--max-msg", "100", "--metrics",
                             "127.0.0.1:0") as srv:
        maddr = metrics_addr(srv)
        s = srv.connect()
        s.sendall(struct.pack(">H", 5000))  # over --max-msg: the connection ends
        recv_until_eof(s, timeout=5)
        s.close()
        ok = sbtest.wait_until(lambda: total(scrape(maddr), "switchboard_connection_errors_total",
                                             cause="malformed") == 1, 5)
        if not ok:
            raise AssertionError(f"{scrape(maddr)}")
        eq(srv.stop()[0], 0, "exit")
    with sbtest.start_server(BIN, "--idle-timeout", "0.2", "--metrics", "127.0.0.1:0") as srv:
        maddr = metrics_addr(srv)
        s = srv.connect()
        closed_unanswered(s)  # cut after 0.2 s of silence
        s.close()
        ok = sbtest.wait_until(lambda: total(scrape(maddr), "switchboard_connection_errors_total",
                                             cause="timeout") == 1, 5)
        if not ok:
            raise AssertionError(f"{scrape(maddr)}")
        try:
            urllib.request.urlopen(f"http://{maddr}/other")
            raise AssertionError("/other answered")
        except urllib.error.HTTPError as e:
            eq(e.code, 404, "status")
        eq(srv.stop()[0], 0, "exit")


def check_metrics_emfile(*extra):
    """A server out of descriptors sheds the newcomers and counts them."""
    import resource

    def low_nofile():
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    with sbtest.start_server(BIN, "--workers", "4", "--metrics", "127.0.0.1:0", *extra,
                             preexec_fn=low_nofile) as srv:
        maddr = metrics_addr(srv)
        socks = []
        try:
            for _ in range(200):
                socks.append(srv.connect())
            # Every one is either served or shed (closed at once) - none is
            # left waiting in a queue: with workers accepting at once,
            # the spare descriptor a shed frees must not be taken by the
            # other worker's accept, or no later shed could happen.
            served = shed = 0
            for s in socks:
                s.settimeout(3)
                try:
                    s.sendall(b"x\n")
                    got = s.recv(10)
                except ConnectionResetError:
                    got = b""
                except socket.timeout:
                    raise AssertionError(f"a connection neither served nor shed "
                                         f"({served} served, {shed} shed before it)")
                if got == b"x\n":
                    served += 1
                else:
                    eq(got, b"", "a shed connection's bytes")
                    shed += 1
            print(f"     {served} served, {shed} shed")
            if shed == 0:
                raise AssertionError("nothing was shed: the limit did not bite")
        finally:
            for s in socks:
                s.close()
        ok = sbtest.wait_until(lambda: total(scrape(maddr), "switchboard_connections_shed_total",
                                             cause="emfile") > 0, 5)
        if not ok:
            raise AssertionError(f"no EMFILE shed counted: {scrape(maddr)}")
        echo_ok(srv)
        eq(srv.stop()[0], 0, "exit")


# ---------------------------------------------------------------- life cycle

def listen_inodes(port):
    """Socket inodes LISTENing on port (any address), from /proc/net/tcp*."""
    out = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            fs = ln.split()
            if int(fs[1].rsplit(":", 1)[1], 16) == port and fs[3] == "0A":
                out.add(fs[9])
    return out


def fd_inodes(pid):
    out = set()
    d = f"/proc/{pid}/fd"
    for fd in os.listdir(d):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(f"{d}/{fd}"))
        except OSError:
            continue
        if m:
            out.add(m.group(1))
    return out


def check_metrics_fork_child():
    """A fork child holds none of the exporter's descriptors: the metrics
    port stays the parent's alone (a restart can bind it while old
    connections finish)."""
    with sbtest.start_server(BIN, "--model", "fork", "--metrics", "127.0.0.1:0") as srv:
        maddr = metrics_addr(srv)
        mport = int(maddr.rsplit(":", 1)[1])
        scrape(maddr)  # the exporter thread has run
        s = srv.connect()
        s.sendall(b"a\n")
        eq(recv_msgs(s, LINE.decoder(), 1), [b"a"], "echo")
        kids = sbtest.wait_until(lambda: srv.children(), 5)
        if not kids:
            raise AssertionError("no fork child")
        lis = listen_inodes(mport)
        if not lis & fd_inodes(srv.proc.pid):
            raise AssertionError("the parent holds no listener on the metrics port")
        for kid, _state in kids:
            held = lis & fd_inodes(kid)
            if held:
                raise AssertionError(f"child {kid} holds the metrics listener {held}")
        s.close()


def check_metrics_tls():
    """TLS handshakes counted (completed, failed) and TLS errors under
    their own cause, not "other"."""
    import ssl
    with tempfile.TemporaryDirectory() as d:
        key, cert = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
        with sbtest.start_server(BIN, "--tls-cert", cert, "--tls-key", key,
                                 "--metrics", "127.0.0.1:0") as srv:
            maddr = metrics_addr(srv)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with ctx.wrap_socket(srv.connect(), server_hostname="localhost") as t:
                t.sendall(b"a\n")
                eq(recv_msgs(t, LINE.decoder(), 1), [b"a"], "echo over TLS")
            bad = srv.connect()
            bad.sendall(b"GET / HTTP/1.1\r\n\r\n")  # not a ClientHello
            closed_unanswered(bad)
            bad.close()

            def counted():
                m = scrape(maddr)
                return m if total(m, "switchboard_tls_handshakes_total", result="ok") == 1 and \
                    total(m, "switchboard_tls_handshakes_total", result="failed") == 1 else None
            m = sbtest.wait_until(counted, 5)
            if not m:
                m = scrape(maddr)
                raise AssertionError("tls_handshakes_total: " + repr(
                    {k: v for k, v in m.items() if "tls" in k[0] or "errors" in k[0]}))
            eq(total(m, "switchboard_connection_errors_total", cause="tls"), 1, "errors{cause=tls}")
            eq(total(m, "switchboard_connection_errors_total", cause="other"), 0, "errors{cause=other}")


def check_metrics_stalled():
    """Silent connections to the metrics port do not hold up a scrape."""
    with sbtest.start_server(BIN, "--metrics", "127.0.0.1:0") as srv:
        maddr = metrics_addr(srv)
        host, port = maddr.rsplit(":", 1)
        silent = []
        try:
            for _ in range(12):  # more than the exporter's slots
                silent.append(socket.create_connection((host, int(port)), timeout=5))
            half = socket.create_connection((host, int(port)), timeout=5)
            half.sendall(b"GET /metr")  # a request that never ends
            silent.append(half)
            time.sleep(0.1)
            t0 = time.monotonic()
            m = scrape(maddr)
            dt = time.monotonic() - t0
            if not per_worker(m, "switchboard_connections_accepted_total"):
                raise AssertionError("no accepted_total series")
            # Bounded wait, not a performance threshold: a serial exporter
            # answers only after every silent connection's 2 s timeout.
            if dt > 1.5:
                raise AssertionError(f"scrape took {dt:.2f}s behind {len(silent)} silent connections")
        finally:
            for c in silent:
                c.close()


def check_drain(*extra):
    with sbtest.start_server(BIN, "--workers", "2", "--drain-timeout", "1.5", *extra) as srv:
        idle = srv.connect()
        idle.sendall(b"a\n")
        eq(recv_msgs(idle, LINE.decoder(), 1), [b"a"], "echo")
        busy = [srv.connect() for _ in range(4)]
        for s in busy:
            s.sendall(b"a\n")
            eq(recv_msgs(s, LINE.decoder(), 1), [b"a"], "echo")
            s.sendall(b"half")  # a message under way
        silent = srv.connect()  # never says anything
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # The idle one closes at once.
        eq(recv_until_eof(idle, timeout=1.0), b"", "idle connection: EOF")
        # A new connection is refused (no listener) - or reset if it raced in.
        # Each busy one finishes its message, gets its reply, then EOF.
        time.sleep(0.3)
        for s in busy:
            s.sendall(b"-done\n")
            eq(recv_until_eof(s, timeout=2.0), b"half-done\n", "in flight finished")
        rc = srv.proc.wait(timeout=5)
        dt = time.monotonic() - t0
        eq(rc, 0, "exit")
        # The silent one was cut at the drain timeout.
        eq(closed_unanswered(silent, timeout=1.0), b"", "silent connection cut")
        if dt > 1.5 + (3.0 if SAN else 1.0):
            raise AssertionError(f"exit took {dt:.2f}s with --drain-timeout 1.5")
        print(f"     exited {dt:.2f}s after SIGTERM (drain timeout 1.5 s)")
        for s in busy + [idle, silent]:
            s.close()


class NetNs:
    """A network namespace of this test's own, entered by this thread (and
    so by the threads and processes it starts) for the with block: the
    restart check sets a sysctl there without touching the host's."""

    def __init__(self, sysctls):
        self.name = f"sb{os.getpid()}r"
        self.sysctls = sysctls

    def __enter__(self):
        import ctypes
        if os.geteuid() != 0:
            raise AssertionError("needs root to create a network namespace (CI runs as root)")
        p = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError(f"ip netns add: {p.stderr.strip()}")
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
            for k, v in self.sysctls.items():
                p = subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-qw", f"{k}={v}"],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    raise AssertionError(f"sysctl {k}={v}: {p.stderr.strip()} (Linux 5.14 or "
                                         f"later has net.ipv4.tcp_migrate_req)")
            self.libc = ctypes.CDLL(None, use_errno=True)
            self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                if self.libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise AssertionError(f"setns: {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(fd)
        except BaseException:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            raise
        return self

    def __exit__(self, *exc):
        self.libc.setns(self.home, 0x40000000)
        os.close(self.home)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        return False


def check_restart(*extra):
    """Two instances share the port by SO_REUSEPORT; the first drains. The
    old instance serves what is queued on its listeners, then closes them;
    a connection whose handshake completes between its last accept and the
    close is moved to the new instance's listener by the kernel when
    net.ipv4.tcp_migrate_req is 1 (docs/deploy.md) - set here in a network
    namespace of the test's own (without it, about one restart in six reset
    one connection in this loop)."""
    with NetNs({"net.ipv4.tcp_migrate_req": 1}):
        restart_loop(*extra)


def restart_loop(*extra):
    a = sbtest.start_server(BIN, "--reuseport", "--workers", "2", "--drain-timeout", "2", *extra)
    stop = threading.Event()
    stats = {"ok": 0, "errors": []}

    def client():
        i = 0
        while not stop.is_set():
            try:
                s = socket.create_connection(a.addr, timeout=5)
                try:
                    s.sendall(b"r%d\n" % i)
                    got = recv_msgs(s, LINE.decoder(), 1, timeout=5)
                    if got != [b"r%d" % i]:
                        stats["errors"].append(f"request {i}: {got!r}")
                    else:
                        stats["ok"] += 1
                finally:
                    s.close()
            except Exception as e:  # noqa: BLE001 - every failure counts
                stats["errors"].append(f"request {i}: {type(e).__name__}: {e}")
            i += 1

    threads = [threading.Thread(target=client) for _ in range(2)]
    b = None
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        b = sbtest.start_server(BIN, "--listen", a.addr_str, "--reuseport", "--workers", "2",
                                *extra)
        time.sleep(0.5)
        n_before = stats["ok"]
        rc, err = a.stop(timeout=10)
        eq(rc, 0, f"old instance exit ({err!r})")
        time.sleep(0.7)
        stop.set()
        for t in threads:
            t.join(timeout=20)
        print(f"     {stats['ok']} requests, {n_before} before the old instance's stop")
        if stats["errors"]:
            raise AssertionError(f"{len(stats['errors'])} failed: {stats['errors'][:5]}")
        if stats["ok"] == n_before:
            raise AssertionError("no request served after the stop")
        echo_ok(b)
        eq(b.stop()[0], 0, "new instance exit")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
        a.kill()
        if b:
            b.kill()


# ---------------------------------------------------------------- PROXY

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src, sport, dst="10.0.0.1", dport=80):
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)
    return V2SIG + bytes([0x21, 0x11]) + struct.pack(">H", len(addrs)) + addrs


def check_proxy_http():
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "i.txt"), "wb") as f:
            f.write(b"hi\n")
        log = os.path.join(root, "access.log")
        with sbtest.start_server(BIN, "--app", "http", "--root", root, "--proxy-protocol",
                                 "--access-log", log, "--workers", "2",
                                 "--metrics", "127.0.0.1:0") as srv:
            maddr = metrics_addr(srv)
            req = b"GET /i.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            s = srv.connect()
            s.sendall(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + req)
            eq(recv_until_eof(s).split(b"\r\n")[0], b"HTTP/1.1 200 OK", "v1 response")
            s.close()
            s = srv.connect()
            s.sendall(v2_header("198.51.100.9", 4444) + req)
            eq(recv_until_eof(s).split(b"\r\n")[0], b"HTTP/1.1 200 OK", "v2 response")
            s.close()
            # Split anywhere: the header a byte at a time, then the request.
            s = srv.connect()
            for ch in b"PROXY TCP6 2001:db8::5 2001:db8::1 7 80\r\n":
                s.sendall(bytes([ch]))
                time.sleep(0.002)
            s.sendall(req)
            eq(recv_until_eof(s).split(b"\r\n")[0], b"HTTP/1.1 200 OK", "split v1 response")
            s.close()
            # No header: closed with no answer.
            s = srv.connect()
            s.sendall(req)
            eq(closed_unanswered(s), b"", "headerless request answered")
            s.close()
            eq(srv.stop()[0], 0, "exit")
            text = open(log).read()
            for who in ("203.0.113.7 ", "198.51.100.9 ", "2001:db8::5 "):
                if who not in text:
                    raise AssertionError(f"{who!r} not in the access log:\n{text}")
            if "127.0.0.1" in text:
                raise AssertionError(f"the balancer's address was logged:\n{text}")


def check_proxy_echo(*extra):
    with sbtest.start_server(BIN, "--proxy-protocol", "--metrics", "127.0.0.1:0", *extra) as srv:
        maddr = metrics_addr(srv)
        s = srv.connect()
        # Header and first message in one segment: the message is not lost.
        s.sendall(v2_header("192.0.2.1", 1000) + b"one\n")
        eq(recv_msgs(s, LINE.decoder(), 1), [b"one"], "echo after v2")
        s.close()
        s = srv.connect()
        s.sendall(b"PROXY UNKNOWN\r\ntwo\n")
        eq(recv_msgs(s, LINE.decoder(), 1), [b"two"], "echo after UNKNOWN")
        s.close()
        for bad in (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\nx\n", b"hello\n",
                    V2SIG + b"\x11\x11\x00\x00"):
            s = srv.connect()
            s.sendall(bad)
            eq(closed_unanswered(s), b"", f"answer to {bad!r}")
            s.close()
        ok = sbtest.wait_until(lambda: total(scrape(maddr), "switchboard_connection_errors_total",
                                             cause="proxy_header") == 3, 5)
        if not ok:
            raise AssertionError(f"proxy_header errors: {scrape(maddr)}")
        eq(srv.stop()[0], 0, "exit")


def check_socket_activation():
    """systemd hands over a listening socket as fd 3 (LISTEN_FDS=1,
    LISTEN_PID = the server's pid): served by every worker, no bind."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    port = ls.getsockname()[1]
    fd = ls.fileno()

    def as_systemd():  # in the child: fd 3 and LISTEN_PID = its own pid (kept by exec)
        os.dup2(fd, 3)
        os.putenv("LISTEN_PID", str(os.getpid()))
        os.putenv("LISTEN_FDS", "1")

    p = subprocess.Popen([BIN, "serve", "--workers", "2"], pass_fds=sorted({fd, 3}),
                         preexec_fn=as_systemd,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        ls.close()  # the server holds the socket now
        for i in range(20):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"sa%d\n" % i)
            eq(recv_msgs(c, LINE.decoder(), 1), [b"sa%d" % i], "echo")
            c.close()
        p.send_signal(signal.SIGTERM)
        eq(p.wait(timeout=10), 0, "exit")
        err = p.stderr.read().decode()
        if f"listening on 127.0.0.1:{port}" not in err:
            raise AssertionError(f"listening line: {err!r}")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def check_socket_activation_refused():
    """A socket that is not listening (bound, never listen()ed: systemd
    hands over whatever the unit names) is refused at start, exit 1 naming
    it - not served by a loop that would spin on its hang-up forever."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    fd = s.fileno()

    def as_systemd():
        os.dup2(fd, 3)
        os.putenv("LISTEN_PID", str(os.getpid()))
        os.putenv("LISTEN_FDS", "1")

    try:
        p = subprocess.run([BIN, "serve"], pass_fds=sorted({fd, 3}), preexec_fn=as_systemd,
                           stderr=subprocess.PIPE, timeout=10)
    finally:
        s.close()
    eq(p.returncode, 1, "exit")
    err = p.stderr.decode()
    if "LISTEN_FDS: fd 3" not in err or "not a listening socket" not in err:
        raise AssertionError(f"error line: {err!r}")


r.check("workers: --workers 2 spreads 1,000 connections, max/min <= 1.3 (/metrics)", check_spread)
for n in (1, 2, 4):
    r.check(f"echo on {n} workers", check_echo, n)
    r.check(f"chat on {n} workers: every message to every other client", check_chat, n)
    r.check(f"http on {n} workers", check_http, n)
r.check("chat on 2 workers: a non-reader is cut at the out-cap, readers get everything",
        check_chat_slow_reader, 2)
r.check("metrics: counters agree with bench -n --json", check_metrics_vs_bench)
r.check("metrics: errors by cause (malformed, timeout); other paths 404", check_metrics_errors)
r.check("metrics: EMFILE sheds counted", check_metrics_emfile)
r.check("metrics: a fork child holds no exporter descriptor", check_metrics_fork_child)
r.check("metrics: TLS handshakes (ok, failed) and TLS errors by cause", check_metrics_tls)
r.check("metrics: silent connections do not hold up a scrape", check_metrics_stalled)
r.check("SIGTERM drains: idle closed, in-flight finished, silent cut, exit 0 in time", check_drain)
r.check("restart with --reuseport: no refused connection, no lost request", check_restart)
r.check("PROXY v1/v2 in front of http: the header's client in the access log", check_proxy_http)
r.check("PROXY in front of echo: data after the header kept, bad headers closed", check_proxy_echo)
r.check("systemd socket activation: LISTEN_FDS, fd 3, two workers", check_socket_activation)
r.check("systemd socket activation: a socket not listening is refused, exit 1",
        check_socket_activation_refused)
# The io_uring backend's own accept (multishot, its cancel at a drain) and
# the hand-offs between workers' rings.
if sbtest.has_uring(BIN):
    U = ("--backend", "uring")
    for n in (1, 4):
        r.check(f"[uring] echo on {n} workers", check_echo, n, *U)
        r.check(f"[uring] chat on {n} workers: every message to every other client", check_chat,
                n, *U)
    r.check("[uring] http on 2 workers", check_http, 2, *U)
    r.check("[uring] metrics: EMFILE sheds counted", check_metrics_emfile, *U)
    r.check("[uring] SIGTERM drains: idle closed, in-flight finished, silent cut, exit 0 in time",
            check_drain, *U)
    r.check("[uring] restart with --reuseport: no refused connection, no lost request",
            check_restart, *U)
    r.check("[uring] PROXY in front of echo: data after the header kept, bad headers closed",
            check_proxy_echo, *U)
sys.exit(r.finish())
