#!/usr/bin/env python3
"""e2e_get: `switchboard get` with curl's habits, end to end.

Against a Python http.server subclass on 127.0.0.1 port 0 (this file's
Handler): -L through a chain of 301 302 303 307 308 whose Locations are
absolute, absolute-path, relative with dot segments, scheme-relative and
query-only (each hop's method and path checked in the server's log);
exactly 10 redirects followed, an 11th refused with "too many redirects";
a redirect to https refused; -I (HEAD, the head printed, -L with HEAD);
-H (the server echoes the request headers: added, replacing a default,
removed with 'Name:', sent empty with 'Name;', Host dropped when a redirect
changes host); -v (both heads on stderr); -i; -f (nothing printed, exit 1);
-s and -sS; -o (the file, and no file after -f fails); scheme-less URLs;
--max-time and --connect-timeout apart. Then the same habits against
`switchboard serve --app http` where they apply.

Each case runs its own `switchboard get` process; every wait is bounded.
"""

import http.server
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

args = sbtest.parse_args()
R = sbtest.Runner("e2e_get", args)
BIN = args.bin
ERR_RE = re.compile(r"^switchboard: get: .+: .+")


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes:
    /chain/a .. /chain/e   the five redirect statuses, five Location shapes
    /count/N               N more redirects to go, then 200 "arrived"
    /loop                  redirects to itself
    /to-https, /to-other   a Location with https://, one to localhost
    /echo                  the request headers, one "name: value" a line
    /status/N              status N with a short body
    /slow                  answers after 1.5 s
    /overlong              Content-Length 6000, then more bytes before the close
    anything else          200 "hello"
    """

    log = []  # (method, path) of every request, in order
    lock = threading.Lock()

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (--max-time): that is the point

    def redirect(self, status, location):
        self.reply(status, b"moved\n", [("Location", location)])

    def route(self):
        with Handler.lock:
            Handler.log.append((self.command, self.path))
        p = self.path
        port = self.server.server_address[1]
        chain = {
            "/chain/a": (301, f"http://127.0.0.1:{port}/chain/b?x=1"),  # absolute
            "/chain/b?x=1": (302, "/chain/c"),                           # absolute path
            "/chain/c": (303, "./sub/../d"),                             # relative, dot segments
            "/chain/d": (307, f"//127.0.0.1:{port}/chain/e"),            # scheme-relative
            "/chain/e": (308, "?final=1"),                               # query only
        }
        if p in chain:
            return self.redirect(*chain[p])
        if p == "/chain/e?final=1":
            return self.reply(200, b"end of chain\n")
        m = re.fullmatch(r"/count/(\d+)", p)
        if m:
            n = int(m.group(1))
            return self.redirect(302, f"/count/{n - 1}") if n > 0 else self.reply(200, b"arrived\n")
        if p == "/loop":
            return self.redirect(302, "/loop")
        if p == "/to-https":
            return self.redirect(302, f"https://127.0.0.1:{port}/")
        if p == "/to-other":
            return self.redirect(302, f"http://localhost:{port}/echo")
        if p == "/echo":
            body = "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode()
            return self.reply(200, body)
        m = re.fullmatch(r"/status/(\d+)", p)
        if m:
            return self.reply(int(m.group(1)), b"status body\n")
        if p == "/overlong":
            # One write: head and body arrive in one read.
            body = b"hello\n" * 1000
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                             % len(body) + body + b"NOT PART OF THE BODY\n")
            self.close_connection = True
            return None
        if p == "/slow":
            time.sleep(1.5)
            return self.reply(200, b"late\n")
        return self.reply(200, b"hello\n")

    do_GET = route
    do_HEAD = route


class PyServer:
    def __enter__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        with Handler.lock:
            Handler.log.clear()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests(self):
        with Handler.lock:
            return list(Handler.log)


def get(*a, timeout=20):
    res = sbtest.run_cli(BIN, "get", *a, timeout=timeout)
    print(f"     {res}", flush=True)
    return res


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def has_error(res, *words):
    line = res.err.strip().splitlines()[-1] if res.err.strip() else ""
    if not ERR_RE.match(line):
        raise AssertionError(f"stderr not 'switchboard: get: <what>: <why>': {res.err!r}")
    for w in words:
        if w not in line:
            raise AssertionError(f"stderr lacks {w!r}: {res.err!r}")


# --------------------------------------------------------------------------
# against http.server

def chain_followed():
    with PyServer() as s:
        r = get("-L", s.base + "/chain/a")
        eq(r.rc, 0, "exit code")
        eq(r.out, b"end of chain\n", "body")
        eq(s.requests(), [("GET", "/chain/a"), ("GET", "/chain/b?x=1"), ("GET", "/chain/c"),
                          ("GET", "/chain/d"), ("GET", "/chain/e"), ("GET", "/chain/e?final=1")],
           "hops")


def chain_not_followed():
    with PyServer() as s:
        r = get(s.base + "/chain/a")
        eq(r.rc, 0, "exit code (a 301 is an answer)")
        eq(r.out, b"moved\n", "body of the 301")
        eq(len(s.requests()), 1, "requests")


def chain_include():
    """-i -L: every hop's head, then the last body only."""
    with PyServer() as s:
        r = get("-i", "-L", s.base + "/chain/c")
        eq(r.rc, 0, "exit code")
        heads = re.findall(rb"^HTTP/1\.\d (\d+)", r.out, re.M)
        eq(heads, [b"303", b"307", b"308", b"200"], "statuses printed")
        if not r.out.endswith(b"\r\n\r\nend of chain\n") or b"moved" in r.out:
            raise AssertionError(f"bodies: {r.out!r}")


