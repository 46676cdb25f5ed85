#!/usr/bin/env python3
"""e2e_event: the event loop end to end against the real `switchboard`.

- 2,000 concurrent connections echo under event+epoll and event+poll
  (RLIMIT_NOFILE raised for this process; the server inherits it).
- event+select: connections whose server-side fd would be >= FD_SETSIZE are
  closed with an error naming FD_SETSIZE on stderr; the others keep working.
- EMFILE: a server limited to 64 fds facing 100 connections does not spin
  (CPU time over 2 s) and serves new clients once the storm is gone.
- chat: each message reaches every other client, never the sender; a client
  that never reads while ~12 MiB are broadcast is disconnected, the readers
  get everything, and the server's RSS stays under 64 MiB (not checked in
  sanitizer builds, whose allocator quarantine holds freed memory); a
  non-reader that speaks after ~3.6 MB were queued for it stalls nobody
  (every line reaches the others within 1 s) and is cut off at the out-cap.
- a peer that resets in the middle of a message (SO_LINGER 0) or with
  replies pending does not hurt the server.
- half-close exchange under every backend.
- chat with a fractional --idle-timeout: a member that only receives is not
  idle while lines reach it (under threads they are written by the sender's
  thread), and is still cut once nothing flows.
"""

import os
import resource
import select
import selectors
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import Framing, expect_closed, recv_msgs, recv_until_eof  # noqa: E402

BACKENDS = ["epoll", "poll", "select"]
FD_SETSIZE = 1024

args = sbtest.parse_args()
BIN = args.bin
r = sbtest.Runner("e2e_event", args)
URING = ["uring"] if sbtest.has_uring(BIN) else []
BACKENDS += URING
LINE = Framing("line")


def eq(got, want, what="reply"):
    if got != want:
        raise AssertionError(f"{what}: got {got!r:.300}, want {want!r:.300}")


def sanitized():
    """True if the build under test uses sanitizers (memory bounds differ)."""
    return bool(sbtest.sanitizers(args.build))


def server(backend, *extra, **kw):
    return sbtest.start_server(BIN, "--model", "event", "--backend", backend, *extra, **kw)


def echo_once(srv, payload=b"ping", timeout=5.0):
    s = srv.connect(timeout=timeout)
    try:
        s.sendall(payload + b"\n")
        eq(recv_msgs(s, LINE.decoder(), 1, timeout), [payload])
    finally:
        s.close()


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def open_many(srv, n, timeout=5.0):
    socks = []
    try:
        for _ in range(n):
            socks.append(srv.connect(timeout=timeout))
    except BaseException:
        close_all(socks)
        raise
    return socks


def collect(socks, want, timeout):
    """Wait on all sockets at once. For each: 'ok' (the expected line came
    back), 'closed' (EOF/reset before it), 'bad' (other bytes) or 'silent'."""
    state = {}
    bufs = {s.fileno(): bytearray() for s in socks}
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    deadline = time.monotonic() + timeout
    try:
        while len(state) < len(socks):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(min(left, 1.0)):
                s, i = key.fileobj, key.data
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if not data:
                    state[i] = "closed"
                    sel.unregister(s)
                    continue
                b = bufs[s.fileno()]
                b += data
                if b"\n" in b:
                    state[i] = "ok" if bytes(b) == want[i] + b"\n" else "bad"
                    sel.unregister(s)
    finally:
        sel.close()
        for s in socks:
            try:
                s.setblocking(True)
            except OSError:
                pass
    return [state.get(i, "silent") for i in range(len(socks))]


# --------------------------------------------------------------------------

