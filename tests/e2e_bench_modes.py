#!/usr/bin/env python3
"""e2e_bench_modes: `switchboard bench`'s modes, driven end to end.

  -n N           exactly N replies, and the server served N; with
                 --reconnect (TCP and unix) N connections too
  --rate R       the achieved rate is near R (a sanity bound, not a timing
                 test); against a server that stalls once for 100 ms, the
                 latency counted from when each message was due shows the
                 stall (coordinated omission corrected, as wrk2)
  http://...     against `serve --app http`: statuses and lengths checked, a
                 404 counted as an error by status; against small servers of
                 our own: a body length that changes, chunked bodies,
                 "Connection: close" answers (reconnects, not errors)
  a server that answers in no framing: "no reply decoded", exit 1
  off a terminal no control characters; on a terminal (a pty) the live line
  is redrawn in place with "\\r" and the run's parameters come first

Every server here is on loopback and every run is bounded.
"""
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

SERVED_RE = re.compile(r"switchboard: served (\d+) messages? on (\d+) connections?")

args = sbtest.parse_args()
BIN = args.bin
r = sbtest.Runner("e2e_bench_modes", args)


def eq(a, b, what):
    if a != b:
        raise AssertionError(f"{what}: {a!r} != {b!r}")


def no_control(res):
    """Off a terminal bench writes no carriage return and no escape."""
    for name, text in (("stdout", res.out.decode("utf-8", "replace")), ("stderr", res.err)):
        if "\r" in text or "\x1b" in text:
            raise AssertionError(f"control characters on {name}: {text[:300]!r}")


def bench(*a, timeout=20):
    res = sbtest.run_cli(BIN, "bench", *a, timeout=timeout)
    if res.rc is None:
        raise AssertionError(f"bench did not finish in {timeout} s: {res!r}")
    no_control(res)
    if "Sanitizer" in res.err or "runtime error:" in res.err:
        raise AssertionError(f"sanitizer report from bench: {res.err[:2000]}")
    return res


def bench_json(*a, rc=0, timeout=20):
    res = bench(*a, "--json", timeout=timeout)
    eq(res.rc, rc, f"bench exit code ({res!r})")
    return json.loads(res.out)


def lines_of(c, stop):
    """Yield each line received on c until the peer closes or stop is set."""
    buf = b""
    while not stop.is_set():
        try:
            data = c.recv(65536)
        except socket.timeout:
            continue
        if not data:
            return
        buf += data
        *whole, buf = buf.split(b"\n")
        for line in whole:
            yield line


# ------------------------------------------------------------------ -n

def n_exact():
    """-n 1000 over 3 connections, pipeline 4: 1000 sent, 1000 replies,
    and the server says it served 1000."""
    srv = sbtest.start_server(BIN, "--model", "event")
    try:
        d = bench_json(srv.addr_str, "-n", "1000", "-c", "3", "--pipeline", "4")
        eq(d["count"], 1000, "count echoed")
        eq(d["sent_total"], 1000, "messages sent")
        eq(d["received_total"], 1000, "replies received")
        eq(d["messages"], 1000, "replies counted")
        eq(d["errors_total"], 0, "errors")
        _, err = srv.stop()
        m = SERVED_RE.search(err)
        if not m:
            raise AssertionError(f"no served line in {err!r}")
        eq(int(m.group(1)), 1000, "messages the server served")
    finally:
        srv.kill()


def n_fewer_than_conns():
    """-n 2 with 10 connections: only 2 messages go out."""
    srv = sbtest.start_server(BIN)
    try:
        d = bench_json(srv.addr_str, "-n", "2", "-c", "10")
        eq((d["sent_total"], d["received_total"]), (2, 2), "sent, received")
    finally:
        srv.kill()


def n_reconnect():
    """--reconnect -n 60 over TCP and a unix socket: a connection per
    message, each dialled, answered and closed - 60 connections, 60
    replies, no error, and the server counts the same."""
    with tempfile.TemporaryDirectory() as tmp:
        for listen in ("127.0.0.1:0", "unix:" + os.path.join(tmp, "s")):
            srv = sbtest.start_server(BIN, "--listen", listen)
            try:
                d = bench_json(srv.addr_str, "--reconnect", "-n", "60", "-c", "3")
                eq((d["connected"], d["received_total"], d["messages"], d["errors_total"]),
                   (60, 60, 60, 0), f"{listen}: connected, received, counted, errors")
                _, err = srv.stop()
                m = SERVED_RE.search(err)
                if not m:
                    raise AssertionError(f"no served line in {err!r}")
                eq((int(m.group(1)), int(m.group(2))), (60, 60), f"{listen}: served")
            finally:
                srv.kill()


