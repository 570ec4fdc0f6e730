#!/usr/bin/env python3
"""Delaying TCP relay for the `delay` nemesis (tc netem is not available on
this kernel). Run inside a node's network namespace:

  relay.py --listen IP:PORT --mark M --delay-ms D --jitter-ms J --seed S

The node's outgoing connections to its peers (raft and forwarded HTTP) are
DNATed by iptables (nat OUTPUT, in the node's namespace) to IP:PORT. For each
accepted connection the relay reads the original destination
(SO_ORIGINAL_DST), connects there with SO_MARK=M (the nat rule skips marked
packets, so the relay's own connection is not redirected again) and copies
bytes both ways. Every chunk read is delivered D +/- J ms after it arrived,
and never before the chunk read before it on the same direction of the same
connection: byte order per connection is preserved and nothing bypasses
the wait. The relay only forwards bytes, so the raft handshake (HMAC or
signature) is unaffected. When either end closes or resets, both sides are
closed. Prints "ready" on stdout once listening; exits when its parent (the
runner) goes away, on SIGTERM, or when the namespace is deleted."""
import argparse
import asyncio
import os
import random
import signal
import socket
import struct
import sys

SO_ORIGINAL_DST = 80


def original_dst(sock):
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


class Relay:
    def __init__(self, a):
        self.a = a
        self.rnd = random.Random(a.seed)
        self.loop = None

    def delay(self):
        return max(0.0, (self.a.delay_ms + self.rnd.uniform(-self.a.jitter_ms,
                                                            self.a.jitter_ms)) / 1000.0)

    async def pump(self, reader, writer, other):
        """reader -> writer, each chunk held until its delivery time."""
        q = asyncio.Queue()

        async def deliver():
            try:
                while True:
                    at, data = await q.get()
                    wait = at - self.loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if data is None:
                        break
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for w in (writer, other):
                    w.close()

        task = asyncio.ensure_future(deliver())
        last = 0.0
        try:
            while True:
                data = await reader.read(65536)
                last = max(last, self.loop.time() + self.delay())
                q.put_nowait((last, data or None))
                if not data:
                    break
        except (ConnectionError, OSError):
            q.put_nowait((0.0, None))
        await task

    async def handle(self, creader, cwriter):
        csock = cwriter.get_extra_info("socket")
        try:
            host, port = original_dst(csock)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.a.mark)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            await asyncio.wait_for(self.loop.sock_connect(s, (host, port)), 5)
            preader, pwriter = await asyncio.open_connection(sock=s)
        except (OSError, asyncio.TimeoutError):
            cwriter.close()
            return
        csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print("relaying %s:%d -> %s:%d" % (csock.getpeername() + (host, port)),
              file=sys.stderr, flush=True)
        await asyncio.gather(self.pump(creader, pwriter, cwriter),
                             self.pump(preader, cwriter, pwriter))

    async def watch_parent(self, ppid):
        while os.getppid() == ppid:
            await asyncio.sleep(0.5)
        self.loop.stop()

    async def main(self):
        self.loop = asyncio.get_running_loop()
        host, port = self.a.listen.rsplit(":", 1)
        srv = await asyncio.start_server(self.handle, host, int(port), reuse_address=True)
        self.loop.add_signal_handler(signal.SIGTERM, self.loop.stop)
        print("ready", flush=True)
        await self.watch_parent(self.a.parent)
        srv.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--mark", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--jitter-ms", type=float, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parent", type=int, default=os.getppid())
    a = ap.parse_args()
    try:
        asyncio.run(Relay(a).main())
    except RuntimeError:  # loop stopped by SIGTERM / parent gone
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