def concurrent_2000(backend, n=2000):
    limit = sbtest.raise_nofile(n * 2 + 200)
    if limit < n + 100:
        raise sbtest.SkipCheck(f"RLIMIT_NOFILE hard limit too low ({limit})")
    srv = server(backend, "--frame", "line")
    socks = []
    try:
        base = srv.settled_fd_count()
        t = time.monotonic()
        socks = open_many(srv, n)
        print(f"     {n} connections open in {time.monotonic() - t:.2f}s", flush=True)
        ok = sbtest.wait_until(lambda: srv.fd_count() >= base + n, 15)
        print(f"     server holds {srv.fd_count()} fds (baseline {base})", flush=True)
        if not ok:
            raise AssertionError(f"server accepted only {srv.fd_count() - base} of {n} "
                                 f"connections in 15 s")
        want = [b"client %d" % i for i in range(n)]
        for i, s in enumerate(socks):
            s.sendall(want[i] + b"\n")
        st = collect(socks, want, 30)
        counts = {k: st.count(k) for k in set(st)}
        print(f"     replies: {counts}", flush=True)
        if counts.get("ok", 0) != n:
            bad = [(i, st[i]) for i in range(n) if st[i] != "ok"][:10]
            raise AssertionError(f"not every connection echoed: {counts}; first: {bad}")
        # a second round on every connection: still all served
        for i, s in enumerate(socks):
            s.sendall(want[i] + b"\n")
        st = collect(socks, want, 30)
        eq(st.count("ok"), n, "second round echoes")
        close_all(socks)
        socks = []
        back = sbtest.wait_until(lambda: srv.fd_count() <= base, 10)
        print(f"     after closing: {srv.fd_count()} fds", flush=True)
        if not back:
            raise AssertionError(f"fd count {srv.fd_count()} did not return to {base}")
        echo_once(srv, b"after the crowd")
    finally:
        close_all(socks)
        srv.kill()


def select_fd_setsize(n=1100):
    limit = sbtest.raise_nofile(4096)
    if limit < n + 100:
        raise sbtest.SkipCheck(f"RLIMIT_NOFILE hard limit too low ({limit})")
    srv = server("select", "--frame", "line")
    socks = []
    try:
        base = srv.settled_fd_count()
        socks = open_many(srv, n)
        want = [b"sel %d" % i for i in range(n)]
        for i, s in enumerate(socks):
            try:
                s.sendall(want[i] + b"\n")
            except (ConnectionResetError, BrokenPipeError):
                pass
        st = collect(socks, want, 20)
        counts = {k: st.count(k) for k in set(st)}
        print(f"     server baseline {base} fds; replies: {counts}", flush=True)
        if counts.get("silent", 0) or counts.get("bad", 0):
            bad = [(i, st[i]) for i in range(n) if st[i] in ("silent", "bad")][:10]
            raise AssertionError(f"connections neither served nor closed (or wrong echo): "
                                 f"{counts}; first: {bad}")
        if counts.get("ok", 0) < FD_SETSIZE - base - 16:
            raise AssertionError(f"only {counts.get('ok', 0)} served; every connection whose "
                                 f"fd is below FD_SETSIZE should be")
        if counts.get("closed", 0) == 0:
            raise AssertionError("no connection refused, though fds must pass FD_SETSIZE")
        first_closed = st.index("closed")
        if "ok" in st[first_closed:]:
            print("     note: some connections after the first refused one were served "
                  "(fds freed and reused)", flush=True)
        err = srv.stderr_text()
        lines = [ln for ln in err.splitlines() if "FD_SETSIZE" in ln]
        print(f"     stderr lines naming FD_SETSIZE: {len(lines)}; first: "
              f"{lines[0] if lines else None!r}", flush=True)
        if not lines:
            raise AssertionError(f"server stderr does not mention FD_SETSIZE: {err[-500:]!r}")
        # the served ones still work after the refusals
        ok_socks = [socks[i] for i in range(n) if st[i] == "ok"][:50]
        for i, s in enumerate(ok_socks):
            s.sendall(b"again %d\n" % i)
            eq(recv_msgs(s, LINE.decoder(), 1), [b"again %d" % i], "served connection, again")
        close_all(socks)
        socks = []
        # Until the server has let go of the closed ones, a new connection may
        # still get an fd >= FD_SETSIZE and be refused (rightly).
        if not sbtest.wait_until(lambda: srv.fd_count() <= base + 2, 20):
            raise AssertionError(f"server fds did not return to {base}: {srv.fd_count()}")
        echo_once(srv, b"after FD_SETSIZE")
        if not srv.alive():
            raise AssertionError("server died")
    finally:
        close_all(socks)
        srv.kill()


