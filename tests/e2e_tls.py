#!/usr/bin/env python3
"""e2e_tls: TLS end to end, against clients and servers nobody here wrote.

Certificates are made at test time with the `openssl` command in a temporary
directory: a CA, a server certificate it signs (localhost, 127.0.0.1), a
client certificate it signs (mutual TLS), and a self-signed one.

Under every model (threads, fork, event) and the event model on every
backend (epoll, poll, select, uring when built):
  - curl --cacert against the http app: two URLs over one kept-alive
    connection ("Re-using existing connection"), a Range request;
  - openssl s_client -tls1_2 and -tls1_3 against the echo app;
  - Python's ssl module wrapping a HOWTO-style socket client, echo under
    line, len32 and varint framing;
  - switchboard send --tls (and --half-close: close_notify as the end).
Once: switchboard bench --tls and bench https:// (-n, every reply checked);
bench --reconnect: N requests make exactly N connections and N handshakes
(the server's /metrics agrees), --tls-resume resumes all but each
connection slot's first, a self-signed server fails verification without -k;
the chat app (event and threads: sends from other members' threads); switchboard get https:// against Python's http.server wrapped in ssl;
verification (a self-signed server without --cacert and a wrong host name
exit 1 naming what failed, --insecure connects, mutual TLS refuses a client
without a certificate); hostile peers, each bounded in time while another
client is served throughout: plaintext HTTP to the TLS port, random bytes,
a ClientHello one byte at a time, 1,000 connections (300 under threads and
fork, 100 under sanitizers) that stop mid-handshake
(freed by --tls-handshake-timeout 1.5), a reset mid-record; and an `eof`
exchange cut without close_notify is not answered.

Skipped when the build has no TLS or `openssl` is not installed.
"""

import http.server
import json
import os
import random
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import Framing, expect_closed, recv_msgs  # noqa: E402

args = sbtest.parse_args()
BIN = args.bin
R = sbtest.Runner("e2e_tls", args)
TMP = tempfile.mkdtemp(prefix="sb-tls-")
SAN = sbtest.sanitizers(args.build)


def run(*argv, **kw):
    return sbtest.run_cli(BIN, *argv, **kw)


