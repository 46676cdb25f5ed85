#!/usr/bin/env python3
"""tls_hold: the idle-TLS-connections client of bench/runner.py.

    tls_hold.py PORT CONNS HOLD_S CAFILE PATH

Opens CONNS TLS connections to 127.0.0.1:PORT one after the other (a full
handshake each, the certificate verified against CAFILE), sends one
keep-alive `GET PATH` on each and reads its whole response, then prints
"tls_hold: holding N connections for S s" on stderr, keeps them open and
silent for HOLD_S seconds and closes them. The same client for every
server, so the server's RSS growth over the hold is measured the same way
(workload D's method, over HTTPS). Exit 1 if any connection failed.

Standard library only.
"""
import resource
import socket
import ssl
import sys
import time


def get(ctx, port, path):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed before the head")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError("status: %r" % head.split(b"\r\n", 1)[0])
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    if length is None:
        raise OSError("no Content-Length")
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed mid-body")
        body += chunk
    if s.version() != "TLSv1.3":
        raise OSError("negotiated %s, not TLSv1.3" % s.version())
    return s


def main():
    port, conns, hold, cafile, path = (int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
                                       sys.argv[4], sys.argv[5])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context(cafile=cafile)
    held, failed = [], 0
    for _ in range(conns):
        try:
            held.append(get(ctx, port, path))
        except (OSError, ValueError) as e:
            failed += 1
            if failed == 1:
                print("tls_hold: %s" % e, file=sys.stderr)
    print("tls_hold: holding %d connections for %g s" % (len(held), hold), file=sys.stderr, flush=True)
    time.sleep(hold)
    for s in held:
        s.close()
    print('{"connected": %d, "failed": %d}' % (len(held), failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