def emfile(backend, nfd=64, n=100):
    def low_limit():
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (nfd, hard))

    srv = server(backend, "--frame", "line", preexec_fn=low_limit)
    socks = []
    try:
        echo_once(srv, b"before the storm")
        socks = open_many(srv, n)
        # the server at its limit, done with the backlog for now
        sbtest.wait_until(lambda: srv.fd_count() >= nfd - 1 and srv.quiet(), 5, 0.01)
        if not srv.alive():
            raise AssertionError(f"server died at EMFILE: {srv.stderr_text()[-400:]!r}")
        c0 = srv.cpu_seconds()
        t0 = time.monotonic()
        time.sleep(2.0)
        used = srv.cpu_seconds() - c0
        wall = time.monotonic() - t0
        print(f"     {n} connections against a {nfd}-fd limit: server CPU "
              f"{used:.2f}s over {wall:.2f}s ({srv.fd_count()} fds open)", flush=True)
        if used > 0.5 * wall:
            raise AssertionError(f"server spins at EMFILE: {used:.2f}s CPU in {wall:.2f}s")
        # the first connections were accepted and are served
        for i, s in enumerate(socks[:20]):
            s.sendall(b"early %d\n" % i)
            eq(recv_msgs(s, LINE.decoder(), 1, 5), [b"early %d" % i], f"connection {i}")
        print("     the first 20 connections are served", flush=True)
        close_all(socks)
        socks = []
        # a new client is served again (bounded: pending ones drain first)
        deadline = time.monotonic() + 15
        while True:
            try:
                echo_once(srv, b"after the storm", timeout=5)
                break
            except (OSError, AssertionError) as e:
                if time.monotonic() > deadline:
                    raise AssertionError(f"new client not served after the storm: {e}")
                time.sleep(0.2)
        print("     a new client is served after the storm", flush=True)
        c0 = srv.cpu_seconds()
        time.sleep(1.0)
        used = srv.cpu_seconds() - c0
        if used > 0.5:
            raise AssertionError(f"server spins after the storm: {used:.2f}s CPU in 1 s")
        err = srv.stderr_text()
        if "too many open files" in err.lower() or "EMFILE" in err:
            print("     stderr reports the fd shortage", flush=True)
    finally:
        close_all(socks)
        srv.kill()


def chat_sync(sender, others, decs):
    """Make sure every client is a chat member before the real test: the
    sender repeats "sync K" until every other client has received it (each
    connection is in order, so older syncs came first); then all buffered
    sync messages are dropped."""
    for k in range(40):
        sender.sendall(b"sync %d\n" % k)
        want = b"sync %d\n" % k
        # up to 0.05 s (0.25 s after ten rounds) for every client to have it
        deadline = time.monotonic() + (0.05 if k < 10 else 0.25)
        waiting = list(zip(others, decs))
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([s for s, _ in waiting], [], [], left)
            for s, d in waiting:
                if s not in r:
                    continue
                data = s.recv(65536)
                if not data:
                    raise AssertionError("a chat client was disconnected during sync")
                d.feed(data)
            waiting = [(s, d) for s, d in waiting if want not in bytes(d.buf)]
        ok = not waiting
        if ok:
            for d in decs:
                d.buf.clear()
            return
    raise AssertionError("not every client became a chat member within ~8 s")