def head_chain():
    """-I -L: HEAD on every hop (301/302/303 keep HEAD), heads only."""
    with PyServer() as s:
        r = get("-I", "-L", s.base + "/chain/a")
        eq(r.rc, 0, "exit code")
        eq([m for m, _ in s.requests()], ["HEAD"] * 6, "methods")
        eq(len(re.findall(rb"^HTTP/1\.\d ", r.out, re.M)), 6, "heads printed")
        if b"end of chain" in r.out or b"moved" in r.out:
            raise AssertionError("a body was printed for HEAD")


def ten_redirects():
    with PyServer() as s:
        r = get("-L", s.base + "/count/10")
        eq(r.rc, 0, "exit code after exactly 10 redirects")
        eq(r.out, b"arrived\n", "body")
        eq(len(s.requests()), 11, "requests")


def too_many():
    with PyServer() as s:
        for path in ("/count/11", "/loop"):
            r = get("-L", s.base + path)
            eq(r.rc, 1, "exit code")
            has_error(r, "too many redirects")
            eq(r.out, b"", "stdout")
        eq(len(s.requests()), 22, "requests: 11 per chain, then it stops")


def tls_built():
    """Whether this build speaks TLS: an https URL to a closed port is
    refused by the network, or by the build."""
    return "not supported by this build" not in get("https://127.0.0.1:1/").err


def content_length_frames_body():
    # The length in the head ends the body, whatever follows before the
    # close (the head's fields must be read before the body moves over it).
    with PyServer() as s:
        r = get(s.base + "/overlong")
        eq(r.rc, 0, "exit code")
        eq(r.out, b"hello\n" * 1000, "body")


def redirect_to_https():
    # The Location names https on the same (plain HTTP) port: a TLS build
    # fails the handshake, a build without TLS says so.
    with PyServer() as s:
        r = get("-L", s.base + "/to-https")
        eq(r.rc, 1, "exit code")
        has_error(r, "TLS handshake" if tls_built() else "https is not supported by this build")


def head_only():
    with PyServer() as s:
        r = get("-I", s.base + "/x")
        eq(r.rc, 0, "exit code")
        if not r.out.startswith(b"HTTP/1.0 200") or not r.out.endswith(b"Content-Length: 6\r\n\r\n"):
            raise AssertionError(f"head: {r.out!r}")
        eq(s.requests(), [("HEAD", "/x")], "request")


def headers_sent():
    with PyServer() as s:
        r = get(s.base + "/echo", "-H", "X-One: 1", "-H", "User-Agent: tester/9", "-H", "Accept:",
                "-H", "X-Empty;", "--header", "x-two:  two words")
        eq(r.rc, 0, "exit code")
        got = r.out.decode()
        for want in ("X-One: 1\n", "User-Agent: tester/9\n", "X-Empty: \n", "x-two: two words\n",
                     f"Host: 127.0.0.1:{s.port}\n", "Connection: close\n"):
            if want not in got:
                raise AssertionError(f"{want!r} not sent: {got!r}")
        if "switchboard/" in got or "Accept:" in got:
            raise AssertionError(f"a replaced or removed default was sent: {got!r}")


