"""How many trades a second the simulator pushes over one WebSocket connection on loopback.

The simulator runs as its own process (``python -m binance_simulator``) with one symbol trading
far above any real rate; this process reads the stream with a minimal frame counter on a raw socket (so the
reader is not the bottleneck) and reports trades/s and MB/s. Goal: >= 100,000 trades/s.

    .venv/bin/python bench/simulator_throughput.py [--rate 500000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import struct
import time

from binance_simulator.process import SimulatorProcess


def count_frames(port: int, seconds: float, warmup: float = 2.0) -> tuple[int, int, float]:
    """(text frames, payload bytes, elapsed seconds) received after a warm-up, on a raw socket."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/benchusdt@trade HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    sock.settimeout(5)
    frames = payload = 0
    started = time.perf_counter()
    counting_from = started + warmup
    counting = False
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
        pos, n = 0, len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buf, pos + 2)
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            if n - pos < head + length:
                break
            if counting and buf[pos] & 0x0F == 0x1:
                frames += 1
                payload += length
            pos += head + length
        buf = buf[pos:]
        now = time.perf_counter()
        if not counting and now >= counting_from:
            counting, counting_from = True, now
        if counting and now - counting_from >= seconds:
            break
    elapsed = time.perf_counter() - counting_from
    sock.close()
    return frames, payload, elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=500_000, help="simulated trades per second")
    p.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    with SimulatorProcess(
        "--symbols", "BENCHUSDT", "--rate", f"BENCHUSDT={args.rate:g}", "--history-minutes", "0"
    ) as sim:
        frames, payload, elapsed = count_frames(sim.port, args.seconds)
    rate = frames / elapsed
    if elapsed < args.seconds * 0.9:
        print(
            f"the connection ended after {elapsed:.1f} s: the reader fell behind and the simulator dropped it "
            "as a slow consumer (lower --rate)"
        )
    print(
        f"simulator stream throughput: {rate:,.0f} trades/s over one connection "
        f"({payload / elapsed / 1e6:.1f} MB/s payload, {frames:,} trades in {elapsed:.1f} s; "
        f"market rate {args.rate:,.0f}/s; goal >= 100,000/s: {'MET' if rate >= 100_000 else 'NOT MET'})"
    )


if __name__ == "__main__":
    main()
