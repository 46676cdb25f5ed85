"""sbtest: shared helpers for the end-to-end tests (tests/e2e_*.py).

Python 3.11 standard library only. Every wait is bounded.

Command line (every e2e test):
    args = sbtest.parse_args()      # --bin PATH --src DIR --build DIR [--only SUBSTR ...] [--skip SUBSTR ...] [--list]

Running checks:
    r = sbtest.Runner("e2e_echo", args)
    r.check("title", fn, *fn_args, limit=60)   # fn raises AssertionError (or anything) to fail;
                                               # a watchdog (SIGALRM) fails it after `limit` s
    sys.exit(r.finish())                       # prints the summary, 0 if all passed

Servers:
    srv = sbtest.start_server(bin, "--model", "event", "--frame", "len32")
        # listens on 127.0.0.1:0 unless a --listen is given; waits (bounded) for the
        # line "switchboard: listening on ADDR" on stderr and parses it.
    srv.addr        (host, port) for TCP, the path for unix:
    srv.addr_str    the address exactly as printed ("127.0.0.1:41234", "[::1]:5", "unix:/p")
    srv.family      socket.AF_INET / AF_INET6 / AF_UNIX
    srv.pid, srv.proc
    srv.connect(timeout=5) -> socket (blocking, with a timeout set)
    srv.fd_count(), srv.children() -> [(pid, state)], srv.zombies(), srv.rss_kib(),
    srv.threads(), srv.cpu_seconds(), srv.stderr_text(), srv.alive(), srv.sanitizer_reports()
    A check fails if a server it started reported a sanitizer error on stderr.
    rc, err = srv.stop(timeout=10)   # SIGTERM, bounded wait; rc None if it had to be killed;
                                      # srv.leftovers: processes of its group still alive after
    srv.kill()                        # SIGKILL the whole process group (finally blocks)
    Every server started is also killed at interpreter exit.

CLI client:
    res = sbtest.run_cli(bin, "send", addr, "--frame", "line", "hi", input=b"", timeout=20)
    res.rc, res.out (bytes), res.err (str); res.rc is None if it hit the timeout (killed).

Framing (pure Python, socket module only, the way the HOWTO reads):
    fr = sbtest.Framing("len32")      # every SPEC: raw line delim:STR fixed:N ascii:N
                                      # len16 len32 len64 varint typed:T=N,... eof
    fr.encode(payload, mtype=None) -> bytes   (typed: mtype is the type byte, int or 1-char str)
    dec = fr.decoder(max_msg=0)
    dec.feed(data); dec.set_eof(); dec.next() -> message or None (needs more bytes)
        message: bytes, or (type:int, payload:bytes) for typed framing
        raises FrameError on malformed input
    sbtest.recv_msgs(sock, dec, count, timeout=5) -> list of messages (keeps leftovers in dec)
    sbtest.recv_exact(sock, n, timeout=5) -> bytes
    sbtest.recv_until_eof(sock, timeout=5, limit=...) -> bytes
    sbtest.expect_closed(sock, timeout=5) -> True if the peer closed/reset within timeout
    sbtest.send_split(sock, data, pieces=..., delay=0.01)   many small sends with sleeps
    sbtest.send_pieces(srv, sock, data, pieces=16, head=0)  many small sends, each read by
                                      the server before the next (no sleeps)
    srv.wait_read(sock) -> True once the server has read what was sent on sock
    sbtest.unsent(sock), sbtest.bytes_acked(sock)   what the peer has not got / has got
    srv.quiet() -> True when every thread of the server and its children sleeps
    sbtest.raise_nofile(n) -> the soft RLIMIT_NOFILE now in force (inherited by servers)
    sbtest.wait_until(pred, timeout, interval=0.05) -> last value of pred() (truthy on success)
"""

import argparse
import atexit
import fcntl
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import traceback

__all__ = [
    "parse_args", "Runner", "start_server", "Server", "run_cli", "CliResult",
    "Framing", "Decoder", "FrameError", "recv_msgs", "recv_exact", "recv_until_eof",
    "expect_closed", "send_split", "send_pieces", "unsent", "bytes_acked", "raise_nofile",
    "wait_until", "proc_children",
    "SkipCheck",
]

LISTEN_RE = re.compile(r"switchboard: listening on (\S+)")


# --------------------------------------------------------------------------
# command line and check runner