def openssl(*a):
    subprocess.run(["openssl", *a], check=True, cwd=TMP, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_certs():
    """ca.pem signs server.pem (localhost, 127.0.0.1) and client.pem;
    self.pem signs itself."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=switchboard test CA")
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        with open(os.path.join(TMP, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    openssl("req", "-x509", *ec, "-keyout", "self.key", "-out", "self.pem", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")


def p(name):
    return os.path.join(TMP, name)


TLS = ["--tls-cert", p("server.pem"), "--tls-key", p("server.key")]


def tls_built():
    return "not supported by this build" not in run("get", "https://127.0.0.1:1/").err


def backends():
    out = [("threads", None), ("fork", None), ("event", "epoll"), ("event", "poll"),
           ("event", "select")]
    # Options are read in order: an unknown backend fails before --help.
    if run("serve", "--backend", "uring", "--help").rc == 0:
        out.append(("event", "uring"))
    return out


def margs(model, backend):
    return ["--model", model] + (["--backend", backend] if backend else [])


def client_ctx(cert=False):
    ctx = ssl.create_default_context(cafile=p("ca.pem"))
    if cert:
        ctx.load_cert_chain(p("client.pem"), p("client.key"))
    return ctx


def tls_connect(srv, ctx=None, timeout=5.0):
    raw = srv.connect(timeout=timeout)
    return (ctx or client_ctx()).wrap_socket(raw, server_hostname="localhost")


# ---------------------------------------------------------------------------
# Real clients, every model and backend

def curl_keepalive_and_range(model, backend):
    root = p("root")
    with sbtest.start_server(BIN, "--app", "http", "--root", root, *TLS,
                             *margs(model, backend)) as srv:
        port = srv.addr[1]
        r = subprocess.run(["curl", "-sS", "-v", "--cacert", p("ca.pem"),
                            f"https://localhost:{port}/a.txt", "-o", p(f"o1-{model}"),
                            f"https://localhost:{port}/big.bin", "-o", p(f"o2-{model}")],
                           capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        err = r.stderr.decode()
        assert "Re-using existing connection" in err or "Reusing existing" in err, err[-2000:]
        assert "ALPN: server accepted http/1.1" in err or "ALPN, server accepted" in err, err[-1500:]
        with open(p(f"o1-{model}"), "rb") as f:
            assert f.read() == b"hello over tls\n"
        with open(p(f"o2-{model}"), "rb") as f, open(os.path.join(root, "big.bin"), "rb") as g:
            big = g.read()
            assert f.read() == big, "big.bin differs"
        r = subprocess.run(["curl", "-sS", "--cacert", p("ca.pem"), "-r", "1000-1999",
                            f"https://localhost:{port}/big.bin"], capture_output=True, timeout=20)
        assert r.returncode == 0 and r.stdout == big[1000:2000], r


def s_client(model, backend):
    with sbtest.start_server(BIN, *TLS, *margs(model, backend)) as srv:
        for ver in ("-tls1_2", "-tls1_3"):
            # s_client -quiet ignores the end of its input: read the echo,
            # then end it.
            proc = subprocess.Popen(["openssl", "s_client", "-quiet", ver, "-CAfile", p("ca.pem"),
                                     "-verify_return_error", "-connect",
                                     f"127.0.0.1:{srv.addr[1]}"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                line = b"hello " + ver.encode() + b"\n"
                proc.stdin.write(line)
                proc.stdin.flush()
                got = proc.stdout.readline()
                assert got == line, (ver, got)
            finally:
                proc.kill()
                proc.wait()


def python_framings(model, backend):
    for spec in ("line", "len32", "varint"):
        fr = Framing(spec)
        with sbtest.start_server(BIN, *TLS, "--frame", spec, *margs(model, backend)) as srv:
            s = tls_connect(srv)
            msgs = [b"one", b"two" * 1000, bytes(range(200)) if fr.binary else b"three"]
            # All at once, then byte-split: the record layer sits between the
            # framing and the socket, and neither may care.
            s.sendall(b"".join(fr.encode(m) for m in msgs))
            dec = fr.decoder()
            assert recv_msgs(s, dec, 3) == msgs, spec
            wire = fr.encode(b"split")
            for i in range(len(wire)):
                s.sendall(wire[i:i + 1])
            assert recv_msgs(s, dec, 1) == [b"split"], spec
            s.close()


def send_tls(model, backend):
    with sbtest.start_server(BIN, *TLS, *margs(model, backend)) as srv:
        addr = f"localhost:{srv.addr[1]}"
        r = run("send", addr, "--tls", "--cacert", p("ca.pem"), "a", "bb")
        assert r.rc == 0 and r.out == b"a\nbb\n", r
        r = run("send", addr, "--tls", "--cacert", p("ca.pem"), "--half-close", "x", "y")
        assert r.rc == 0 and r.out == b"x\ny\n", r


# ---------------------------------------------------------------------------
# Once

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def get_against_python():
    handler = lambda *a, **kw: _Quiet(*a, directory=p("root"), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(p("server.pem"), p("server.key"))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        port = httpd.server_address[1]
        r = run("get", "--cacert", p("ca.pem"), f"https://localhost:{port}/a.txt")
        assert r.rc == 0 and r.out == b"hello over tls\n", r
        r = run("get", "--cacert", p("ca.pem"), f"https://127.0.0.1:{port}/big.bin")
        with open(p("root/big.bin"), "rb") as f:
            assert r.rc == 0 and r.out == f.read(), r.err
        r = run("get", f"https://localhost:{port}/a.txt")  # the system store: not our CA
        assert r.rc == 1 and "certificate verify failed" in r.err, r
    finally:
        httpd.shutdown()
        httpd.server_close()


def verification():
    with sbtest.start_server(BIN, "--app", "http", "--root", p("root"), "--tls-cert",
                             p("self.pem"), "--tls-key", p("self.key")) as srv:
        url = f"https://localhost:{srv.addr[1]}/a.txt"
        r = run("get", url)
        assert r.rc == 1, r
        assert "certificate verify failed: self-signed certificate" in r.err or \
            "certificate verify failed: self signed certificate" in r.err, r
        r = run("get", "-k", url)
        assert r.rc == 0 and r.out == b"hello over tls\n", r
        r = run("get", "--insecure", url)
        assert r.rc == 0, r
    with sbtest.start_server(BIN, *TLS) as srv:
        r = run("send", f"127.0.0.1:{srv.addr[1]}", "--tls", "--cacert", p("ca.pem"),
                "--sni", "wrong.example", "x")
        assert r.rc == 1 and "host name mismatch" in r.err, r
        r = run("send", f"127.0.0.1:{srv.addr[1]}", "--tls", "--insecure", "--sni",
                "wrong.example", "x")
        assert r.rc == 0 and r.out == b"x\n", r
    # An address the certificate does not name (it has localhost and
    # 127.0.0.1), where the server really listens: the handshake is reached
    # and the name check, not the connect, fails. 127.0.0.2 is loopback on
    # Linux.
    with sbtest.start_server(BIN, *TLS, "--app", "http", "--root", p("root"),
                             "--listen", "127.0.0.2:0") as srv:
        r = run("get", "--cacert", p("ca.pem"), f"https://127.0.0.2:{srv.addr[1]}/a.txt")
        assert r.rc == 1 and "host name mismatch" in r.err, r
        r = run("get", "-k", f"https://127.0.0.2:{srv.addr[1]}/a.txt")
        assert r.rc == 0 and r.out == b"hello over tls\n", r


def mutual_tls():
    for model in ("event", "threads"):
        with sbtest.start_server(BIN, *TLS, "--tls-client-ca", p("ca.pem"),
                                 "--model", model) as srv:
            s = tls_connect(srv, client_ctx(cert=True))
            s.sendall(b"mine\n")
            assert recv_msgs(s, Framing("line").decoder(), 1) == [b"mine"]
            s.close()
            # Without a certificate: refused (TLS 1.3 finishes the client's
            # side first, so the refusal is an alert where the reply would be).
            refused = False
            try:
                s = tls_connect(srv, client_ctx(cert=False))
                s.sendall(b"nobody\n")
                s.settimeout(5)
                refused = s.recv(100) == b""
            except (ssl.SSLError, ConnectionError):
                refused = True
            assert refused, "a client without a certificate was served"
            r = run("send", f"localhost:{srv.addr[1]}", "--tls", "--cacert", p("ca.pem"), "x")
            assert r.rc == 1, r


# ---------------------------------------------------------------------------
# Hostile peers

def served(srv):
    """A well-behaved client still gets its echo."""
    s = tls_connect(srv)
    s.sendall(b"still here\n")
    assert recv_msgs(s, Framing("line").decoder(), 1) == [b"still here"]
    s.close()


def client_hello():
    """A real ClientHello, from Python's ssl through memory BIOs."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return obj, inc, out, out.read()


def slow_hello(srv):
    """A ClientHello one byte per segment, then the handshake and an echo;
    another client is served halfway through."""
    obj, inc, out, hello = client_hello()
    s = srv.connect()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(hello)):
        s.sendall(hello[i:i + 1])
        if i == len(hello) // 2:
            served(srv)
    s.settimeout(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                s.sendall(out.read())
            data = s.recv(65536)
            assert data, "closed during a slow handshake"
            inc.write(data)
    obj.write(b"slow\n")
    s.sendall(out.read())
    got = b""
    while b"\n" not in got:
        try:
            got += obj.read(100)
        except ssl.SSLWantReadError:
            data = s.recv(65536)
            assert data, "closed after a slow handshake"
            inc.write(data)
    assert got == b"slow\n", got
    s.close()


def hostile(model, backend):
    # 1.5 s: long enough for a ClientHello a byte at a time (sanitizers
    # included), short enough to free the stalled ones soon.
    with sbtest.start_server(BIN, *TLS, "--tls-handshake-timeout", "1.5",
                             *margs(model, backend)) as srv:
        base = srv.settled_fd_count()
        # Plaintext HTTP to the TLS port: an alert or a close, soon.
        s = srv.connect()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert expect_closed(s, 5), "plaintext: not closed"
        s.close()
        served(srv)
        # Random bytes.
        rnd = random.Random(13)
        for _ in range(5):
            s = srv.connect()
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000))))
            assert expect_closed(s, 5), "random bytes: not closed"
            s.close()
        served(srv)
        slow_hello(srv)
        # Connections that stop mid-handshake: the timeout frees them.
        hello = client_hello()[3]
        # The event model holds the thousand; a thread or a process
        # per stalled connection makes 300 enough to show the same there.
        n = 100 if SAN else (1000 if model == "event" else 300)
        stalled = []
        for i in range(n):
            c = srv.connect()
            if i % 2:
                c.sendall(hello[:len(hello) // 2])
            stalled.append(c)
        served(srv)
        ok = sbtest.wait_until(lambda: srv.fd_count() <= base + 2, 15 if SAN else 8)
        assert ok, f"{srv.fd_count()} fds, {base} before: stalled handshakes not freed"
        for c in stalled:
            c.close()
        # A reset mid-record: a record header promising more than comes.
        s = tls_connect(srv)
        raw = socket.socket(fileno=os.dup(s.fileno()))
        raw.sendall(b"\x17\x03\x03\x40\x00" + b"x" * 100)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
        s.close()
        served(srv)
        assert srv.alive()


def truncated_eof():
    """An `eof` exchange whose end comes without close_notify is not
    answered (the length is the end, and a cut one looks the same); with
    close_notify (send --half-close) it is."""
    with sbtest.start_server(BIN, *TLS, "--frame", "eof") as srv:
        s = tls_connect(srv)
        s.sendall(b"maybe cut")
        raw = socket.socket(fileno=os.dup(s.fileno()))
        raw.shutdown(socket.SHUT_WR)  # FIN, no close_notify
        s.settimeout(5)
        try:
            got = s.recv(100)
        except (ssl.SSLError, ConnectionError):
            got = b""
        assert got == b"", got
        raw.close()
        s.close()
        r = run("send", f"localhost:{srv.addr[1]}", "--tls", "--cacert", p("ca.pem"),
                "--frame", "eof", "whole")
        assert r.rc == 0 and r.out == b"whole\n", r


def sendfile_mode_logged():
    with sbtest.start_server(BIN, *TLS, "--app", "http", "--root", p("root")) as srv:
        assert "sendfile via read+SSL_write" in srv.stderr_text(), srv.stderr_text()
    with sbtest.start_server(BIN, *TLS, "--app", "http", "--root", p("root"),
                             "--tls-ktls") as srv:
        err = srv.stderr_text()
        assert "sendfile via ktls" in err or "sendfile via read+SSL_write" in err, err
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            if "tls" not in f.read():  # asked for and absent: the log says why
                assert "tls module is not loaded" in err, err
        r = subprocess.run(["curl", "-sS", "--cacert", p("ca.pem"),
                            f"https://localhost:{srv.addr[1]}/big.bin"], capture_output=True,
                           timeout=20)
        with open(p("root/big.bin"), "rb") as f:
            assert r.returncode == 0 and r.stdout == f.read(), r.stderr


def chat(model):
    """The chat app sends to every other member from the sender's thread
    (threads model): over TLS those writes go through each member's own
    thread, never into an engine another thread is reading with."""
    with sbtest.start_server(BIN, *TLS, "--app", "chat", "--model", model) as srv:
        members = [tls_connect(srv) for _ in range(4)]
        time.sleep(0.2)  # every member joined before the first line
        decs = [Framing("line").decoder() for _ in members]
        for i, m in enumerate(members):
            m.sendall(b"from %d\n" % i)
        for i, m in enumerate(members):
            got = recv_msgs(m, decs[i], 3, timeout=10)
            assert sorted(got) == sorted(b"from %d" % j for j in range(4) if j != i), got
        for m in members:
            m.close()


def bench_tls():
    with sbtest.start_server(BIN, *TLS) as srv:
        r = run("bench", f"localhost:{srv.addr[1]}", "--tls", "--cacert", p("ca.pem"),
                "-n", "200", "-c", "4", "--pipeline", "4", timeout=60)
        assert r.rc == 0 and b"errors      0" in r.out, r
        r = run("bench", f"localhost:{srv.addr[1]}", "--tls", "-n", "10", "-c", "1", timeout=60)
        assert r.rc == 1 and "certificate verify failed" in r.err, r
    with sbtest.start_server(BIN, *TLS, "--app", "http", "--root", p("root")) as srv:
        r = run("bench", f"https://localhost:{srv.addr[1]}/a.txt", "--cacert", p("ca.pem"),
                "-n", "200", "-c", "2", timeout=60)
        assert r.rc == 0 and b"errors      0" in r.out, r


def tls_handshakes_ok(srv):
    """The server's switchboard_tls_handshakes_total{result="ok"}, summed over workers."""
    m = sbtest.wait_until(lambda: re.search(r"metrics on http://(\S+)/metrics", srv.stderr_text()), 5)
    assert m, srv.stderr_text()
    with urllib.request.urlopen(f"http://{m.group(1)}/metrics", timeout=5) as f:
        text = f.read().decode()
    return sum(float(v) for v in re.findall(
        r'^switchboard_tls_handshakes_total\{[^}]*result="ok"[^}]*\} (\S+)$', text, re.M))


def bench_json(*a):
    r = run("bench", *a, "--json", timeout=60)
    try:
        return r, json.loads(r.out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"no JSON from bench: {r!r}")


def bench_reconnect():
    n, conns = 60, 4
    with sbtest.start_server(BIN, *TLS, "--app", "http", "--root", p("root"),
                             "--metrics", "127.0.0.1:0") as srv:
        url = f"https://localhost:{srv.addr[1]}/a.txt"
        r, d = bench_json(url, "--cacert", p("ca.pem"), "--reconnect", "-n", n, "-c", conns)
        assert r.rc == 0 and d["errors_total"] == 0, r
        assert (d["received_total"], d["connected"], d["tls_handshakes"], d["tls_resumed"]) == \
            (n, n, n, 0), d
        # The server counts a handshake when its connection ends.
        assert sbtest.wait_until(lambda: tls_handshakes_ok(srv) >= n, 5), tls_handshakes_ok(srv)
        r, d = bench_json(url, "--cacert", p("ca.pem"), "--reconnect", "--tls-resume",
                          "-n", n, "-c", conns)
        assert r.rc == 0 and d["errors_total"] == 0, r
        # Each slot's first connection has no ticket to offer; every later one resumes.
        assert (d["connected"], d["tls_handshakes"], d["tls_resumed"]) == (n, n, n - conns), d
        assert sbtest.wait_until(lambda: tls_handshakes_ok(srv) >= 2 * n, 5), tls_handshakes_ok(srv)
        time.sleep(0.2)
        eq = tls_handshakes_ok(srv)
        assert eq == 2 * n, f"server counted {eq} handshakes for {2 * n} connections"
    with sbtest.start_server(BIN, *TLS) as srv:  # echo over TLS, a connection per message
        r, d = bench_json(f"localhost:{srv.addr[1]}", "--tls", "--cacert", p("ca.pem"),
                          "--reconnect", "-n", 20, "-c", 2)
        assert r.rc == 0 and (d["received_total"], d["tls_handshakes"]) == (20, 20), r
    with sbtest.start_server(BIN, "--tls-cert", p("self.pem"), "--tls-key", p("self.key"),
                             "--app", "http", "--root", p("root")) as srv:
        url = f"https://localhost:{srv.addr[1]}/a.txt"
        r, d = bench_json(url, "--reconnect", "-n", 10, "-c", 2)
        assert r.rc == 1 and "certificate verify failed" in r.err, r
        assert d["errors"]["tls"] >= 1 and d["tls_handshakes"] == 0, d
        r, d = bench_json(url, "-k", "--reconnect", "--tls-resume", "-n", 10, "-c", 2)
        assert r.rc == 0 and (d["tls_handshakes"], d["tls_resumed"]) == (10, 8), d
    for bad in (["--tls-resume"], ["--reconnect", "--pipeline", "2"],
                ["--reconnect", "--rate", "10"]):
        r = run("bench", "https://localhost:1/", *bad)
        assert r.rc == 2, r


def usage():
    r = run("serve", "--tls-cert", p("server.pem"))
    assert r.rc == 2 and "--tls-key" in r.err, r
    r = run("serve", "--tls-cert", p("nope.pem"), "--tls-key", p("server.key"))
    assert r.rc == 1 and "switchboard: serve: --tls-cert:" in r.err, r
    r = run("serve", "--tls-cert", p("server.pem"), "--tls-key", p("self.key"))
    assert r.rc == 1 and "switchboard: serve: --tls-cert:" in r.err, r
    r = run("send", "127.0.0.1:1", "--sni", "x", "m")
    assert r.rc == 2, r


def main():
    if shutil.which("openssl") is None:
        print("e2e_tls: SKIP: the openssl command is not installed")
        return 0
    if not tls_built():
        print("e2e_tls: SKIP: this build has no TLS")
        return 0
    make_certs()
    os.mkdir(p("root"))
    with open(p("root/a.txt"), "wb") as f:
        f.write(b"hello over tls\n")
    with open(p("root/big.bin"), "wb") as f:
        f.write(random.Random(7).randbytes(300_000))
    have_curl = shutil.which("curl") is not None
    for model, backend in backends():
        name = f"{model}/{backend}" if backend else model
        if have_curl:
            R.check(f"{name}: curl --cacert keep-alive and Range", curl_keepalive_and_range,
                    model, backend)
        R.check(f"{name}: openssl s_client -tls1_2 and -tls1_3", s_client, model, backend)
        R.check(f"{name}: Python ssl echo, line len32 varint", python_framings, model, backend)
        R.check(f"{name}: send --tls, --half-close", send_tls, model, backend)
    R.check("get https:// against Python's http.server in ssl", get_against_python)
    R.check("verification: self-signed, host name, --insecure", verification)
    R.check("mutual TLS: a client without a certificate is refused", mutual_tls)
    for model, backend in (("event", "epoll"), ("event", "poll"), ("threads", None),
                           ("fork", None)):
        name = f"{model}/{backend}" if backend else model
        R.check(f"{name}: hostile peers while serving others", hostile, model, backend,
                limit=120)
    R.check("eof framing cut without close_notify is not answered", truncated_eof)
    if have_curl:
        R.check("the server says how it sends files", sendfile_mode_logged)
    for model in ("event", "threads"):
        R.check(f"{model}: chat over TLS, sends from other members' threads", chat, model)
    R.check("bench --tls and bench https://", bench_tls)
    R.check("bench --reconnect [--tls-resume]: handshakes counted, resumed, verified",
            bench_reconnect)
    R.check("usage and configuration errors", usage)
    return R.finish()


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