def n_time_limit():
    """-n with --duration: the duration is a limit; short of N, exit 1 and
    say how many were answered."""
    srv = sbtest.start_server(BIN)
    try:
        res = bench(srv.addr_str, "-n", "1000000000", "--duration", "0.2", "-c", "2", "--json")
        eq(res.rc, 1, f"exit code ({res!r})")
        d = json.loads(res.out)
        if not 0 < d["received_total"] < 1000000000 or d["errors_total"]:
            raise AssertionError(f"limited run: {d}")
        if "of 1000000000 messages answered within --duration" not in res.err:
            raise AssertionError(f"no word on stderr: {res.err!r}")
    finally:
        srv.kill()


def usage_errors():
    """Options that do not go together are usage errors (exit 2)."""
    for a in (["127.0.0.1:9", "-n", "5", "--warmup", "1"],
              ["http://127.0.0.1:9/", "--frame", "len32"],
              ["127.0.0.1:9", "--rate", "0"],
              ["127.0.0.1:9", "--rate", "5", "--connect-only"],
              ["127.0.0.1:9", "-n", "0"]):
        res = bench(*a)
        eq(res.rc, 2, f"exit code of bench {' '.join(a)} ({res.err!r})")


# ----------------------------------------------------------------- --rate

def rate_achieved():
    """--rate 2000 for 1 s: the achieved rate is reported beside the asked
    one and lies within 50% of it (a sanity bound only)."""
    srv = sbtest.start_server(BIN, "--model", "event")
    try:
        d = bench_json(srv.addr_str, "--rate", "2000", "-c", "4", "--duration", "1",
                       "--warmup", "0.2")
        eq(d["rate_asked"], 2000, "asked rate")
        eq(d["latency_from"], "due", "latency basis")
        eq(d["errors_total"], 0, "errors")
        if not 1000 <= d["msgs_per_s"] <= 3000:
            raise AssertionError(f"achieved {d['msgs_per_s']} msgs/s for 2000 asked")
        print(f"     asked 2000/s, achieved {d['msgs_per_s']:.0f}/s", flush=True)
        # with -n the schedule still holds: 300 messages at 2000/s
        d = bench_json(srv.addr_str, "--rate", "2000", "-c", "2", "-n", "300", "--threads", "2")
        eq(d["received_total"], 300, "replies with --rate and -n")
    finally:
        srv.kill()


def stalling_server(stall_after, stall_s=0.1):
    """A line echo server, single-threaded (a stall stops every
    connection), that sleeps stall_s once after stall_after lines."""
    import selectors
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    stop = threading.Event()
    state = {"lines": 0, "stalled": False}

    def loop():
        bufs = {}
        while not stop.is_set():
            for key, _ in sel.select(0.05):
                s = key.fileobj
                if s is ls:
                    try:
                        c, _ = ls.accept()
                    except OSError:
                        continue
                    c.setblocking(True)
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    bufs[c] = b""
                    sel.register(c, selectors.EVENT_READ)
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    s.close()
                    bufs.pop(s, None)
                    continue
                buf = bufs[s] + data
                *whole, bufs[s] = buf.split(b"\n")
                if not whole:
                    continue
                state["lines"] += len(whole)
                if state["lines"] >= stall_after and not state["stalled"]:
                    state["stalled"] = True
                    time.sleep(stall_s)
                s.sendall(b"".join(w + b"\n" for w in whole))
        for s in list(bufs):
            s.close()
        ls.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()

    def close():
        stop.set()
        t.join(2)
    return "127.0.0.1:%d" % ls.getsockname()[1], state, close