def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True, help="path to the switchboard binary")
    p.add_argument("--src", default=".", help="source directory")
    p.add_argument("--build", default=".", help="build directory")
    p.add_argument("--only", action="append", default=[],
                   help="run only checks whose title contains this (repeatable)")
    p.add_argument("--skip", action="append", default=[],
                   help="run no check whose title contains this (repeatable)")
    p.add_argument("--list", action="store_true", help="list check titles, run nothing")
    a = p.parse_args(argv)
    a.bin = os.path.abspath(a.bin)
    return a


class SkipCheck(Exception):
    """Raise from a check to skip it (environment cannot run it)."""


class _Watchdog(Exception):
    pass


def _alarm(signum, frame):
    raise _Watchdog("check exceeded its time limit")


class Runner:
    def __init__(self, name, args):
        self.name = name
        self.args = args
        self.passed = []
        self.failed = []
        self.skipped = []
        self.t0 = time.monotonic()
        signal.signal(signal.SIGALRM, _alarm)

    def selected(self, title):
        if any(s in title for s in self.args.skip):
            return False
        return not self.args.only or any(s in title for s in self.args.only)

    def check(self, title, fn, *a, limit=60, **kw):
        """Run fn(*a, **kw) as one check. Returns True if it passed."""
        if not self.selected(title):
            return None
        if self.args.list:
            print(title)
            return None
        t = time.monotonic()
        print(f"--- {title}", flush=True)
        n_servers = len(_servers)
        signal.alarm(int(limit))
        try:
            fn(*a, **kw)
            # a server started by this check that reported a sanitizer error
            # (perhaps in a forked child) fails the check
            for srv in _servers[n_servers:]:
                rep = srv.sanitizer_reports()
                if rep:
                    raise AssertionError(f"sanitizer report from {srv!r}:\n" + "\n".join(rep))
        except SkipCheck as e:
            signal.alarm(0)
            print(f"SKIP {title}: {e}", flush=True)
            self.skipped.append(title)
            return None
        except BaseException as e:  # noqa: BLE001 - a check may fail any way
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            print(f"FAIL {title} ({time.monotonic() - t:.2f}s): {type(e).__name__}: {e}",
                  flush=True)
            tb = traceback.format_exc().rstrip().splitlines()
            print("     " + "\n     ".join(tb[-8:]), flush=True)
            self.failed.append((title, f"{type(e).__name__}: {e}"))
            return False
        signal.alarm(0)
        print(f"ok   {title} ({time.monotonic() - t:.2f}s)", flush=True)
        self.passed.append(title)
        return True

    def finish(self):
        if self.args.list:
            return 0
        dt = time.monotonic() - self.t0
        print(f"\n{self.name}: {len(self.passed)} passed, {len(self.failed)} failed, "
              f"{len(self.skipped)} skipped in {dt:.1f}s")
        for title, why in self.failed:
            print(f"  FAILED: {title}: {why}")
        return 1 if self.failed else 0


def sanitizers(build_dir):
    """The -fsanitize= list the build under test used ('' for a plain
    build): memory bounds and timeouts differ under sanitizers."""
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("SANITIZE:"):
                    return line.strip().split("=", 1)[1]
    except OSError:
        pass
    return ""


def wait_until(pred, timeout, interval=0.05):
    """Call pred() until it returns a truthy value or timeout seconds pass.
    Returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def raise_nofile(n):
    """Raise this process's soft RLIMIT_NOFILE to min(n, hard). Children
    (servers started afterwards) inherit it. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------
# /proc helpers

def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("latin-1")
    return data[data.rindex(")") + 2:].split()


