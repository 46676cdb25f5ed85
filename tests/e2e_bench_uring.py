#!/usr/bin/env python3
"""e2e_bench_uring: `switchboard bench --backend uring`, the completion-based
client engine (cli/bench_uring.c), driven end to end.

  every framing bench can check, at pipeline 1 and 8, -n exact: N sent, N
  replies checked, and the server served N; a payload larger than a
  provided buffer (replies that span buffers); 1,000 connections at
  pipeline 8, more than the kernel's ring holds to begin with: the ring
  grows (client_ring_buffers), within the buffers there are, and every
  reply is checked
  --threads, --rate with -n, --duration with --marks
  servers that corrupt a reply's first or last byte, swap two replies or
  answer twice: mismatch counted, exit 1
  http:// and --connect-only keep the library loop (its uring backend)
  io_uring refused at run time (a seccomp filter on io_uring_setup): a
  clear message, exit 1

Skipped where switchboard is built without liburing or the kernel refuses
io_uring. Every server is on loopback and every run bounded.
"""
import ctypes
import json
import os
import platform
import re
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

SERVED_RE = re.compile(r"switchboard: served (\d+) messages? on (\d+) connections?")

args = sbtest.parse_args()
BIN = args.bin
r = sbtest.Runner("e2e_bench_uring", args)
AVAILABLE = None


def eq(a, b, what):
    if a != b:
        raise AssertionError(f"{what}: {a!r} != {b!r}")


def bench(*a, timeout=30, preexec_fn=None):
    cmd = [BIN, "bench"] + [str(x) for x in a]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                       preexec_fn=preexec_fn)
    res = sbtest.CliResult(cmd, p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))
    if "Sanitizer" in res.err or "runtime error:" in res.err:
        raise AssertionError(f"sanitizer report from bench: {res.err[:2000]}")
    return res


def uring_json(*a, rc=0):
    res = bench(*a, "--backend", "uring", "--json")
    eq(res.rc, rc, f"bench exit code ({res!r})")
    return json.loads(res.out)


def need_uring():
    """Skip unless this binary and kernel run the uring engine."""
    global AVAILABLE
    if AVAILABLE is None:
        srv = sbtest.start_server(BIN, "--frame", "len32")
        try:
            res = bench(srv.addr_str, "--frame", "len32", "-n", "1", "--backend", "uring")
            # Only io_uring refused skips; any other failure is the engine's
            # and shows in the checks.
            AVAILABLE = "io_uring cannot be used here" not in res.err
            why = res.err.strip()
        finally:
            srv.kill()
        need_uring.why = why
    if not AVAILABLE:
        raise sbtest.SkipCheck(need_uring.why or "bench --backend uring failed")


def served(srv):
    _, err = srv.stop()
    m = SERVED_RE.search(err)
    if not m:
        raise AssertionError(f"no served line in {err!r}")
    return int(m.group(1))


# ------------------------------------------------------------- the echo app

# (--frame, extra bench options): every framing bench checks.
FRAMINGS = [
    ("line", []),
    ("delim:\\r\\n", []),
    ("fixed:64", []),
    ("ascii:5", []),
    ("len16", []),
    ("len32", []),
    ("len64", []),
    ("varint", []),
    ("typed:1=10,7=64", []),
]


def framings_exact(spec, extra, pipeline):
    """-n 777 over 5 connections: every reply checked, the server's count
    agrees."""
    need_uring()
    srv = sbtest.start_server(BIN, "--frame", spec, "--model", "event")
    try:
        d = uring_json(srv.addr_str, "--frame", spec, "-n", "777", "-c", "5",
                       "--pipeline", pipeline, *extra)
        eq(d["client_backend"], "uring-completion", "client engine")
        eq((d["sent_total"], d["received_total"], d["messages"]), (777, 777, 777),
           "sent, received, counted")
        eq(d["errors_total"], 0, "errors")
        eq(served(srv), 777, "messages the server served")
    finally:
        srv.kill()


def spanning_buffers():
    """100 KiB payloads at pipeline 3: replies span several provided buffers
    (64 KiB at most each) and arrive in pieces."""
    need_uring()
    srv = sbtest.start_server(BIN, "--frame", "len32", "--max-msg", "1M")
    try:
        d = uring_json(srv.addr_str, "--frame", "len32", "--size", "100K", "-n", "60", "-c", "2",
                       "--pipeline", "3")
        eq((d["received_total"], d["errors_total"]), (60, 0), "received, errors")
        eq(served(srv), 60, "messages the server served")
    finally:
        srv.kill()


def pow2_at_least(n, lo, hi):
    v = lo
    while v < n and v < hi:
        v <<= 1
    return v