def chat_three(model, backend):
    extra = ["--backend", backend] if backend else []
    srv = sbtest.start_server(BIN, "--app", "chat", "--model", model, *extra, "--frame", "line")
    cl = []
    try:
        cl = open_many(srv, 3)
        decs = [LINE.decoder() for _ in cl]
        chat_sync(cl[0], cl[1:], decs[1:])
        for i, s in enumerate(cl):
            s.sendall(b"hello from %d\n" % i)
            for j, t in enumerate(cl):
                if j != i:
                    eq(recv_msgs(t, decs[j], 1), [b"hello from %d" % i],
                       f"client {j} receives from {i}")
        print("     each message reached the two others", flush=True)
        # burst: all three at once, 200 messages each
        def blast(i):
            cl[i].sendall(b"".join(b"burst %d %d\n" % (i, k) for k in range(200)))
        ths = [threading.Thread(target=blast, args=(i,)) for i in range(3)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(10)
        for j, t in enumerate(cl):
            got = recv_msgs(t, decs[j], 400, 10)
            for i in range(3):
                mine = [m for m in got if m.startswith(b"burst %d " % i)]
                want = [] if i == j else [b"burst %d %d" % (i, k) for k in range(200)]
                eq(mine, want, f"client {j}: messages of client {i}, in order")
        print("     a 600-message burst: everyone got the others' messages in order",
              flush=True)
        # nothing comes back to a sender. Every message so far has reached
        # the others, so the server has handled all of them; a fence sent now
        # by each client comes after anything those messages put on a
        # connection: what a client reads before the others' fences would be
        # its own messages coming back.
        for i, s in enumerate(cl):
            s.sendall(b"fence %d\n" % i)
        for j, t in enumerate(cl):
            got = recv_msgs(t, decs[j], 2, 10)
            eq(sorted(got), [b"fence %d" % i for i in range(3) if i != j],
               f"client {j}: only the others' fences (its own message echoed?)")
        print("     no sender got its own message", flush=True)
    finally:
        close_all(cl)
        srv.kill()


def chat_receiver_not_idle(model, backend, idle=0.6, rounds=8, gap=0.2):
    extra = ["--backend", backend] if backend else []
    srv = sbtest.start_server(BIN, "--app", "chat", "--model", model, *extra, "--frame", "line",
                              "--idle-timeout", str(idle))
    cl = []
    try:
        cl = open_many(srv, 2)
        talker, listener = cl
        dec = LINE.decoder()
        chat_sync(talker, [listener], [dec])
        # rounds * gap is over twice the idle timeout: only the lines the
        # listener receives keep it open.
        for i in range(rounds):
            talker.sendall(b"line %d\n" % i)
            eq(recv_msgs(listener, dec, 1, timeout=5.0), [b"line %d" % i],
               f"line {i} reaches the listener")
            time.sleep(gap)
        print(f"     a receive-only member stayed open for {rounds * gap:.1f} s "
              f"(idle timeout {idle} s)", flush=True)
        t0 = time.monotonic()
        if not expect_closed(listener, timeout=10.0):
            raise AssertionError("the listener was not cut 10 s after the traffic stopped")
        print(f"     and was cut {time.monotonic() - t0:.2f} s after the traffic stopped",
              flush=True)
    finally:
        close_all(cl)
        srv.stop()


def chat_slow_reader(model, backend, total_mib=12, rss_bound_mib=64):
    extra = ["--backend", backend] if backend else []
    srv = sbtest.start_server(BIN, "--app", "chat", "--model", model, *extra, "--frame", "line",
                              "--max-msg", "4096")
    socks = []
    try:
        rss0 = srv.rss_kib()
        slow = srv.connect(rcvbuf=4096)  # never reads; small window, no autotuning
        sender = srv.connect()
        readers = [srv.connect(), srv.connect()]
        socks = [slow, sender] + readers
        chat_sync(sender, [slow] + readers, [LINE.decoder() for _ in range(3)])
        line = b"x" * 1023 + b"\n"
        nlines = total_mib * 1024
        total = nlines * len(line)
        got = [0, 0]
        errors = []

        def reader(k):
            s = readers[k]
            s.settimeout(2)
            try:
                while got[k] < total:
                    try:
                        data = s.recv(1 << 16)
                    except socket.timeout:
                        if sending_done.is_set() and time.monotonic() > reader_deadline:
                            raise TimeoutError(f"reader {k} stalled at {got[k]} bytes")
                        continue
                    if not data:
                        raise ConnectionError(f"reader {k} disconnected at {got[k]} bytes")
                    got[k] += len(data)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{type(e).__name__}: {e}")

        sending_done = threading.Event()
        reader_deadline = time.monotonic() + 90
        ths = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(2)]
        for th in ths:
            th.start()
        chunk = line * 64  # 64 KiB
        sent = 0
        rss_max = rss0
        t = time.monotonic()
        sender.settimeout(30)
        while sent < total:
            # a polite sender: at most 1 MiB ahead of the slowest reader
            deadline = time.monotonic() + 30
            while sent - min(got) > (1 << 20):
                if errors or time.monotonic() > deadline:
                    raise AssertionError(f"readers stopped: {errors or min(got)}")
                time.sleep(0.001)
            sender.sendall(chunk)
            sent += len(chunk)
            if (sent >> 16) % 16 == 0:
                rss_max = max(rss_max, srv.rss_kib())
        sending_done.set()
        for th in ths:
            while th.is_alive() and time.monotonic() < reader_deadline:
                th.join(0.05)
                rss_max = max(rss_max, srv.rss_kib())
        dt = time.monotonic() - t
        print(f"     broadcast {total >> 20} MiB in {dt:.1f}s; readers got {got}; "
              f"server RSS {rss0 >> 10} MiB before, {rss_max >> 10} MiB max", flush=True)
        if errors:
            raise AssertionError(f"a reader failed: {errors}")
        eq(got, [total, total], "bytes received by the two readers")
        # the non-reader was disconnected before it could get everything
        slow.settimeout(10)
        nbytes = 0
        closed = False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                data = slow.recv(1 << 16)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            nbytes += len(data)
        print(f"     the non-reader then read {nbytes} bytes, closed={closed}", flush=True)
        if not closed or nbytes >= total:
            raise AssertionError(f"the non-reader was not disconnected (read {nbytes} of "
                                 f"{total} bytes, closed={closed})")
        growth = (rss_max - rss0) >> 10
        if sanitized():
            # ASan's quarantine holds freed memory: RSS says nothing there
            print(f"     sanitizer build: RSS bound not checked (grew {growth} MiB)", flush=True)
        elif rss_max >> 10 > rss_bound_mib:
            raise AssertionError(f"server RSS {rss_max >> 10} MiB over {rss_bound_mib} MiB")
        # the chat goes on for the others
        sender.sendall(b"still here\n")
        for k, s in enumerate(readers):
            s.settimeout(5)
            eq(recv_msgs(s, LINE.decoder(), 1), [b"still here"], f"reader {k} after")
    finally:
        close_all(socks)
        srv.kill()


