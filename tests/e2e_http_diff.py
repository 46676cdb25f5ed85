#!/usr/bin/env python3
"""e2e_http_diff: a differential test of `serve --app http` against nginx.

Every request shape in tests/http_cases/requests.txt (translated from public
corpora: nodejs/llhttp's test/request fixtures, the HTTP Garden's payloads,
defparam/smuggler's Transfer-Encoding gadgets, MDA2AV/Http11Probe's suites,
RFC 9110/9112 examples; each group names its source) is sent, on a fresh
connection, to our server and to nginx (Debian's nginx-light, installed by
.ci/run), both serving the same document root. Ours runs under each
dispatch model (event, threads, fork), and the three must answer every case
alike. The test fails on every disagreement with nginx that
tests/http_cases/allowlist.txt does not name, printing the case, the
request and both answers. nginx missing is a failure, not a skip.

One exchange: connect, send the case's bytes (a `{wait}` in a case sends
what comes before it, waits - bounded - for the first response, then sends
the rest: an Expect: 100-continue client), shut down our sending side, read
until the server closes (bounded by EXCHANGE_S; a server still silent and
open then is recorded as "open"). Half-closing lets a server that keeps the
connection alive end the exchange at once, without a silence timeout.

What "agree" means. Each exchange becomes a list of outcomes, one per
response in order, and the two lists must be equal:
  - "100" for an interim 100 Continue;
  - "200 len=N type=T", "206 len=N type=T range=R", "304", "412",
    "416 range=R": the exact status with the Content-Length and media type
    (without parameters) of a 200/206, and the Content-Range of a 206/416; for a multipart/byteranges 206, the
    Content-Range of each part in order (boundaries and part headers are
    each server's own, so the length is not compared);
  - "3xx loc=PATH" for a redirect, PATH being the Location with any
    scheme://host stripped (nginx writes absolute or relative Locations
    depending on configuration; the path is what a client follows);
  - "missing" for 403, 404 and 410: the resource is not served (RFC 9110
    15.5.4 lets a server answer 404 where it could say 403);
  - "refused" for 400, 405, 408, 411, 413, 414, 417, 431, 501, 505: the
    server declined the message itself; which of these codes is a matter of
    taste (nginx says 501 for an unknown transfer coding where we say 400,
    405 against 400 for a lowercase method) and does not change what a
    client or an intermediary can do with the connection;
  - any other status as itself ("500", "204", ...);
  - "http0.9" for bytes that are not a status line (nginx answers a
    `GET /` HTTP/0.9 request with the bare body), "junk N" for bytes
    after the last response that are not one (a body on a HEAD answer);
  - "open" when our server neither answered further nor closed in time
    after the client's half-close (nginx may linger after an error, which
    is its business).
A response's body is skipped by its Content-Length, none after a HEAD
request, a 1xx, 204 or 304. Headers other than those named are not
compared (Date, Server, ETag formats, Content-Type details, Connection).

The allowlist gives each deliberate difference a one-line reason followed
by the case ids (fnmatch patterns) it covers; a pattern that no longer
matches a disagreement is reported as stale (a failure: the list must stay
short and true).
"""

import concurrent.futures
import fnmatch
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

args = sbtest.parse_args()
R = sbtest.Runner("e2e_http_diff", args)
HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "http_cases", "requests.txt")
ALLOW = os.path.join(HERE, "http_cases", "allowlist.txt")
NGINX = os.environ.get("SB_NGINX", "/usr/sbin/nginx")
EXCHANGE_S = 5.0          # one exchange: the server must answer and close in this
WAIT_S = 3.0              # a {wait}: the first response must come in this
WORKERS = 8
MODELS = ["event", "threads", "fork"]   # the first is compared with nginx
MIN_CASES = 300
MTIME = 1577836800        # Wed, 01 Jan 2020 00:00:00 GMT: every file's mtime

SMALL = b"hello world, thirty bytes!!!\r\n"          # 30 bytes
BIG = bytes(range(256)) * 400                       # 100 KiB: past our file cache


# --------------------------------------------------------------------------
# the case file: "ID BYTES" per line, BYTES with \r \n \t \0 \s \\ \xHH \{
# escapes, {*N:TEXT} for TEXT repeated N times, {wait}, {etag:PATH}