def rate_stall():
    """A server that stalls once for 100 ms, 0.3 s into the run: with
    --rate the latency of the messages due during the stall counts from
    when they were due, so p99 and p99.9 (and max) show it; a closed-loop run is
    run beside it for the record (one message waits, the rest are not
    sent, so its percentiles need not show the stall)."""
    addr, state, close = stalling_server(stall_after=300)
    try:
        d = bench_json(addr, "--rate", "1000", "-c", "4", "--duration", "1", "--warmup", "0")
        if not state["stalled"]:
            raise AssertionError("the server never stalled")
        lat = d["latency_us"]
        print(f"     --rate 1000: p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us, "
              f"p99.9 {lat['p99.9']:.0f} us, max {lat['max']:.0f} us", flush=True)
        # About 100 of the run's 1000 messages fall due during the stall, so
        # corrected, even p99 shows it; counted from the send, only the 4
        # messages in flight when it began wait long, and p99 stays low.
        if lat["p99"] < 50000 or lat["p99.9"] < 50000 or lat["max"] < 90000:
            raise AssertionError(f"the 100 ms stall does not show in {lat}")
    finally:
        close()
    addr, state, close = stalling_server(stall_after=300)
    try:
        d = bench_json(addr, "-c", "4", "--duration", "1", "--warmup", "0")
        lat = d["latency_us"]
        print(f"     closed loop: p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us, "
              f"p99.9 {lat['p99.9']:.0f} us, max {lat['max']:.0f} us", flush=True)
    finally:
        close()


# ------------------------------------------------------------------ HTTP

def http_serve_app():
    """Against `serve --app http`: a file fetched 300 times over 3
    keep-alive connections, pipelined, every status 200 and every length
    the file's; a missing path is 10 errors by status (404), exit 1."""
    with tempfile.TemporaryDirectory() as root:
        body = b"switchboard bench http test\n" * 10
        with open(os.path.join(root, "f.txt"), "wb") as f:
            f.write(body)
        srv = sbtest.start_server(BIN, "--app", "http", "--root", root, "--model", "event")
        try:
            url = "http://%s/f.txt" % srv.addr_str
            d = bench_json(url, "-n", "300", "-c", "3", "--pipeline", "4")
            eq(d["mode"], "http", "mode")
            eq(d["statuses"], {"200": 300}, "statuses")
            eq(d["errors_total"], 0, "errors")
            if d["bytes_received"] < 300 * len(body):
                raise AssertionError(f"{d['bytes_received']} bytes for 300 x {len(body)}")
            d = bench_json("http://%s/missing" % srv.addr_str, "-n", "10", "-c", "2", rc=1)
            eq(d["errors"]["status"], 10, "errors by status")
            eq(d["statuses"], {"404": 10}, "statuses")
            res = bench("http://%s/missing" % srv.addr_str, "-n", "3", "-c", "1")
            eq(res.rc, 1, "exit code, text report")
            if "404: 3" not in res.out.decode():
                raise AssertionError(f"no '404: 3' in the text report: {res.out!r}")
            # a duration run with the live line's machinery off: rate and no errors
            d = bench_json(url, "-c", "2", "--duration", "0.3", "--warmup", "0.1",
                           "--threads", "2")
            if d["messages"] <= 0 or d["errors_total"]:
                raise AssertionError(f"duration run: {d}")
        finally:
            srv.kill()


def http_handler(c, stop):
    """Answers by path: /alt alternates two body lengths, /chunked sends a
    chunked body in three chunks, /close answers with Connection: close."""
    buf = b""
    n = 0
    while not stop.is_set():
        while b"\r\n\r\n" not in buf:
            try:
                data = c.recv(65536)
            except socket.timeout:
                if stop.is_set():
                    return
                continue
            if not data:
                return
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        path = head.split(b" ")[1]
        n += 1
        if path == b"/alt":
            body = b"x" * (10 if n % 2 else 11)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif path == b"/chunked":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
        elif path == b"/close":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            return
        else:
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def http_checks():
    """A body length that changes is counted (length errors); chunked
    bodies decode (11 bytes each, no error); "Connection: close" answers
    cost a reconnect each, not an error."""
    srv = sbtest.TinyServer(http_handler)
    try:
        d = bench_json("http://%s/alt" % srv.addr, "-n", "20", "-c", "1", rc=1)
        eq(d["errors"]["length"], 10, "length errors (every other body is 11 bytes, not 10)")
        d = bench_json("http://%s/chunked" % srv.addr, "-n", "50", "-c", "2", "--pipeline", "3")
        eq((d["received_total"], d["errors_total"]), (50, 0), "chunked: replies, errors")
        d = bench_json("http://%s/close" % srv.addr, "-n", "20", "-c", "2", "--pipeline", "2")
        eq((d["received_total"], d["errors_total"]), (20, 0), "close: replies, errors")
        if d["reconnects"] < 8:
            raise AssertionError(f"{d['reconnects']} reconnects for 20 closing answers")
    finally:
        srv.close()