def chat_slow_reader_speaks(model, backend):
    """A slow reader that speaks must not stall the others (the scenario of a
    threads-model stall: the non-reader's thread blocked flushing its own
    queue while holding its lock, the sender's thread waited for that lock
    holding the chat's member lock, and nobody received anything). A sends
    60 lines of 60 KB that B never reads (3.6 MB for B, under the default
    out-cap of 5 MiB), then B sends one line; from then on each of 100 more
    lines A sends must reach C - and D, who connects afterwards - within
    1 s, while B is disconnected once its queue passes the cap."""
    extra = ["--backend", backend] if backend else []
    srv = sbtest.start_server(BIN, "--app", "chat", "--model", model, *extra, "--frame", "line")
    socks = []
    try:
        b = srv.connect(rcvbuf=4096)  # never reads: small window, no autotuning
        a, c = srv.connect(), srv.connect()
        socks = [a, b, c]
        decs = {"b": LINE.decoder(), "c": LINE.decoder()}
        chat_sync(a, [b, c], [decs["b"], decs["c"]])
        big = b"y" * (60 * 1024 - 1) + b"\n"
        got = [0]

        def drain_c():
            c.settimeout(10)
            while got[0] < 60 * len(big):
                data = c.recv(1 << 16)
                if not data:
                    return
                got[0] += len(data)
        th = threading.Thread(target=drain_c, daemon=True)
        th.start()
        a.settimeout(10)
        for _ in range(60):
            a.sendall(big)
        th.join(20)
        eq(got[0], 60 * len(big), "C received the 60 big lines")
        # (B's line may stay unread: a connection whose output piles up past
        # out_high is not read from - backpressure - under every model.)
        b.sendall(b"b speaks\n")
        d = srv.connect()
        socks.append(d)
        decs["d"] = LINE.decoder()
        chat_sync(a, [c, d], [decs["c"], decs["d"]])
        worst = 0.0
        for k in range(100):
            msg = b"after %d " % k
            t0 = time.monotonic()
            a.sendall(msg + b"y" * (60 * 1024 - 1 - len(msg)) + b"\n")
            for name, sock in (("c", c), ("d", d)):
                m = recv_msgs(sock, decs[name], 1, 1.0)[0]
                while m.startswith(b"b speaks"):
                    m = recv_msgs(sock, decs[name], 1, 1.0)[0]
                if not m.startswith(msg):
                    raise AssertionError(f"{name} got {m[:20]!r}, wanted {msg!r}")
            worst = max(worst, time.monotonic() - t0)
        print(f"     100 more lines reached C and D, slowest in {worst * 1000:.0f} ms", flush=True)
        # 3.6 MB + 100 x 60 KB sent to B: past the cap (5 MiB) and whatever
        # the kernel's buffers hold, B is cut off
        b.settimeout(0.5)
        closed, deadline = False, time.monotonic() + 10
        while not closed and time.monotonic() < deadline:
            try:
                closed = not b.recv(1 << 16)
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = True
        eq(closed, True, "B is disconnected by the out-cap")
    finally:
        close_all(socks)
        srv.kill()


