#!/usr/bin/env python3
"""e2e_cli: the command's contract, the same for every subcommand.

- `-h` and `--help`, at the top and on serve, send, get and bench: exit 0,
  the usage on stdout, nothing on stderr.
- A usage error (unknown option, missing or unparsable value, an ADDR or URL
  that does not parse, options that cannot go together) exits 2 with one
  line `switchboard: <subcommand>: <what>: <why>`.
- A runtime failure (address in use, connection refused, a --root that is
  not there) exits 1 with a line of the same form, naming what failed and
  why (the path and the system's reason for --root).
- `serve --backend uring` where io_uring is forbidden (a seccomp filter that
  refuses io_uring_setup, as a container's default profile does) exits 1
  naming the reason and the default backend, which still serves there.

Each case is its own process, bounded in time; nothing but loopback.
"""

import ctypes
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

args = sbtest.parse_args()
R = sbtest.Runner("e2e_cli", args)
BIN = args.bin
MSG_RE = re.compile(r"^switchboard: (serve|send|get|bench): .+: .+")


def run(*a):
    res = sbtest.run_cli(BIN, *a, timeout=15)
    print(f"     {res}", flush=True)
    return res


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def one_message(res, sub, *words):
    lines = res.err.strip().splitlines()
    if len(lines) != 1:
        raise AssertionError(f"want one line on stderr, got {res.err!r}")
    m = MSG_RE.match(lines[0])
    if not m or m.group(1) != sub:
        raise AssertionError(f"not 'switchboard: {sub}: <what>: <why>': {lines[0]!r}")
    for w in words:
        if w not in lines[0]:
            raise AssertionError(f"{w!r} not in {lines[0]!r}")


def help_ok(argv):
    def f():
        res = run(*argv)
        if res.rc != 0:
            raise AssertionError(f"exit code {res.rc}")
        if not res.out.startswith(b"usage: switchboard"):
            raise AssertionError(f"no usage on stdout: {res.out[:80]!r}")
        if res.err:
            raise AssertionError(f"stderr: {res.err!r}")
    return f


def fails(rc, sub, argv, *words):
    def f():
        res = run(sub, *argv)
        if res.rc != rc:
            raise AssertionError(f"exit code {res.rc}, want {rc}")
        one_message(res, sub, *words)
        if rc == 2 and res.out:  # (bench reports what it measured even on failure)
            raise AssertionError(f"stdout: {res.out!r}")
    return f


def version():
    for flag in ("--version", "-V"):
        res = run(flag)
        if res.rc != 0 or not re.match(rb"^switchboard \d+\.\d+\.\d+\n$", res.out):
            raise AssertionError(f"{flag}: {res}")


def unknown_command():
    res = run("bogus")
    if res.rc != 2 or not re.match(r"^switchboard: bogus: .+", res.err):
        raise AssertionError(f"{res}")
    res = run()
    if res.rc != 2 or b"usage" in res.out or "usage: switchboard" not in res.err:
        raise AssertionError(f"no command: usage on stderr, exit 2: {res}")


def addr_in_use():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    try:
        addr = f"127.0.0.1:{ls.getsockname()[1]}"
        fails(1, "serve", ["--listen", addr], addr, "in use")()
    finally:
        ls.close()


def root_errors():
    fails(1, "serve", ["--listen", "127.0.0.1:0", "--app", "http", "--root", "/nonexistent"],
          "--root", "/nonexistent", "No such file or directory")()
    with tempfile.NamedTemporaryFile(prefix="sb-cli-") as f:
        fails(1, "serve", ["--listen", "127.0.0.1:0", "--app", "http", "--root", f.name],
              "--root", f.name, "Not a directory")()


