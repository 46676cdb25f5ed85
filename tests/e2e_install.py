"""e2e_install: install in the normal order of steps and use what was installed.

The build directory under test was configured and built first, with its own
install prefix (/usr/local by default). This test then installs it into a
fresh prefix, as `make install PREFIX=P` does (cmake --install BUILD --prefix P),
and checks that the installed files serve a user of that prefix:

  - switchboard.pc names P, and examples/ builds with
    `pkg-config --cflags --libs switchboard` through PKG_CONFIG_PATH alone
    (the .pc exactly as installed, no --define-variable);
  - examples/ builds with CMake: find_package(switchboard CONFIG) through
    CMAKE_PREFIX_PATH, linking switchboard::switchboard (shared) and
    switchboard::switchboard_static;
  - the programs built both ways talk to each other;
  - one version everywhere: project(VERSION) in CMakeLists.txt is what
    `switchboard --version`, the .pc, the soname and SB_VERSION_STRING say;
  - the man pages, the bash completion and the license are where they belong;
  - `make uninstall` (the build's uninstall target) leaves P empty;
  - a packager's DESTDIR install writes a .pc for the real prefix, and
    uninstalls the same way.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

args = sbtest.parse_args()
failures = 0


def check(cond, what, detail=""):
    global failures
    if cond:
        print("ok:", what)
    else:
        failures += 1
        print("FAIL:", what, ("- " + detail) if detail else "")
    return cond


def run(cmd, env=None, cwd=None, timeout=120):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        print("$ " + " ".join(cmd))
        print(r.stdout[-3000:], r.stderr[-3000:])
    return r


def files_under(root):
    out = []
    for d, dirs, files in os.walk(root):
        out += [os.path.join(d, f) for f in files]
        out += [os.path.join(d, x) for x in dirs if os.path.islink(os.path.join(d, x))]
    return sorted(out)


def cache_value(name):
    with open(os.path.join(args.build, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.strip().split("=", 1)[1]
    return ""


def find_libdir(prefix):
    for d in ("lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"):
        if os.path.exists(os.path.join(prefix, d, "pkgconfig", "switchboard.pc")):
            return os.path.join(prefix, d)
    return None


def echo_pair(server, client, env, what):
    """server listens on an ephemeral port; client sends two lines."""
    if not check(os.path.exists(server) and os.path.exists(client), what + ": both programs built"):
        return
    p = subprocess.Popen([server, "127.0.0.1:0", "event"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not check(m is not None, what + ": server announces its address", p.stderr.read() if not m else ""):
            return
        r = subprocess.run([client, m.group(1), "hello", "prefix"], capture_output=True, text=True,
                           env=env, timeout=20)
        check(r.returncode == 0 and r.stdout == "hello\nprefix\n", what + ": echoes",
              "rc %s out %r err %r" % (r.returncode, r.stdout, r.stderr))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


project = open(os.path.join(args.src, "CMakeLists.txt")).read()
m = re.search(r"project\(switchboard\s+VERSION\s+([0-9]+)\.([0-9]+)\.([0-9]+)", project)
check(m is not None, "CMakeLists.txt: project(switchboard VERSION X.Y.Z)")
version = ".".join(m.groups())
soversion = m.group(1) + "." + m.group(2) if m.group(1) == "0" else m.group(1)

# A sanitizer build's library needs the same runtime in every program linked to it.
san = sbtest.sanitizers(args.build)
san_flags = ["-fsanitize=" + san] if san else []
cc = os.environ.get("CC", "cc")
configured = cache_value("CMAKE_INSTALL_PREFIX")

with tempfile.TemporaryDirectory(prefix="sb-install-") as tmp:
    prefix = os.path.join(tmp, "prefix")
    os.mkdir(prefix)
    check(configured and configured != prefix,
          "the build was configured for another prefix (%s) before this install" % configured)
    r = run(["cmake", "--install", args.build, "--prefix", prefix])
    check(r.returncode == 0, "cmake --install BUILD --prefix P (what make install PREFIX=P runs)")
    libdir = find_libdir(prefix)
    if not check(libdir is not None, "switchboard.pc installed under P/lib*/pkgconfig"):
        sys.exit(1)

    # The .pc as installed.
    pc = open(os.path.join(libdir, "pkgconfig", "switchboard.pc")).read()
    check(re.search(r"^prefix=%s$" % re.escape(prefix), pc, re.M) is not None,
          "switchboard.pc says prefix=P", pc)
    check(re.search(r"^Version: %s$" % re.escape(version), pc, re.M) is not None,
          "switchboard.pc says Version: %s" % version)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
    env.pop("PKG_CONFIG_LIBDIR", None)
    flags = run(["pkg-config", "--cflags", "--libs", "switchboard"], env=env).stdout.split()
    check("-I" + os.path.join(prefix, "include") in flags and "-L" + libdir in flags,
          "pkg-config gives P's include and library directories", " ".join(flags))
    pc_libdir = run(["pkg-config", "--variable=libdir", "switchboard"], env=env).stdout.strip()
    check(pc_libdir == libdir, "pkg-config --variable=libdir is P's", pc_libdir)

    # examples/ with pkg-config: the README's command line, plus an rpath
    # so that the program finds the library of a non-system prefix.
    exe = {}
    for name in ("echo_server", "echo_client"):
        out = os.path.join(tmp, "pc_" + name)
        r = run([cc, "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", os.path.join(args.src, "examples", name + ".c"),
                 "-o", out] + flags + san_flags + ["-Wl,-rpath," + pc_libdir], env=env)
        check(r.returncode == 0, "examples/%s.c builds with pkg-config" % name)
        exe[name] = out
    ldd = run(["ldd", exe["echo_client"]]).stdout
    check(os.path.join(libdir, "libswitchboard.so." + soversion) in ldd,
          "the pkg-config build runs against P's libswitchboard.so.%s" % soversion, ldd)

    # examples/ with CMake, shared and static.
    for kind, extra in (("shared", []), ("static", ["-DSB_STATIC=ON"])):
        bdir = os.path.join(tmp, "cmake-" + kind)
        r = run(["cmake", "-S", os.path.join(args.src, "examples"), "-B", bdir,
                 "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                 "-DCMAKE_EXE_LINKER_FLAGS=" + " ".join(san_flags)] + extra)
        check(r.returncode == 0, "examples/CMakeLists.txt configures: find_package(switchboard CONFIG), %s" % kind)
        r = run(["cmake", "--build", bdir, "-j", "2"])
        check(r.returncode == 0, "examples build with CMake against switchboard::switchboard%s"
              % ("_static" if kind == "static" else ""))
        exe["cmake_" + kind] = os.path.join(bdir, "echo_client")
    ldd = run(["ldd", exe["cmake_static"]]).stdout
    check("libswitchboard" not in ldd, "switchboard::switchboard_static links the static library")

    # Both builds against one another: pkg-config's server, CMake's clients.
    echo_pair(exe["echo_server"], exe["echo_client"], env, "pkg-config server and client")
    echo_pair(exe["echo_server"], exe["cmake_shared"], env, "CMake client (shared)")
    echo_pair(exe["echo_server"], exe["cmake_static"], env, "CMake client (static)")

    # One version everywhere.
    r = run([os.path.join(prefix, "bin", "switchboard"), "--version"])
    check(r.stdout.strip() == "switchboard " + version, "installed switchboard --version says " + version,
          r.stdout)
    soname = run(["readelf", "-d", os.path.join(libdir, "libswitchboard.so")]).stdout
    check("[libswitchboard.so.%s]" % soversion in soname, "soname libswitchboard.so.%s" % soversion)
    vh = open(os.path.join(prefix, "include", "switchboard", "version.h")).read()
    check('#define SB_VERSION_STRING "%s"' % version in vh, "installed version.h says " + version)

    # Manual pages, completion, license.
    for rel in ("share/man/man1/switchboard.1", "share/man/man3/libswitchboard.3",
                "share/bash-completion/completions/switchboard", "share/doc/switchboard/LICENSE",
                "share/doc/switchboard/CHANGELOG.md", "lib/cmake/switchboard/switchboardConfigVersion.cmake"):
        p = os.path.join(prefix, rel)
        check(os.path.isfile(p) and os.path.getsize(p) > 0, rel + " installed")

    # make uninstall: nothing of ours left in P.
    r = run(["cmake", "--build", args.build, "--target", "uninstall"])
    check(r.returncode == 0, "make uninstall (the uninstall target) succeeds")
    left = files_under(prefix)
    check(left == [], "after uninstall P holds no files", " ".join(left[:10]))
    left = os.listdir(prefix)
    check(left == [], "after uninstall P holds no directories we created", " ".join(left))

    # A packager's install: DESTDIR plus the real prefix.
    dest = os.path.join(tmp, "destdir")
    r = run(["cmake", "--install", args.build, "--prefix", "/usr"], env=dict(os.environ, DESTDIR=dest))
    check(r.returncode == 0, "DESTDIR=D cmake --install --prefix /usr")
    pcs = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs if f == "switchboard.pc"]
    check(len(pcs) == 1 and re.search(r"^prefix=/usr$", open(pcs[0]).read(), re.M),
          "under DESTDIR the .pc says prefix=/usr")
    r = run(["cmake", "--build", args.build, "--target", "uninstall"], env=dict(os.environ, DESTDIR=dest))
    left = files_under(dest)
    check(r.returncode == 0 and left == [], "DESTDIR uninstall removes every file", " ".join(left[:10]))


def make_run_quiet():
    """`make run` on a built tree: the server's lines and make's one hint,
    none of the build's or make's own."""
    # As from a shell: not a sub-make of `make check` (a sub-make prints its
    # directory whatever the Makefile says).
    shell_env = {k: v for k, v in os.environ.items()
                 if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    cmd = ["make", "run", "BUILD=" + os.path.abspath(args.build), "ARGS=--listen 127.0.0.1:0"]
    p = subprocess.Popen(cmd, cwd=args.src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True, env=shell_env)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if "listening on" in line or len(lines) > 20:
                break
        listening = bool(lines) and "listening on" in lines[-1]
        if listening:
            # One echo first: the server prints its address before its loop
            # (and its signal handling) runs, and Ctrl-C is for a server
            # that is serving.
            host, port = lines[-1].split()[-1].rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=20) as c:
                c.sendall(b"ping\n")
                listening = sbtest.recv_exact(c, 5, timeout=20) == b"ping\n"
        # Ctrl-C, as from the terminal: to make and the server alike.
        os.killpg(p.pid, signal.SIGINT)
        lines += p.communicate(timeout=20)[0].splitlines()
    except subprocess.TimeoutExpired:
        listening = False
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    check(listening and all(l.startswith("switchboard: ") for l in lines),
          "make run shows only the server's lines, through Ctrl-C (%d)" % len(lines), "\n".join(lines))


make_run_quiet()

if failures:
    print("e2e_install: %d failed" % failures)
    sys.exit(1)
print("e2e_install: all checks passed")
