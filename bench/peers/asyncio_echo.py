#!/usr/bin/env python3
"""asyncio_echo: the echo server as asyncio users write it - a Protocol whose
data_received writes the bytes straight back on the transport.

usage: asyncio_echo.py PORT   (listens on 127.0.0.1:PORT)
"""
import asyncio
import signal
import socket
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=4096)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with server:
        await stop


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: asyncio_echo.py PORT\n")
        sys.exit(2)
    asyncio.run(main(int(sys.argv[1])))