FRAMINGS = "raw, line, delim:STR"
USAGE = {
    "serve": [
        (["--listen", "nonsense"], "--listen", "nonsense"),
        (["--listen", "127.0.0.1:99999"], "--listen"),
        (["--listen"], "--listen", "missing value"),
        (["--frame", "bogus"], "--frame", "'bogus' is not a framing", FRAMINGS),
        (["--frame", "fixed:0"], "--frame", "fixed:N"),
        (["--model", "bogus"], "--model", "bogus"),
        (["--backend", "bogus"], "--backend", "bogus"),
        (["--app", "bogus"], "--app", "bogus"),
        (["--app", "chat", "--model", "fork"], "chat"),
        (["--max-conns", "x"], "--max-conns", "'x'"),
        (["--max-msg", "1Q"], "--max-msg", "'1Q'"),
        (["--bogus"], "--bogus", "unknown option"),
        (["extra"], "extra"),
    ],
    "send": [
        (["nonsense", "x"], "nonsense"),
        (["127.0.0.1:99999", "x"], "127.0.0.1:99999"),
        ([], "ADDR", "missing"),
        (["127.0.0.1:9", "--frame", "bogus", "x"], "--frame", "'bogus' is not a framing", FRAMINGS),
        (["127.0.0.1:9", "--timeout", "x", "x"], "--timeout", "'x'"),
        (["127.0.0.1:9", "--type", "toolong", "x"], "--type", "toolong"),
        (["127.0.0.1:9", "--bogus"], "--bogus", "unknown option"),
    ],
    "get": [
        (["http://h:99999/"], "http://h:99999/", "port"),
        (["ftp://x/"], "ftp://x/"),
        ([], "URL", "missing"),
        (["--max-time", "x", "h/"], "--max-time", "'x'"),
        (["--connect-timeout", "0", "h/"], "--connect-timeout", "'0'"),
        (["-H", "no colon", "h/"], "-H", "no colon"),
        (["--bogus", "h/"], "--bogus", "unknown option"),
    ],
    "bench": [
        (["nonsense"], "nonsense"),
        (["127.0.0.1:9", "--conns", "x"], "--conns", "'x'"),
        (["127.0.0.1:9", "--duration"], "--duration", "missing value"),
        (["127.0.0.1:9", "--bogus"], "--bogus", "unknown option"),
        (["127.0.0.1:9", "--frame", "bogus"], "bogus"),
    ],
}


def forbid_io_uring():
    """preexec_fn: a seccomp filter that fails io_uring_setup (syscall 425
    on every architecture) with EPERM, the way a container's default
    profile does, and allows everything else."""
    libc = ctypes.CDLL(None, use_errno=True)
    insns = [(0x20, 0, 0, 0),             # ld [0]: the syscall number
             (0x15, 0, 1, 425),           # jeq io_uring_setup
             (0x06, 0, 0, 0x00050000 | 1),  # ret ERRNO(EPERM)
             (0x06, 0, 0, 0x7FFF0000)]    # ret ALLOW
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Prog(len(insns), ctypes.addressof(code))
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp")


def uring_forbidden():
    if not sbtest.has_uring(BIN):
        raise sbtest.SkipCheck("no io_uring backend here, nothing to forbid")
    cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--backend", "uring"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=15,
                       preexec_fn=forbid_io_uring)
    err = p.stderr.decode()
    print(f"     rc={p.returncode} err={err!r}", flush=True)
    if p.returncode != 1 or not MSG_RE.match(err):
        raise AssertionError(f"want exit 1 and one switchboard: line, got {p.returncode}: {err!r}")
    for word in ("--backend", "uring is unavailable", "seccomp", "the default backend, epoll"):
        if word not in err:
            raise AssertionError(f"{word!r} missing from {err!r}")
    # The default backend serves under the same filter.
    with sbtest.start_server(BIN, preexec_fn=forbid_io_uring) as srv:
        with srv.connect() as s:
            s.sendall(b"still here\n")
            got = sbtest.recv_msgs(s, sbtest.Framing("line").decoder(), 1, 5)
            if got != [b"still here"]:
                raise AssertionError(f"echo under the filter: {got!r}")


def main():
    for argv in (["-h"], ["--help"]):
        R.check(f"switchboard {argv[0]}", help_ok(argv))
    for sub in ("serve", "send", "get", "bench"):
        for flag in ("-h", "--help"):
            R.check(f"{sub} {flag}", help_ok([sub, flag]))
    R.check("--version, -V", version)
    R.check("unknown command, no command: exit 2", unknown_command)
    for sub, cases in USAGE.items():
        for argv, *words in cases:
            R.check(f"usage error exits 2: {sub} {' '.join(argv)}", fails(2, sub, argv, *words))
    R.check("runtime: serve on an address in use exits 1", addr_in_use)
    R.check("runtime: serve --root missing or not a directory exits 1, names path and reason",
            root_errors)
    port = closed_port()
    R.check("runtime: send to a closed port exits 1",
            fails(1, "send", [f"127.0.0.1:{port}", "hi"], f"127.0.0.1:{port}", "connection refused"))
    R.check("runtime: get from a closed port exits 1",
            fails(1, "get", [f"127.0.0.1:{port}/"], "connection refused"))
    # A TLS build reaches the network (refused); one without TLS says so.
    R.check("runtime: get https:// exits 1",
            fails(1, "get", ["https://127.0.0.1:1/"], "https://127.0.0.1:1/"))
    R.check("runtime: serve --backend uring where io_uring is forbidden exits 1, names why "
            "and the default backend, which serves", uring_forbidden)
    R.check("runtime: bench a closed port exits 1",
            fails(1, "bench", [f"127.0.0.1:{port}", "--duration", "0.2", "--warmup", "0"],
                  f"127.0.0.1:{port}"))
    sys.exit(R.finish())


if __name__ == "__main__":
    main()
