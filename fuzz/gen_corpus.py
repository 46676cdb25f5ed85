#!/usr/bin/env python3
"""Write the seed corpus of the fuzz targets into fuzz/corpus/<target>/.

The seeds are small, valid-looking inputs for every branch the targets
choose between; libFuzzer mutates from there. Run from anywhere; the
output is committed.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# Index of each SPEC in fuzz_frame.c's table, and of a max_msg in maxes[].
SPECS = ["raw", "line", "delim_crlfcrlf", "delim_bar", "delim_abab", "fixed1", "fixed7",
         "ascii1", "ascii3", "ascii20", "len16", "len32", "len64", "varint", "typed", "eof",
         "delim_aab", "delim_cr", "delim_crlf"]
MAX_1000 = 5


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def frame_seeds():
    msgs = [b"", b"hello", b"\x00\x01\xff\x00", b"x" * 40]
    body = {
        "raw": b"some raw bytes\x00\xff",
        "line": b"hello\nworld\r\n\nlast",
        "delim_crlfcrlf": b"GET / HTTP/1.0\r\n\r\nnext\r\n\r\n",
        "delim_bar": b"a|bc||def|",
        "delim_abab": b"xabab" + b"ababab" + b"ab",
        "fixed1": b"abc",
        "fixed7": b"1234567abcdefg",
        "ascii1": b"3abc0" + b"9123456789",
        "ascii3": b"".join(b"%03d" % len(m) + m for m in msgs),
        "ascii20": b"".join(b"%020d" % len(m) + m for m in msgs),
        "len16": b"".join(struct.pack(">H", len(m)) + m for m in msgs),
        "len32": b"".join(struct.pack(">I", len(m)) + m for m in msgs) + b"\xff\xff\xff\xff",
        "len64": b"".join(struct.pack(">Q", len(m)) + m for m in msgs),
        "varint": b"".join(varint(len(m)) + m for m in msgs) + b"\xff" * 11,
        "typed": b"A" + b"Bxyz" + b"\x00" + b"12345" + b",!" + b"C",
        "eof": b"everything until the end",
        "delim_aab": b"xaab" + b"aaab" + b"aab" + b"aa",
        "delim_cr": b"a\rb\r\r\n\r",
        "delim_crlf": b"a\r\r\n\r\n\r\r",
    }
    seeds = {}
    for i, name in enumerate(SPECS):
        seeds[name] = bytes([i, MAX_1000, 0x12, 0x34]) + body[name]
        seeds[name + "_max5"] = bytes([i, 2, 0x00, 0x01]) + body[name]
    # line payloads ending in '\r': "ab\r\r\n" is the message "ab\r"
    seeds["line_cr"] = bytes([SPECS.index("line"), MAX_1000, 0x12, 0x34]) + b"ab\r\r\n\r\n\r\r\r\n\r"
    return seeds


def pack_seeds():
    return {
        "varint_300": b"\xac\x02",
        "varint_max": b"\xff" * 9 + b"\x01",
        "varint_over": b"\x80" * 10 + b"\x00",
        "varint_nonminimal": b"\x85\x80\x00",
        "ascii5": b"\x04" + b"00042",
        "ascii20": b"\x13" + b"18446744073709551615",
        "fixed": bytes(range(1, 9)),
    }


def addr_seeds():
    return {
        "v4": b"127.0.0.1:7000",
        "name": b"localhost:80",
        "v6": b"[::1]:7000",
        "v6scope": b"[fe80::1%lo]:1",
        "any": b":0",
        "unix": b"unix:/tmp/sb.sock",
        "badport": b"host:65536",
        "empty": b"",
    }


def proxy_seeds():
    v2 = b"\r\n\r\n\x00\r\nQUIT\n"
    v4 = bytes([10, 1, 2, 3, 10, 0, 0, 1]) + struct.pack(">HH", 40000, 80)
    v6 = bytes(15) + b"\x07" + bytes(15) + b"\x01" + struct.pack(">HH", 1, 2)
    return {
        "v1_tcp4": b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /",
        "v1_tcp6": b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
        "v1_unknown": b"PROXY UNKNOWN\r\n",
        "v2_tcp4": v2 + b"\x21\x11" + struct.pack(">H", 12) + v4 + b"data",
        "v2_tcp6_tlv": v2 + b"\x21\x21" + struct.pack(">H", 42) + v6 + b"\x01\x00\x03h2x",
        "v2_local": v2 + b"\x20\x00\x00\x00",
    }


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("fuzz_frame", frame_seeds())
    write("fuzz_pack", pack_seeds())
    write("fuzz_addr", addr_seeds())
    write("fuzz_proxy", proxy_seeds())