def host_header():
    """-H Host replaces the default; after a redirect to another host it
    stays behind (curl's rule) while other -H headers go along."""
    with PyServer() as s:
        r = get(s.base + "/echo", "-H", "Host: example.test")
        eq(r.rc, 0, "exit code")
        if "Host: example.test\n" not in r.out.decode() or r.out.decode().count("Host:") != 1:
            raise AssertionError(f"Host: {r.out!r}")
        r = get("-L", s.base + "/to-other", "-H", "Host: example.test", "-H", "X-Keep: yes")
        eq(r.rc, 0, "exit code")
        got = r.out.decode()
        if f"Host: localhost:{s.port}\n" not in got or "X-Keep: yes\n" not in got:
            raise AssertionError(f"after the redirect: {got!r}")


def verbose():
    with PyServer() as s:
        r = get("-v", s.base + "/x")
        eq(r.rc, 0, "exit code")
        eq(r.out, b"hello\n", "stdout is the body only")
        for want in ("> GET /x HTTP/1.1\n", f"> Host: 127.0.0.1:{s.port}\n", "< HTTP/1.0 200 OK\n",
                     "< Content-Length: 6\n"):
            if want not in r.err:
                raise AssertionError(f"{want!r} not on stderr: {r.err!r}")


def fail_flag():
    with PyServer() as s:
        r = get(s.base + "/status/404")
        eq((r.rc, r.out, r.err), (0, b"status body\n", ""), "without -f a 404 is an answer")
        r = get("-f", s.base + "/status/404")
        eq(r.rc, 1, "exit code")
        eq(r.out, b"", "stdout")
        has_error(r, "HTTP 404")
        r = get("-f", "-i", s.base + "/status/500")
        eq((r.rc, r.out), (1, b""), "-f -i on 500")
        r = get("-f", s.base + "/status/399")
        eq((r.rc, r.out), (0, b"status body\n"), "-f below 400")


def silent():
    port = free_port()
    r = get("-s", f"127.0.0.1:{port}/")
    eq((r.rc, r.out, r.err), (1, b"", ""), "-s: nothing said")
    r = get("-sS", f"127.0.0.1:{port}/")
    eq(r.rc, 1, "exit code")
    has_error(r, "connection refused")
    with PyServer() as s:
        r = get("-sf", s.base + "/status/404")
        eq((r.rc, r.out, r.err), (1, b"", ""), "-sf")


def output_file():
    top = tempfile.mkdtemp(prefix="sb-get-")
    try:
        with PyServer() as s:
            out = os.path.join(top, "o")
            r = get("-o", out, "-i", s.base + "/x")
            eq((r.rc, r.out), (0, b""), "-o: nothing on stdout")
            data = open(out, "rb").read()
            if not data.startswith(b"HTTP/1.0 200") or not data.endswith(b"\r\n\r\nhello\n"):
                raise AssertionError(f"file: {data!r}")
            gone = os.path.join(top, "never")
            r = get("-f", "-o", gone, s.base + "/status/404")
            eq(r.rc, 1, "exit code")
            if os.path.exists(gone):
                raise AssertionError("-f failure left a file")
            r = get("-o", os.path.join(top, "no", "such", "dir"), s.base + "/x")
            eq(r.rc, 1, "exit code, unwritable -o")
            has_error(r, "No such file or directory")
    finally:
        shutil.rmtree(top, ignore_errors=True)


def scheme_less():
    with PyServer() as s:
        r = get(f"127.0.0.1:{s.port}/x?q=1#frag")
        eq((r.rc, r.out), (0, b"hello\n"), "scheme-less")
        eq(s.requests(), [("GET", "/x?q=1")], "target sent, fragment not")


def max_time():
    with PyServer() as s:
        t = time.monotonic()
        r = get("--max-time", "0.5", s.base + "/slow")
        dt = time.monotonic() - t
        eq(r.rc, 1, "exit code")
        has_error(r, "timed out")
        if dt > 1.2:
            raise AssertionError(f"--max-time 0.5 took {dt:.1f}s")
        # a connect timeout does not bound the transfer after the connect
        r = get("--connect-timeout", "0.5", s.base + "/slow")
        eq((r.rc, r.out), (0, b"late\n"), "--connect-timeout leaves the answer alone")