ESC = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", "{": b"{", "0": b"\0", "s": b" "}


def parse_bytes(s, lineno):
    """The case's bytes, as a list of parts: bytes, or ("wait",) /
    ("etag", path) markers resolved per server later."""
    parts, cur, i = [], bytearray(), 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            nx = s[i + 1:i + 2]
            if nx == "x":
                cur.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            if nx not in ESC:
                raise ValueError(f"line {lineno}: bad escape \\{nx}")
            cur += ESC[nx]
            i += 2
        elif ch == "{":
            j = s.index("}", i)
            macro = s[i + 1:j]
            if macro == "wait":
                parts += [bytes(cur), ("wait",)]
                cur = bytearray()
            elif macro.startswith("etag:"):
                parts += [bytes(cur), ("etag", macro[5:])]
                cur = bytearray()
            elif macro.startswith("*"):
                n, text = macro[1:].split(":", 1)
                cur += parse_bytes(text, lineno)[0] * int(n)
            else:
                raise ValueError(f"line {lineno}: unknown macro {{{macro}}}")
            i = j + 1
        else:
            cur += ch.encode("latin-1")
            i += 1
    parts.append(bytes(cur))
    return [p for p in parts if p != b""]


def load_cases():
    cases, seen = [], set()
    with open(CASES, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cid, _, data = line.partition(" ")
            if cid in seen:
                raise ValueError(f"line {n}: duplicate id {cid}")
            seen.add(cid)
            cases.append((cid, parse_bytes(data, n)))
    return cases


def load_allow():
    """[(pattern, reason)]: a line that starts a reason, then the case-id
    patterns it covers on the indented lines below it."""
    allow, reason = [], None
    with open(ALLOW, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line[0].isspace():
                reason = line.strip()
                continue
            if reason is None:
                raise ValueError(f"allowlist line {n}: patterns before any reason")
            allow += [(pat, reason) for pat in line.split()]
    return allow


def shown(parts):
    out = []
    for p in parts:
        if isinstance(p, tuple):
            out.append("{" + ":".join(p) + "}")
        else:
            r = repr(p)[2:-1]
            out.append(r if len(r) <= 300 else r[:300] + f"...({len(p)} bytes)")
    return "".join(out)


# --------------------------------------------------------------------------
# the document root both servers serve

def make_root(top):
    root = os.path.join(top, "www")
    files = {
        "index.html": b"<h1>index</h1>\n",
        "a.txt": SMALL,
        "big.bin": BIG,
        "style.css": b"body{}\n",
        "a b.txt": b"space\n",
        "%41.txt": b"percent-41\n",
        "A.txt": b"capital A\n",
        "caf\u00e9.txt".encode(): b"utf-8 name\n",
        "dir/index.html": b"<h1>dir</h1>\n",
        "dir/b.txt": b"bee\n",
        "sub dir/index.html": b"<h1>sub dir</h1>\n",
        "50%/index.html": b"<h1>fifty</h1>\n",
        "x;y.txt": b"semicolon\n",
        "q?.txt": b"question\n",
        "zero.txt": b"",
        "doc.md": b"# doc\n",
        "data.json": b"{}\n",
        "app.js": b"1;\n",
        "pic.svg": b"<svg/>\n",
        "UPPER.TXT": b"upper\n",
        "README": b"no extension\n",
        "x.unknown": b"unknown\n",
    }
    for name, data in files.items():
        if isinstance(name, bytes):
            path = os.path.join(root.encode(), name)
        else:
            path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (MTIME, MTIME))
    os.mkdir(os.path.join(root, "empty"))        # a directory without index.html
    # nginx's worker may run as an unprivileged user: let it read everything.
    os.chmod(top, 0o755)
    for dirpath, dirs, _ in os.walk(root):
        os.chmod(dirpath, 0o755)
    for dirpath, _, names in os.walk(root):
        for nm in names:
            os.chmod(os.path.join(dirpath, nm), 0o644)
    return root


# --------------------------------------------------------------------------
# nginx

NGINX_CONF = """\
# A static file server configured like ours (docs/http.md).
master_process off;
worker_processes 1;
# as root (CI) nginx keeps root; as anyone else it ignores this with a warning
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # ours (apps/http_files.c), so the media types compare
    types {{
        text/html html htm; text/css css; text/plain txt; text/javascript js mjs;
        text/markdown md markdown; text/csv csv; text/xml xml; image/svg+xml svg;
        application/json json; image/png png; image/jpeg jpg jpeg; image/gif gif;
        image/webp webp; image/x-icon ico; application/wasm wasm; application/pdf pdf;
    }}
    default_type application/octet-stream;
    sendfile on;
    server_tokens off;
    keepalive_timeout 15s;
    client_header_timeout 10s;
    client_body_timeout 10s;
    # ours: request line 8 KiB, head 16 KiB, a body up to 64 KiB dropped.
    # nginx bounds each line instead of the head, so no case sits between
    # the two limits (a line of 8-16 KiB, a head of 16-64 KiB).
    large_client_header_buffers 4 16k;
    client_max_body_size 64k;
    # RFC 9110 13.1.3: not modified since the date, not "exactly at" it
    if_modified_since before;
    # a redirect's Location is a path, as ours
    absolute_redirect off;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        index index.html;
        autoindex off;
    }}
}}
"""


class Nginx:
    def __init__(self, top, root):
        if not os.access(NGINX, os.X_OK):
            raise AssertionError(f"nginx not found at {NGINX}: this test needs it "
                                 "(apt-get install nginx-light; .ci/run installs it)")
        self.dir = os.path.join(top, "nginx")
        os.mkdir(self.dir)
        # The port is picked free and then handed to nginx: another process
        # may take it in between, so a failed start is tried again.
        for _ in range(3):
            port = free_port()
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(d=self.dir, port=port, root=root))
            self.addr = ("127.0.0.1", port)
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log"),
                 "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
            up = False
            try:
                up = sbtest.wait_until(self._up, 10.0) is True
            finally:
                if not up:
                    self.stop()
            if up:
                return
        raise AssertionError(f"nginx did not start: {self.log()}")

    def _up(self):
        if self.proc.poll() is not None:
            return "exited"     # ends the wait, and is not True
        try:
            socket.create_connection(self.addr, timeout=1).close()
            return True
        except OSError:
            return False

    def log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=5)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# one exchange and its outcomes

def recv_some(s, deadline):
    """Bytes, b"" at EOF or reset, None when the deadline passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    s.settimeout(left)
    try:
        return s.recv(65536)
    except socket.timeout:
        return None
    except (ConnectionResetError, BrokenPipeError):
        return b""


def exchange(addr, parts, etags):
    """Everything the server sent, and whether it closed in time."""
    buf = bytearray()
    s = socket.create_connection(addr, timeout=EXCHANGE_S)
    try:
        for p in parts:
            if p == ("wait",):
                deadline = time.monotonic() + WAIT_S
                while b"\n" not in buf:
                    d = recv_some(s, deadline)
                    if not d:
                        break
                    buf += d
                continue
            data = etags[p[1]] if isinstance(p, tuple) else p
            try:
                s.sendall(data)
            except (ConnectionResetError, BrokenPipeError):
                break
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.monotonic() + EXCHANGE_S
        while True:
            d = recv_some(s, deadline)
            if d is None:
                return bytes(buf), False
            if not d:
                return bytes(buf), True
            buf += d
    finally:
        s.close()


STATUS_RE = re.compile(rb"HTTP/\d\.\d (\d{3})[^\r\n]*\r?\n")
REFUSED = {400, 405, 408, 411, 413, 414, 417, 431, 501, 505}
MISSING = {403, 404, 410}


def outcomes(data, closed, first_is_head, mark_open=True):
    """The exchange as a list of outcome strings (see the top of the file)."""
    out, i, n = [], 0, 0
    while i < len(data):
        m = STATUS_RE.match(data, i)
        if not m:
            out.append("http0.9" if n == 0 else f"junk {len(data) - i}")
            break
        end = data.find(b"\r\n\r\n", m.end() - 2)
        if end < 0:
            out.append("truncated head")
            break
        hs = {}
        for ln in data[m.end():end].split(b"\r\n"):
            k, _, v = ln.partition(b":")
            hs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        st = int(m.group(1))
        i = end + 4
        no_body = (n == 0 and first_is_head) or st < 200 or st in (204, 304)
        body = b""
        if not no_body and not data.startswith(b"HTTP/1.", i):
            blen = int(hs.get("content-length", "0") or 0)
            body, i = data[i:i + blen], i + blen
        out.append(outcome(st, hs, body))
        n += 1
    if not closed and mark_open:
        out.append("open")
    return out


def part_ranges(ctype, body):
    """The Content-Range of each part of a multipart/byteranges body."""
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    if not m:
        return ["no boundary"]
    parts = body.split(b"--" + m.group(1).encode("latin-1"))
    return [r.group(1).decode("latin-1")
            for r in (re.search(rb"(?i)\r\ncontent-range: *([^\r]*)", b"\r\n" + p)
                      for p in parts[1:]) if r]


def outcome(st, hs, body):
    if st in REFUSED:
        return "refused"
    if st in MISSING:
        return "missing"
    ctype = hs.get("content-type", "")
    if st == 206 and ctype.lower().startswith("multipart/byteranges"):
        return f"206 parts={part_ranges(ctype, body)}"
    if st in (200, 206):
        s = f"{st} len={hs.get('content-length')} type={ctype.split(';')[0].strip().lower()}"
        return s + (f" range={hs.get('content-range')}" if st == 206 else "")
    if st == 416:
        return f"416 range={hs.get('content-range')}"
    if 300 <= st < 400 and st != 304:
        loc = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "", hs.get("location", ""))
        return f"{st} loc={loc}"
    return str(st)


def run_case(case, servers):
    """{server name: (outcomes, bytes received)} for one case."""
    cid, parts = case
    first = next((p for p in parts if isinstance(p, bytes)), b"")
    head = first.startswith(b"HEAD ")
    res = {}
    for name, addr, etags in servers:
        data, closed = exchange(addr, parts, etags)
        res[name] = (outcomes(data, closed, head, mark_open=name != "nginx"), data)
    return cid, parts, res


def etag_of(addr, path):
    s = socket.create_connection(addr, timeout=EXCHANGE_S)
    try:
        s.sendall(f"HEAD {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                  .encode())
        data = sbtest.recv_until_eof(s, timeout=EXCHANGE_S)
    finally:
        s.close()
    m = re.search(rb"\r\nETag: *([^\r\n]*)", data, re.I)
    assert m, f"no ETag for {path} from {addr}: {data[:200]!r}"
    return m.group(1)


# --------------------------------------------------------------------------

def check_diff():
    cases = load_cases()
    allow = load_allow()
    assert len(cases) >= MIN_CASES, f"only {len(cases)} cases"
    top = tempfile.mkdtemp(prefix="sb-diff-")
    ngx, ours = None, {}
    try:
        root = make_root(top)
        ngx = Nginx(top, root)
        for model in MODELS:
            ours[model] = sbtest.start_server(args.bin, "--app", "http", "--root", root,
                                              "--model", model)
        paths = {p[1] for _, parts in cases for p in parts if isinstance(p, tuple) and p[0] == "etag"}
        addrs = [("nginx", ngx.addr)] + [(m, srv.addr) for m, srv in ours.items()]
        servers = [(name, addr, {p: etag_of(addr, p) for p in paths}) for name, addr in addrs]
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(lambda c: run_case(c, servers), cases))
        for model, srv in ours.items():
            assert srv.alive(), f"our server ({model}) died: {srv.stderr_text()[-2000:]}"
        report(results, allow)
    finally:
        for srv in ours.values():
            srv.stop()
        if ngx is not None:
            ngx.stop()
        shutil.rmtree(top, ignore_errors=True)


def report(results, allow):
    bad, split, used, agreed = [], [], set(), 0
    for cid, parts, res in results:
        ours, od = res[MODELS[0]]
        others = [m for m in MODELS[1:] if res[m][0] != ours]
        if others:
            split.append((cid, parts, {m: res[m][0] for m in MODELS}))
        theirs, td = res["nginx"]
        if ours == theirs:
            agreed += 1
            continue
        pats = [p for p, _ in allow if fnmatch.fnmatchcase(cid, p)]
        if pats:
            used.update(pats)
            continue
        bad.append((cid, parts, ours, od, theirs, td))
    stale = [p for p, _ in allow if p not in used]
    if os.environ.get("SB_DIFF_SHOW"):      # every case's outcomes, for a reader
        for cid, parts, res in results:
            codes = {n: re.findall(rb"HTTP/1\.[01] (\d{3})", res[n][1]) for n in (MODELS[0], "nginx")}
            print(f"{cid}: ours {res[MODELS[0]][0]} nginx {res['nginx'][0]} "
                  f"codes {[c.decode() for c in codes[MODELS[0]]]} "
                  f"{[c.decode() for c in codes['nginx']]}")
    print(f"{len(results)} cases: {agreed} agree, "
          f"{len(results) - agreed - len(bad)} differ as allowed, {len(bad)} differ; "
          f"the models split on {len(split)}")
    for cid, parts, ours, od, theirs, td in bad:
        print(f"\n  {cid}: {shown(parts)}")
        print(f"    switchboard: {ours}   {od[:160]!r}")
        print(f"    nginx:       {theirs}   {td[:160]!r}")
    for cid, parts, by_model in split:
        print(f"\n  {cid}: the models differ: {shown(parts)}")
        for m, o in by_model.items():
            print(f"    {m}: {o}")
    for p in stale:
        print(f"  stale allowlist entry (no disagreement matches it): {p}")
    assert not bad and not stale and not split, (
        f"{len(bad)} disagreements, {len(split)} cases the models answer differently, "
        f"{len(stale)} stale allowlist entries")


R.check("differential run against nginx", check_diff, limit=120)
sys.exit(R.finish())