def never_reader(backend, rss_bound_mib=64):
    """An echo client that pipelines without ever reading: the server stops
    reading from it once its replies back up (the sender stalls), its memory
    stays bounded, and the loop keeps serving everybody else meanwhile."""
    fr = Framing("len32")
    srv = server(backend, "--frame", "len32")
    hog = None
    try:
        rss0 = srv.rss_kib()
        hog = srv.connect(timeout=0.5)
        frame = memoryview(fr.encode(b"h" * 65536))
        sent = 0
        t = time.monotonic()
        rss_max = rss0
        stalled = False
        while time.monotonic() - t < 20 and sent < (256 << 20) and not stalled:
            off = 0
            while off < len(frame):
                try:
                    off += hog.send(frame[off:])
                except socket.timeout:
                    # blocked for 0.5 s: stalled if the server is asleep with
                    # our bytes unread - it stopped reading from us
                    if sbtest.unsent(hog) > 0 and srv.quiet():
                        stalled = True
                        break
            if stalled:
                break  # the partial last frame is not counted
            sent += off
            if (sent >> 16) % 32 == 0:
                rss_max = max(rss_max, srv.rss_kib())
        rss_max = max(rss_max, srv.rss_kib())
        print(f"     the non-reading client got {sent >> 20} MiB in before its sends stalled "
              f"(stalled={stalled}); server RSS {rss0 >> 10} -> {rss_max >> 10} MiB", flush=True)
        if not stalled:
            raise AssertionError(f"{sent >> 20} MiB accepted from a client that never reads: "
                                 f"no backpressure")
        # others are served while the hog is stuck
        for i in range(5):
            echo_s = srv.connect()
            try:
                echo_s.sendall(fr.encode(b"other %d" % i))
                eq(recv_msgs(echo_s, fr.decoder(), 1), [b"other %d" % i], "other client")
            finally:
                echo_s.close()
        print("     other clients served meanwhile", flush=True)
        growth = (rss_max - rss0) >> 10
        if sanitized():
            print(f"     sanitizer build: RSS bound not checked (grew {growth} MiB)", flush=True)
        elif rss_max >> 10 > rss_bound_mib:
            raise AssertionError(f"server RSS {rss_max >> 10} MiB over {rss_bound_mib} MiB "
                                 f"with one stuck client")
        # once the hog reads, everything it was sent comes back
        hog.shutdown(socket.SHUT_WR)
        back = len(recv_until_eof(hog, timeout=30, limit=sent + 1024))
        print(f"     after it reads: {back} bytes echoed of {sent} sent before the stall "
              f"(+ the partial last frame)", flush=True)
        if back < sent:
            raise AssertionError(f"only {back} of {sent} bytes echoed once the client read")
    finally:
        if hog is not None:
            hog.close()
        srv.kill()


def reset_mid_message(backend, rounds=50):
    fr = Framing("len32")
    srv = server(backend, "--frame", "len32")
    try:
        before = srv.connect()
        try:
            def ex(s, p):
                s.sendall(fr.encode(p))
                eq(recv_msgs(s, fr.decoder(), 1), [p])
            ex(before, b"before")
            lg = struct.pack("ii", 1, 0)
            for i in range(rounds):
                s = srv.connect()
                s.sendall(struct.pack("!I", 1000) + b"h" * 500)  # half a frame
                if i % 2:
                    time.sleep(0.005)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, lg)
                s.close()  # RST
            print(f"     {rounds} peers reset in the middle of a len32 frame", flush=True)
            for i in range(rounds):
                # pipelined requests, replies never read, then RST
                s = srv.connect()
                s.sendall(fr.encode(b"r" * 1000) * 200)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, lg)
                s.close()
            print(f"     {rounds} peers reset with 200 replies pending", flush=True)
            sbtest.wait_until(srv.quiet, 5, 0.01)  # the resets handled
            if not srv.alive():
                raise AssertionError(f"server died: {srv.stderr_text()[-400:]!r}")
            ex(before, b"connected before, still served")
            after = srv.connect()
            try:
                ex(after, b"connected after, served")
            finally:
                after.close()
        finally:
            before.close()
    finally:
        srv.kill()