RING_START = 32  # buffers in the client's kernel ring to begin with (bench_uring.c)


def ring_grows():
    """1,000 connections at pipeline 8 on one worker: a turn's receives
    take more buffers than the RING_START the kernel's ring starts with, so
    receives end on an empty ring and the ring must grow; it stays within
    the worker's buffers (two per connection, 32 MiB in all at most, as
    bench_uring_open sizes them), and every reply of -n is checked with no
    error."""
    need_uring()
    conns, pipeline, size = 1000, 8, 64
    srv = sbtest.start_server(BIN, "--frame", "len32")
    try:
        d = uring_json(srv.addr_str, "--frame", "len32", "-n", "40000", "-c", conns,
                       "--pipeline", pipeline, "--size", size)
        eq((d["sent_total"], d["received_total"], d["errors_total"]), (40000, 40000, 0),
           "sent, received, errors")
        bufsz = pow2_at_least((4 + size) * pipeline, 4096, 65536)
        nbufs = pow2_at_least(2 * conns, 64, 32768)
        while nbufs > 64 and nbufs * bufsz > 32 << 20:
            nbufs >>= 1
        if not RING_START < d["client_ring_buffers"] <= nbufs:
            raise AssertionError(f"the ring held at most {d['client_ring_buffers']} buffers, "
                                 f"not more than {RING_START} and at most {nbufs}")
        eq(served(srv), 40000, "messages the server served")
    finally:
        srv.kill()


def threads_duration():
    """--threads 3 over 20 connections for 0.4 s with --marks: the window's
    edges on stderr, every reply checked, the server's count agrees."""
    need_uring()
    srv = sbtest.start_server(BIN, "--frame", "len32")
    try:
        res = bench(srv.addr_str, "--frame", "len32", "-c", "20", "--pipeline", "4", "--threads",
                    "3", "--duration", "0.4", "--warmup", "0.1", "--marks", "--backend", "uring",
                    "--json")
        eq(res.rc, 0, f"exit code ({res!r})")
        d = json.loads(res.out)
        if d["messages"] <= 0 or d["errors_total"]:
            raise AssertionError(f"run: {d}")
        for mark in ("window begins", "window ends"):
            if "switchboard: bench: " + mark not in res.err:
                raise AssertionError(f"no {mark!r} mark: {res.err!r}")
        eq(served(srv), d["received_total"], "served by the server vs checked by bench")
    finally:
        srv.kill()


def rate_exact():
    """--rate 3000 with -n 300 over 6 connections, pipeline 2: exactly 300,
    paced (the run takes about 0.1 s, so well above zero)."""
    need_uring()
    srv = sbtest.start_server(BIN, "--frame", "len32")
    try:
        d = uring_json(srv.addr_str, "--frame", "len32", "--rate", "3000", "-n", "300", "-c", "6",
                       "--pipeline", "2")
        eq((d["received_total"], d["errors_total"]), (300, 0), "received, errors")
        eq(d["latency_from"], "due", "latency basis")
        if d["window_s"] < 0.05:
            raise AssertionError(f"300 messages at 3000/s took {d['window_s']} s: not paced")
        eq(served(srv), 300, "messages the server served")
    finally:
        srv.kill()


# ------------------------------------------------------- corrupting servers

def bad_server(mangle, batch=1):
    """len32 echo that spoils its replies with mangle(list of replies) ->
    list of byte strings to send, per batch of `batch` requests."""
    def serve(c, stop):
        while not stop.is_set():
            msgs = []
            for _ in range(batch):
                hdr = sbtest.recv_exact(c, 4)
                msgs.append(hdr + sbtest.recv_exact(c, struct.unpack(">I", hdr)[0]))
            c.sendall(b"".join(mangle(msgs)))
    return sbtest.TinyServer(serve)


def flip(at):
    def mangle(msgs):
        m = bytearray(msgs[0])
        m[4 + at if at >= 0 else at] ^= 1
        return [bytes(m)] + msgs[1:]
    return mangle


MANGLES = [
    ("the payload's first byte flipped", flip(0), 1, 1),
    ("the payload's last byte flipped", flip(-1), 1, 1),
    ("two replies swapped", lambda ms: ms[::-1], 2, 2),
    ("a reply sent twice", lambda ms: ms + ms, 1, 1),
]


def corrupting(what, mangle, batch, pipeline):
    """Every spoiled reply is caught: mismatch counted, exit 1."""
    need_uring()
    srv = bad_server(mangle, batch)
    try:
        d = uring_json(srv.addr, "--frame", "len32", "-c", "2", "--pipeline", pipeline,
                       "--duration", "0.3", "--warmup", "0", rc=1)
        if d["errors"]["mismatch"] < 1:
            raise AssertionError(f"{what}: no mismatch counted: {d['errors']}")
    finally:
        srv.close()