def _procs_where(field, value):
    """[(pid, state)] of the processes whose /proc/PID/stat field (1 =
    ppid, 2 = pgid) equals value."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fl = _stat_fields(d)
        except (OSError, ValueError):
            continue
        if int(fl[field]) == value:
            out.append((int(d), fl[0]))
    return out


def _tree_states(pid):
    """States of every thread of pid and of its child processes (the fork
    model's connections), from /proc/PID/task/TID/{stat,children}."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out.append(_stat_fields(f"{pid}/task/{tid}")[0])
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = f.read().split()
        except (OSError, IndexError):
            continue
        for kid in kids:
            out += _tree_states(int(kid))
    return out


def unsent(sock):
    """Bytes sent on sock that the peer has not got yet: for TCP not yet
    acknowledged, for a unix socket not yet read (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def bytes_acked(sock):
    """Payload bytes sent on a TCP socket and acknowledged by the peer
    (tcp_info.tcpi_bytes_acked, Linux 4.1+): the peer has them."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("Q", info, 120)[0]


def proc_children(ppid):
    """[(pid, state)] of the processes whose parent is ppid."""
    return _procs_where(1, ppid)


def proc_group(pgid):
    """[(pid, state)] of the processes in process group pgid."""
    return _procs_where(2, pgid)


WINE_SLACK = 8


def _wineserver():
    """The pid of the wineserver of this run's WINEPREFIX."""
    want = "WINEPREFIX=" + os.environ.get("WINEPREFIX", "")
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("wineserver"):
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if want.encode() in f.read().split(b"\0"):
                    return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no wineserver for {want}")


# --------------------------------------------------------------------------
# servers

_servers = []


def _read_shared(f):
    """Everything in f, a file the server writes through the same open
    file description (its stdout or stderr). pread, not seek + read: a seek
    would move the offset the server writes at, and a line it wrote during
    the read would land over an earlier one."""
    out, off = [], 0
    while True:
        chunk = os.pread(f.fileno(), 1 << 20, off)
        if not chunk:
            return b"".join(out)
        out.append(chunk)
        off += len(chunk)


class Server:
    def __init__(self, bin_path, args, preexec_fn=None, listen_timeout=10.0):
        self.args = list(args)
        if "--listen" not in self.args:
            self.args = ["--listen", "127.0.0.1:0"] + self.args
        self.cmd = [bin_path, "serve"] + self.args
        self._err = tempfile.TemporaryFile()
        self._out = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, start_new_session=True,
                                     preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.stopped = False
        self.leftovers = []
        self.tsan = "thread" in sanitizers(os.path.dirname(bin_path))
        _servers.append(self)
        self.addr_str = None
        deadline = time.monotonic() + listen_timeout
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.stderr_text())
            if m:
                self.addr_str = m.group(1)
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.002)
        if self.addr_str is None:
            rc = self.proc.poll()
            self.kill()
            raise AssertionError(
                f"server {' '.join(self.cmd)} did not print its listening line "
                f"(exit {rc}); stderr: {self.stderr_text()!r}")
        self._parse_addr()

    def _parse_addr(self):
        s = self.addr_str
        if s.startswith("unix:"):
            self.family = socket.AF_UNIX
            self.addr = s[5:]
        elif s.startswith("["):
            host, port = s[1:].rsplit("]:", 1)
            self.family = socket.AF_INET6
            self.addr = (host, int(port))
        else:
            host, port = s.rsplit(":", 1)
            self.family = socket.AF_INET
            self.addr = (host, int(port))

    def __repr__(self):
        return f"<server pid {self.pid} {self.addr_str} {' '.join(self.args)}>"

    def connect(self, timeout=5.0, rcvbuf=None):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(timeout)
            s.connect(self.addr)
        except BaseException:
            s.close()
            raise
        return s

    # -- observation
    def alive(self):
        return self.proc.poll() is None

    def stderr_text(self):
        return _read_shared(self._err).decode("utf-8", "replace")

    def stdout_bytes(self):
        return _read_shared(self._out)

    def sanitizer_reports(self):
        """Lines of stderr where a sanitizer reported an error (first 20)."""
        pat = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|WARNING: ThreadSanitizer"
                         r"|runtime error:|SUMMARY: \w+Sanitizer")
        lines = self.stderr_text().splitlines()
        hits = [i for i, ln in enumerate(lines) if pat.search(ln)]
        if not hits:
            return []
        return lines[hits[0]:hits[0] + 20]

    def _proc_pid(self):
        """The process whose threads count: the server's, or with
        SB_WINE=1 (make check-windows) its only child's, the .exe under
        Wine behind build-windows/switchboard-wine."""
        if os.environ.get("SB_WINE") == "1":
            kids = proc_children(self.pid)
            if kids:
                return kids[0][0]
        return self.pid

    def fd_count(self):
        """The server's open descriptors. With SB_WINE=1, the .exe's socket
        handles: Wine keeps each one as a host socket of the wineserver of
        its WINEPREFIX, which this run has to itself, so that count is the
        .exe's sockets plus a constant (the wineserver's pipes, one set per
        Windows thread, are not counted)."""
        if os.environ.get("SB_WINE") == "1":
            d = f"/proc/{_wineserver()}/fd"
            n = 0
            for fd in os.listdir(d):
                try:
                    n += os.readlink(f"{d}/{fd}").startswith("socket:")
                except OSError:
                    pass
            return n
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def settled_fd_count(self, timeout=5.0):
        """The baseline fd count to compare with later. The server prints
        its listening line once its model is set up (a loop's epoll fd,
        eventfd and signal pipe exist), so the count now is the whole of it.
        With SB_WINE=1 the wineserver's sockets also serve Wine's own
        processes (winedevice.exe and the like), which open and close a few
        of theirs now and then: the baseline allows WINE_SLACK of those, far
        below what a leak over thousands of connections shows."""
        if os.environ.get("SB_WINE") == "1":
            return self.fd_count() + WINE_SLACK
        return self.fd_count()

    def children(self):
        return proc_children(self.pid)

    def quiet(self):
        """True when every thread of the server and of its children is
        asleep (state S; a child that has exited, Z, counts as asleep):
        whatever woke it has been handled."""
        return all(st in ("S", "Z") for st in _tree_states(self.pid))

    def wait_read(self, sock, timeout=2.0):
        """Wait (bounded) until the server has read what was sent on sock:
        sock's send queue is empty (the bytes were delivered - a peer's
        wakeup comes before its ACK) and the server is quiet again (it woke,
        read and went back to wait). Returns True, or False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if unsent(sock) == 0 and self.quiet():
                return True
            time.sleep(0.0002)
        return False

    def zombies(self):
        return [c for c in self.children() if c[1] == "Z"]

    def _status(self, key):
        with open(f"/proc/{self._proc_pid()}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def rss_kib(self):
        return self._status("VmRSS")

    def threads(self):
        return self._status("Threads")

    def cpu_seconds(self):
        fl = _stat_fields(self.pid)
        return (int(fl[11]) + int(fl[12])) / os.sysconf("SC_CLK_TCK")

    # -- ending
    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """Send sig (SIGTERM), wait up to timeout. Returns (exit code, stderr);
        exit code None if the server had to be killed."""
        rc = self.proc.poll()
        if rc is None:
            # ThreadSanitizer's runtime defers an async signal that lands
            # outside a blocking call and, rarely, never delivers it (a
            # 20-line sigaction + poll program loses SIGTERM in ~1 of 300
            # starts under -fsanitize=thread, none without). Under TSan only,
            # the signal is sent again if the server is still running after
            # a few seconds; plain and ASan builds get exactly one.
            tries = 3 if self.tsan else 1
            rc = None
            for i in range(tries):
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    pass
                try:
                    rc = self.proc.wait(timeout=timeout / tries)
                    break
                except subprocess.TimeoutExpired:
                    if i + 1 < tries:
                        print(f"     (TSan build: {signal.Signals(sig).name} not acted on "
                              f"in {timeout / tries:.1f}s, sent again)", flush=True)
        # children of the fork model must end with the server (bounded settle)
        def alive_in_group():
            return [p for p in proc_group(self.pid) if p[1] != "Z"]
        wait_until(lambda: not alive_in_group(), 3.0)
        self.leftovers = alive_in_group()
        self.kill()
        return rc, self.stderr_text()

    def kill(self):
        """SIGKILL the server and anything left in its process group."""
        if self.stopped:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.stopped = True
        try:
            self._out.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


def start_server(bin_path, *args, preexec_fn=None, listen_timeout=10.0):
    """Start `switchboard serve ARGS` (on 127.0.0.1:0 unless --listen is in ARGS)."""
    return Server(bin_path, args, preexec_fn=preexec_fn, listen_timeout=listen_timeout)


@atexit.register
def _kill_all():
    for s in _servers:
        s.kill()


# --------------------------------------------------------------------------
# CLI client

class CliResult:
    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err

    def __repr__(self):
        return (f"<{' '.join(self.cmd)}: rc={self.rc} out={self.out[:200]!r} "
                f"err={self.err[:300]!r}>")


class TinyServer:
    """A loopback server on its own thread: handle(conn, stop) per connection,
    each on its own thread, the connection's timeout 0.2 s (a handler may
    change it); stop is set by close(). OSError in a handler ends it."""

    def __init__(self, handle, threaded=True):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.ls.settimeout(0.1)
        self.addr = "127.0.0.1:%d" % self.ls.getsockname()[1]
        self.stop = threading.Event()
        self.handle = handle
        self.threads = []
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.ls.accept()
            except OSError:
                continue
            c.settimeout(0.2)
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, c):
        with c:
            try:
                self.handle(c, self.stop)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.t.join(2)
        for t in self.threads:
            t.join(2)
        self.ls.close()


def has_uring(bin_path):
    """True if the binary has the io_uring backend and the kernel lets it
    run (options are read in order: an unknown backend fails before
    --help, so the probe is a real server start on a free port)."""
    if run_cli(bin_path, "serve", "--backend", "uring", "--help", timeout=10).rc != 0:
        return False
    try:
        with start_server(bin_path, "--backend", "uring"):
            return True
    except Exception:
        return False


def run_cli(bin_path, *args, input=b"", timeout=20.0):
    """Run `switchboard ARGS` with stdin `input`; bounded by timeout (then
    killed, rc None)."""
    cmd = [bin_path] + [str(a) for a in args]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        rc = None
    return CliResult(cmd, rc, out, err.decode("utf-8", "replace"))


# --------------------------------------------------------------------------
# framing

class FrameError(Exception):
    pass


def _unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 == len(s):
            out += c.encode()
            i += 1
            continue
        e = s[i + 1]
        if e == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
            continue
        out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", "0": b"\0"}[e]
        i += 2
    return bytes(out)


def varint_encode(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Framing:
    """A SPEC of HOWTO section 3 (names as in DESIGN.md)."""

    def __init__(self, spec):
        self.spec = spec
        self.kind, _, arg = spec.partition(":")
        self.n = None
        self.delim = None
        self.table = None
        if self.kind == "line":
            self.delim = b"\n"
        elif self.kind == "delim":
            self.delim = _unescape(arg)
        elif self.kind in ("fixed", "ascii"):
            self.n = int(arg)
        elif self.kind == "typed":
            self.table = {}
            for item in arg.split(","):
                t, _, n = item.partition("=")
                tb = int(t, 16) if t.startswith("0x") and len(t) > 1 else ord(t)
                self.table[tb] = int(n)
        elif self.kind not in ("raw", "len16", "len32", "len64", "varint", "eof"):
            raise ValueError(f"unknown spec {spec}")

    @property
    def binary(self):
        return self.kind not in ("line", "delim")

    def encode(self, payload, mtype=None):
        payload = bytes(payload)
        k = self.kind
        if k == "raw" or k == "eof":
            return payload
        if k in ("line", "delim"):
            return payload + self.delim
        if k == "fixed":
            assert len(payload) == self.n, "fixed payload length"
            return payload
        if k == "ascii":
            return b"%0*d" % (self.n, len(payload)) + payload
        if k == "len16":
            return struct.pack("!H", len(payload)) + payload
        if k == "len32":
            return struct.pack("!I", len(payload)) + payload
        if k == "len64":
            return struct.pack("!Q", len(payload)) + payload
        if k == "varint":
            return varint_encode(len(payload)) + payload
        if k == "typed":
            t = ord(mtype) if isinstance(mtype, str) else mtype
            return bytes([t]) + payload
        raise ValueError(k)

    def decoder(self, max_msg=0):
        return Decoder(self, max_msg)


class Decoder:
    """Incremental decoder: feed() any split of the stream, next() cuts one
    whole message off the front and keeps the leftovers."""

    def __init__(self, framing, max_msg=0):
        self.f = framing
        self.max_msg = max_msg
        self.buf = bytearray()
        self.eof = False

    def feed(self, data):
        self.buf += data

    def set_eof(self):
        self.eof = True

    def _take(self, hdr, n):
        if len(self.buf) < hdr + n:
            return None
        if self.max_msg and n > self.max_msg:
            raise FrameError(f"message of {n} bytes over {self.max_msg}")
        msg = bytes(self.buf[hdr:hdr + n])
        del self.buf[:hdr + n]
        return msg

    def next(self):
        f, b = self.f, self.buf
        k = f.kind
        if k == "raw":
            if not b:
                return None
            msg = bytes(b)
            b.clear()
            return msg
        if k == "eof":
            if not self.eof:
                return None
            msg = bytes(b)
            b.clear()
            return msg if msg else None
        if k in ("line", "delim"):
            i = b.find(f.delim)
            if i < 0:
                return None
            msg = bytes(b[:i])
            del b[:i + len(f.delim)]
            if k == "line" and msg.endswith(b"\r"):
                msg = msg[:-1]
            return msg
        if k == "fixed":
            return self._take(0, f.n)
        if k == "ascii":
            if len(b) < f.n:
                return None
            digits = bytes(b[:f.n])
            if not digits.isdigit():
                raise FrameError(f"non-digit length {digits!r}")
            return self._take(f.n, int(digits))
        if k in ("len16", "len32", "len64"):
            hl, fmt = {"len16": (2, "!H"), "len32": (4, "!I"), "len64": (8, "!Q")}[k]
            if len(b) < hl:
                return None
            return self._take(hl, struct.unpack(fmt, b[:hl])[0])
        if k == "varint":
            n = 0
            for i, byte in enumerate(b):
                n |= (byte & 0x7F) << (7 * i)
                if not byte & 0x80:
                    return self._take(i + 1, n)
                if i >= 9:
                    raise FrameError("varint over 64 bits")
            return None
        if k == "typed":
            if not b:
                return None
            t = b[0]
            if t not in f.table:
                raise FrameError(f"unknown type {t:#x}")
            msg = self._take(1, f.table[t])
            return None if msg is None else (t, msg)
        raise ValueError(k)


def recv_msgs(sock, dec, count, timeout=5.0):
    """Receive until dec yields count messages (leftovers stay in dec).
    Raises TimeoutError or ConnectionError (peer closed before count)."""
    msgs = []
    deadline = time.monotonic() + timeout
    while len(msgs) < count:
        m = dec.next()
        if m is not None:
            msgs.append(m)
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"got {len(msgs)} of {count} messages in {timeout}s "
                               f"(buffered {len(dec.buf)} bytes: {bytes(dec.buf[:60])!r})")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            dec.set_eof()
            m = dec.next()
            if m is not None:
                msgs.append(m)
                continue
            raise ConnectionError(f"peer closed after {len(msgs)} of {count} messages "
                                  f"(buffered {len(dec.buf)} bytes)")
        dec.feed(data)
    return msgs


def recv_exact(sock, n, timeout=5.0):
    """Exactly n bytes (the HOWTO's recv loop), or TimeoutError/ConnectionError."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"got {len(buf)} of {n} bytes in {timeout}s")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
        except socket.timeout:
            continue
        if not chunk:
            raise ConnectionError(f"peer closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock, timeout=5.0, limit=64 << 20):
    """Everything until the peer closes (the reply of an eof exchange)."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no EOF within {timeout}s (got {len(buf)} bytes)")
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise AssertionError(f"more than {limit} bytes before EOF")


def expect_closed(sock, timeout=5.0):
    """True if the peer closes (EOF or reset) within timeout; any bytes it
    sends first are read and dropped. False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True


def send_split(sock, data, pieces=None, delay=0.01, max_time=3.0):
    """Send data in many small sends with short sleeps (bounded: the sleep
    shrinks so the whole thing takes at most about max_time)."""
    if pieces is None:
        pieces = min(len(data), 16)
    pieces = max(1, min(pieces, len(data)))
    delay = min(delay, max_time / pieces)
    step = -(-len(data) // pieces)
    for i in range(0, len(data), step):
        sock.sendall(data[i:i + step])
        if delay:
            time.sleep(delay)


def send_pieces(srv, sock, data, pieces=16, head=0):
    """Send data as `head` one-byte sends and then `pieces` chunks, each one
    read by the server before the next is sent (Server.wait_read), so its
    decoder sees every split. Bounded: a piece the server has not read
    within 2 s is followed by the next anyway."""
    cuts = list(range(min(head, len(data))))
    rest = len(data) - len(cuts)
    if rest > 0:
        n = max(1, min(pieces, rest))
        step = -(-rest // n)
        cuts += list(range(len(cuts), len(data), step))
    cuts.append(len(data))
    srv.wait_read(sock)  # the connection accepted (a fork child started) first
    for a, b in zip(cuts, cuts[1:]):
        sock.sendall(data[a:b])
        srv.wait_read(sock)


def readable(sock, timeout):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)