def half_close(backend):
    # eof framing: the whole request ends with the shutdown (HOWTO 4)
    srv = server(backend, "--frame", "eof")
    try:
        s = srv.connect()
        try:
            s.sendall(b"request part one, ")
            s.sendall(b"part two")
            s.shutdown(socket.SHUT_WR)
            eq(recv_until_eof(s), b"request part one, part two", "eof echo")
        finally:
            s.close()
        res = sbtest.run_cli(BIN, "send", srv.addr_str, "--frame", "eof", "--half-close",
                             "via send")
        print(f"     {res}", flush=True)
        eq(res.rc, 0, "send exit code")
        eq(res.out, b"via send\n", "send output")
    finally:
        srv.kill()
    # line framing: the replies to everything sent before the shutdown arrive,
    # then the server closes
    srv = server(backend, "--frame", "line")
    try:
        s = srv.connect()
        try:
            s.sendall(b"a\nb\nc\n")
            s.shutdown(socket.SHUT_WR)
            eq(recv_until_eof(s), b"a\nb\nc\n", "replies before the close")
        finally:
            s.close()
        res = sbtest.run_cli(BIN, "send", srv.addr_str, "--frame", "line", "--half-close",
                             "x", "y")
        print(f"     {res}", flush=True)
        eq(res.rc, 0, "send exit code")
        eq(res.out, b"x\ny\n", "send output")
    finally:
        srv.kill()


def main():
    for b in ["epoll", "poll"] + URING:
        r.check(f"[event/{b}] 2000 concurrent connections echo", concurrent_2000, b, limit=120)
    r.check("[event/select] fds >= FD_SETSIZE refused with an error, others served",
            select_fd_setsize, limit=90)
    for b in BACKENDS:
        r.check(f"[event/{b}] EMFILE: no spin at the fd limit, served again after", emfile, b,
                limit=60)
    ring = [("event", b) for b in URING]
    for m, b in [("event", "epoll"), ("event", "poll"), ("event", "select"), ("threads", None)] + ring:
        r.check(f"[{m}{'/' + b if b else ''}] chat: messages reach the others, not the sender",
                chat_three, m, b, limit=40)
    for m, b in [("event", "epoll"), ("event", "poll"), ("threads", None)] + ring:
        r.check(f"[{m}{'/' + b if b else ''}] chat: a non-reader is disconnected, readers get all, RSS bounded",
                chat_slow_reader, m, b, limit=150)

    for m, b in [("event", "epoll"), ("threads", None)] + ring:
        r.check(f"[{m}{'/' + b if b else ''}] chat: a non-reader that speaks stalls nobody; "
                "the others receive within 1 s, it is cut off at the out-cap",
                chat_slow_reader_speaks, m, b, limit=60)

    for m, b in [("event", "epoll"), ("threads", None)] + ring:
        r.check(f"[{m}{'/' + b if b else ''}] chat: a member that only receives is not idle; "
                "cut once nothing flows", chat_receiver_not_idle, m, b, limit=40)

    def chat_fork_refused():
        res = sbtest.run_cli(BIN, "serve", "--listen", "127.0.0.1:0", "--app", "chat",
                             "--model", "fork", timeout=10)
        print(f"     {res}", flush=True)
        if res.rc not in (1, 2) or not res.err.startswith("switchboard: "):
            raise AssertionError(f"chat under fork should be refused with an error: {res}")
    r.check("chat under --model fork is refused", chat_fork_refused)
    for b in BACKENDS:
        r.check(f"[event/{b}] a client that never reads is throttled, others served",
                never_reader, b, limit=90)
    for b in BACKENDS:
        r.check(f"[event/{b}] peers resetting mid-message do not hurt the server",
                reset_mid_message, b, limit=60)
    for b in BACKENDS:
        r.check(f"[event/{b}] half-close exchange", half_close, b, limit=40)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