# ------------------------------------------------------- the loop engine kept

def loop_engine_kept():
    """http:// and --connect-only with --backend uring run on the library
    loop's uring backend, not on the completion engine."""
    need_uring()
    srv = sbtest.start_server(BIN, "--frame", "len32")
    try:
        d = uring_json(srv.addr_str, "--frame", "len32", "--connect-only", "--hold", "0", "-c", "3")
        eq((d["client_backend"], d["received_total"]), ("uring", 3), "engine, replies")
    finally:
        srv.kill()
    with tempfile_dir() as root:
        with open(os.path.join(root, "a.txt"), "w") as f:
            f.write("hello\n")
        srv = sbtest.start_server(BIN, "--app", "http", "--root", root)
        try:
            d = uring_json("http://%s/a.txt" % srv.addr_str, "-n", "50", "-c", "2")
            eq((d["client_backend"], d["received_total"], d["errors_total"]), ("uring", 50, 0),
               "engine, responses, errors")
        finally:
            srv.kill()


def tempfile_dir():
    import tempfile
    return tempfile.TemporaryDirectory(prefix="sb-bench-uring-")


# ------------------------------------------------------- io_uring refused

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
NR_IO_URING_SETUP = {"x86_64": 425, "aarch64": 425}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def deny_io_uring():
    """In the child before exec: io_uring_setup fails with EPERM, as under
    a container's seccomp profile; every other call is allowed."""
    arch = platform.machine()
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    prog = [
        SockFilter(ld_w_abs, 0, 0, 4),                        # A = arch
        SockFilter(jeq_k, 1, 0, AUDIT_ARCH[arch]),            # same arch: go on
        SockFilter(ret_k, 0, 0, 0x7FFF0000),                  # else allow
        SockFilter(ld_w_abs, 0, 0, 0),                        # A = syscall number
        SockFilter(jeq_k, 0, 1, NR_IO_URING_SETUP[arch]),
        SockFilter(ret_k, 0, 0, 0x00050000 | 1),              # ERRNO(EPERM)
        SockFilter(ret_k, 0, 0, 0x7FFF0000),                  # ALLOW
    ]
    arr = (SockFilter * len(prog))(*prog)
    fprog = SockFprog(len(prog), arr)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        os._exit(99)


def refused_at_run_time():
    """A process that may not call io_uring_setup: bench --backend uring
    says io_uring cannot be used and exits 1 (no run on another engine)."""
    need_uring()
    if platform.machine() not in NR_IO_URING_SETUP:
        raise sbtest.SkipCheck("seccomp filter written for x86_64 and aarch64 only")
    srv = sbtest.start_server(BIN, "--frame", "len32")
    try:
        res = bench(srv.addr_str, "--frame", "len32", "-n", "10", "--backend", "uring",
                    preexec_fn=deny_io_uring)
        if res.rc == 99:
            raise sbtest.SkipCheck("cannot install a seccomp filter here")
        eq(res.rc, 1, f"exit code ({res!r})")
        if not re.search(r"switchboard: bench: --backend uring: io_uring cannot be used here: "
                         r"Operation not permitted", res.err):
            raise AssertionError(f"no clear message: {res.err!r}")
        eq(res.out, b"", "no report")
    finally:
        srv.kill()


def main():
    for spec, extra in FRAMINGS:
        for pipe in (1, 8):
            r.check(f"bench --backend uring --frame {spec} --pipeline {pipe}: -n exact, served agrees",
                    framings_exact, spec, extra, str(pipe), limit=30)
    r.check("bench --backend uring: 100 KiB replies span provided buffers", spanning_buffers,
            limit=30)
    r.check("bench --backend uring -c 1000 --pipeline 8: the buffer ring grows, every reply "
            "checked", ring_grows, limit=60)
    r.check("bench --backend uring --threads 3 --marks: replies = served", threads_duration,
            limit=30)
    r.check("bench --backend uring --rate with -n: exact and paced", rate_exact, limit=30)
    for what, mangle, batch, pipe in MANGLES:
        r.check(f"bench --backend uring against a server: {what}: mismatch, exit 1",
                corrupting, what, mangle, batch, str(pipe), limit=30)
    r.check("bench --backend uring: http:// and --connect-only stay on the loop",
            loop_engine_kept, limit=30)
    r.check("bench --backend uring where io_uring_setup is refused: exit 1, said",
            refused_at_run_time, limit=30)
    sys.exit(r.finish())


if __name__ == "__main__":
    main()