# --------------------------------------------------------- nothing decodes

def nothing_decodes():
    """A server that answers every line with '?' and no newline: bytes come
    back but no reply is ever cut. bench says so and exits 1."""
    def handle(c, stop):
        for _ in lines_of(c, stop):
            c.sendall(b"?")
    srv = sbtest.TinyServer(handle)
    try:
        res = bench(srv.addr, "-c", "1", "--duration", "0.3", "--warmup", "0")
        eq(res.rc, 1, f"exit code ({res!r})")
        if "no reply decoded" not in res.err or "does the server speak line?" not in res.err:
            raise AssertionError(f"no 'no reply decoded ... speak line?' in {res.err!r}")
        # the HTTP mode against an echo server: the same message, naming HTTP
        srv2 = sbtest.start_server(BIN)
        try:
            res = bench("http://%s/" % srv2.addr_str, "-c", "1", "--duration", "0.2",
                        "--warmup", "0")
            eq(res.rc, 1, f"exit code ({res!r})")
            if "does the server speak HTTP/1.1?" not in res.err:
                raise AssertionError(f"no HTTP hint in {res.err!r}")
        finally:
            srv2.kill()
    finally:
        srv.close()


# ------------------------------------------------------------ the terminal

def live_line_pty(threads):
    """stderr on a terminal: the parameters first, then the live line
    redrawn in place ('\\r' and clear-to-end-of-line) during the warmup and
    the window, cleared before the report (which goes to stdout). With one
    thread the loop draws it, with more the main thread."""
    srv = sbtest.start_server(BIN)
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([BIN, "bench", srv.addr_str, "-c", "2", "--warmup", "0.6",
                              "--duration", "0.6", "--threads", str(threads)],
                             stdout=subprocess.PIPE, stderr=slave,
                             stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = None
        tty = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            rd, _, _ = select.select([master], [], [], 0.2)
            if rd:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the other side closed
                    break
                if not data:
                    break
                tty += data
            elif p.poll() is not None:
                break
        out, _ = p.communicate(timeout=10)
        eq(p.returncode, 0, "exit code")
        text = tty.decode("utf-8", "replace")
        if not text.startswith("switchboard bench %s:" % srv.addr_str):
            raise AssertionError(f"the parameters do not come first: {text[:200]!r}")
        redraws = text.count("\r\x1b[K")
        if redraws < 3:
            raise AssertionError(f"{redraws} redraws in {text!r}")
        if "warmup" not in text or " run " not in text:
            raise AssertionError(f"the live line does not show warmup and run: {text!r}")
        if "\r" in out.decode() or "\x1b" in out.decode():
            raise AssertionError(f"control characters in the report: {out!r}")
        print(f"     {redraws} redraws", flush=True)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
        srv.kill()


def main():
    r.check("bench -n: exactly N replies, the server's count agrees", n_exact, limit=20)
    r.check("bench -n 2 -c 10: two messages only", n_fewer_than_conns, limit=20)
    r.check("bench --reconnect -n: a connection per message, TCP and unix", n_reconnect,
            limit=20)
    r.check("bench -n with --duration: a limit, exit 1 short of N", n_time_limit, limit=20)
    r.check("bench: options that do not go together exit 2", usage_errors, limit=20)
    r.check("bench --rate: achieved rate near the asked one", rate_achieved, limit=20)
    r.check("bench --rate: a 100 ms stall shows in p99.9 (latency from when due)",
            rate_stall, limit=30)
    r.check("bench http://: serve --app http, statuses and lengths, 404 counted",
            http_serve_app, limit=30)
    r.check("bench http://: length changes, chunked bodies, Connection: close",
            http_checks, limit=30)
    r.check("bench: bytes but no reply decoded is said, exit 1", nothing_decodes, limit=30)
    for t in (1, 2):
        r.check(f"bench --threads {t}: live line on a terminal, redrawn with \\r",
                live_line_pty, t, limit=30)
    sys.exit(r.finish())


if __name__ == "__main__":
    main()
