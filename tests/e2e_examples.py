"""e2e_examples: install the library into a temporary prefix, build the
programs in examples/ against it with pkg-config (as a user would), and run
them: echo_server under each model and event_echo, talked to by
echo_client."""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bin")
ap.add_argument("--src")
ap.add_argument("--build")
args = ap.parse_args()


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def start(cmd, env):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        p.kill()
        print(p.stderr.read())
    check(m is not None, "%s announces its address" % os.path.basename(cmd[0]))
    return p, m.group(1)


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        return -1


with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "prefix")
    subprocess.run(["cmake", "--install", args.build, "--prefix", prefix], check=True,
                   stdout=subprocess.DEVNULL)
    env = dict(os.environ)
    libdir = [d for d in ("lib", "lib64", "lib/x86_64-linux-gnu") if
              os.path.exists(os.path.join(prefix, d, "pkgconfig", "switchboard.pc"))]
    check(libdir, "switchboard.pc installed")
    libdir = os.path.join(prefix, libdir[0])
    env["PKG_CONFIG_PATH"] = os.path.join(libdir, "pkgconfig")
    env.pop("PKG_CONFIG_LIBDIR", None)
    # The .pc exactly as installed: it names the prefix it was installed into.
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "switchboard"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    check(any(f.startswith("-l") for f in flags), "pkg-config gives link flags")
    check("-I" + os.path.join(prefix, "include") in flags, "pkg-config gives the installed include directory")
    # A sanitizer build's library needs the same runtime at link time.
    san = sbtest.sanitizers(args.build)
    if san:
        flags.append("-fsanitize=" + san)
    exe = {}
    for name in ("echo_server", "echo_client", "event_echo"):
        out = os.path.join(tmp, name)
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", os.path.join(args.src, "examples", name + ".c"),
                        "-o", out] + flags + ["-Wl,-rpath," + libdir], check=True)
        exe[name] = out
    check(True, "examples compile against the installed headers and library")
    # Every C snippet of docs/howto.md compiles against the installed headers,
    # so the guide cannot drift from the API unnoticed.
    howto = open(os.path.join(args.src, "docs", "howto.md")).read()
    snippets = re.findall(r"```c\n(.*?)```", howto, re.S)
    cflags = [f for f in flags if f.startswith("-I")]
    for i, code in enumerate(snippets):
        path = os.path.join(tmp, "howto_%d.c" % i)
        with open(path, "w") as f:
            f.write(code)
        r = subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Werror",
                            "-fsyntax-only", path] + cflags, capture_output=True, text=True)
        check(r.returncode == 0, "docs/howto.md snippet %d compiles%s" % (i + 1, ": " + r.stderr[:400] if r.returncode else ""))
    check(len(snippets) >= 16, "docs/howto.md has its %d snippets" % len(snippets))

    for model in ("event", "threads", "fork"):
        p, addr = start([exe["echo_server"], "127.0.0.1:0", model], env)
        r = subprocess.run([exe["echo_client"], addr, "hello", "switchboard"], capture_output=True,
                           text=True, timeout=20)
        check(r.returncode == 0 and r.stdout == "hello\nswitchboard\n", "echo_server %s echoes" % model)
        check(stop(p) == 0, "echo_server %s stops cleanly on SIGTERM" % model)

    for backend in ("epoll", "poll", "select"):
        p, addr = start([exe["event_echo"], "127.0.0.1:0", backend, "30"], env)
        r = subprocess.run([exe["echo_client"], addr, "one", "two", "three"],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 0 and r.stdout == "one\ntwo\nthree\n", "event_echo %s echoes" % backend)
        check(stop(p) == 0, "event_echo %s stops on SIGTERM" % backend)
    # Under valgrind (where installed, and not in a sanitizer build), the
    # event example stopped with a client still connected ends clean: the
    # connections are reached through sb_conn_walk and closed, none leaks.
    if shutil.which("valgrind") and not san:
        vg = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
              "--error-exitcode=99", "-q"]
        p, addr = start(vg + [exe["event_echo"], "127.0.0.1:0", "epoll", "60"], env)
        host, port = addr.rsplit(":", 1)
        held = socket.create_connection((host, int(port)), timeout=20)
        held.sendall(b"held\n")
        held.settimeout(20)
        got = held.recv(64)
        rc = stop(p)
        held.close()
        err = p.stderr.read()
        check(got == b"held\n" and rc == 0,
              "event_echo stopped with a client connected: valgrind finds no leak%s" %
              ("" if rc == 0 else " (exit %d): %s" % (rc, err[-800:])))
    else:
        print("skip: valgrind check of event_echo (valgrind missing or sanitizer build)")
print("all example checks passed")