def connect_timeout():
    """A listener whose accept queue is full: Linux drops further SYNs, so
    a connect hangs until --connect-timeout says stop."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    fillers = []
    try:
        port = ls.getsockname()[1]
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            raise sbtest.SkipCheck("this kernel completes connects past a full backlog")
        except socket.timeout:
            pass
        finally:
            probe.close()
        t = time.monotonic()
        r = get("--connect-timeout", "0.3", f"127.0.0.1:{port}/")
        dt = time.monotonic() - t
        eq(r.rc, 1, "exit code")
        has_error(r, "connect", "timed out")
        if dt > 3:
            raise AssertionError(f"--connect-timeout 0.3 took {dt:.1f}s")
    finally:
        for c in fillers:
            c.close()
        ls.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def usage_errors():
    for a in (["-H", "no colon", "127.0.0.1:1/"], ["-H", "Bad Name: v", "127.0.0.1:1/"],
              ["--max-time", "soon", "127.0.0.1:1/"], ["--connect-timeout", "-1", "127.0.0.1:1/"],
              ["http://h:99999/"], ["ftp://x/"], ["http://h/a b"], [], ["a", "b"], ["--bogus", "x"]):
        r = get(*a)
        eq(r.rc, 2, f"exit code of {a}")
        if not re.match(r"^switchboard: get: .+: .+", r.err):
            raise AssertionError(f"message: {r.err!r}")
    r = get("https://127.0.0.1:1/")
    eq(r.rc, 1, "https exit code")
    has_error(r, "connection refused" if tls_built() else "https is not supported by this build")


# --------------------------------------------------------------------------
# against switchboard serve --app http

def ours(root):
    srv = sbtest.start_server(BIN, "--app", "http", "--root", root)
    try:
        r = get(f"{srv.addr_str}/sub")
        eq(r.rc, 0, "exit code of the 301")
        r = get("-L", f"{srv.addr_str}/sub")
        eq((r.rc, r.out), (0, b"index of sub\n"), "-L to the directory")
        r = get("-I", f"http://{srv.addr_str}/a.txt")
        eq(r.rc, 0, "exit code")
        if not r.out.startswith(b"HTTP/1.1 200") or b"Content-Length: 6\r\n" not in r.out:
            raise AssertionError(f"head: {r.out!r}")
        if not r.out.endswith(b"\r\n\r\n"):
            raise AssertionError("a body after the HEAD answer")
        r = get("-f", f"{srv.addr_str}/nope")
        eq((r.rc, r.out), (1, b""), "-f on 404")
        has_error(r, "HTTP 404")
        r = get("-v", "-H", "Connection: keep-alive", f"{srv.addr_str}/a.txt")
        eq((r.rc, r.out), (0, b"hello\n"), "keep-alive asked, body by length")
        if "> Connection: keep-alive\n" not in r.err or "< HTTP/1.1 200 OK\n" not in r.err:
            raise AssertionError(f"verbose: {r.err!r}")
    finally:
        srv.kill()


def main():
    top = tempfile.mkdtemp(prefix="sb-get-root-")
    try:
        os.mkdir(os.path.join(top, "sub"))
        with open(os.path.join(top, "a.txt"), "wb") as f:
            f.write(b"hello\n")
        with open(os.path.join(top, "sub", "index.html"), "wb") as f:
            f.write(b"index of sub\n")
        R.check("-L follows 301 302 303 307 308 with every Location shape", chain_followed)
        R.check("without -L a redirect is the answer", chain_not_followed)
        R.check("-i -L prints every head and the last body", chain_include)
        R.check("-I -L: HEAD on every hop", head_chain)
        R.check("-L follows exactly 10 redirects", ten_redirects)
        R.check("-L: an 11th redirect or a loop is 'too many redirects'", too_many)
        R.check("-L to https: a plain port fails the handshake", redirect_to_https)
        R.check("Content-Length ends the body, not the close", content_length_frames_body)
        R.check("-I sends HEAD and prints the head", head_only)
        R.check("-H adds, replaces, removes, sends empty", headers_sent)
        R.check("-H Host, and across a redirect to another host", host_header)
        R.check("-v prints both heads on stderr", verbose)
        R.check("-f: nothing printed on a status >= 400, exit 1", fail_flag)
        R.check("-s and -sS", silent)
        R.check("-o FILE", output_file)
        R.check("scheme-less URL", scheme_less)
        R.check("--max-time apart from --connect-timeout", max_time)
        R.check("--connect-timeout on a connect that never completes", connect_timeout)
        R.check("usage errors exit 2, https 1", usage_errors)
        R.check("against switchboard serve --app http", ours, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    sys.exit(R.finish())


if __name__ == "__main__":
    main()
