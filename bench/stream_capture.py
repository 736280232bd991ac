"""How much of websocket-client's raw receive rate BinanceStream keeps while turning every frame into a record.

The simulator runs as its own process with BTCUSDT trading far above any real rate; this process then reads
the stream for N seconds, one connection at a time:

  (a)  raw websocket-client: ``websocket.create_connection(url)`` and a tight ``recv()`` loop (default options:
       websocket-client validates UTF-8 in pure Python unless wsaccel is installed);
  (a') the same with ``skip_utf8_validation=True``, the option BinanceStream uses (msgspec validates UTF-8 itself);
  (b)  ``BinanceStream(ws_url, ["BTCUSDT"]).records()`` as production runs it (``@trade`` and ``@kline_1m`` on one
       combined connection): frames parsed into records, trades counted.

Goal: (b) >= 75% of (a). A reader that falls 64 MB behind the market is dropped by the simulator (as Binance drops
slow consumers); its rate is then the rate until the drop, and the line says so.

    .venv/bin/python bench/stream_capture.py [--rate 150000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import time

import websocket

from binance_simulator.process import SimulatorProcess
from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.exchange.stream import BinanceStream

SYMBOL = "BTCUSDT"


def raw_rate(ws_url: str, seconds: float, **options) -> tuple[float, int, str]:
    """Messages a second from a tight recv() loop; (rate, messages, note)."""
    ws = websocket.create_connection(ws_url + f"/stream?streams={SYMBOL.lower()}@trade", **options)
    n, note = 0, ""
    ws.recv()  # the first frame: the stream is live
    started = time.perf_counter()
    end = started + seconds
    try:
        while True:
            ws.recv()
            n += 1
            if not n & 1023 and time.perf_counter() >= end:
                break
    except (websocket.WebSocketException, OSError):
        note = f"  (dropped by the simulator after {time.perf_counter() - started:.1f} s: rate until then)"
    elapsed = time.perf_counter() - started
    try:
        ws.close(timeout=0.2)
    except (websocket.WebSocketException, OSError):
        pass
    return n / elapsed, n, note


def stream_rate(ws_url: str, seconds: float, market_rate: float) -> tuple[float, int, str]:
    """Trade records a second from BinanceStream.records(); (rate, records, note)."""
    stream = BinanceStream(ws_url, [SYMBOL])
    records = stream.records()
    next(records)  # Connected
    first = next(records)
    n, last, note = 0, first, ""
    started = time.perf_counter()
    end = started + seconds
    for record in records:
        if type(record) is Kline:
            continue
        if type(record) is not Trade:
            note = f"  (stopped at {type(record).__name__} after {time.perf_counter() - started:.1f} s)"
            break
        n += 1
        last = record
        if not n & 1023 and time.perf_counter() >= end:
            break
    elapsed = time.perf_counter() - started
    stream.close()
    records.close()
    span = last.trade_id - first.trade_id
    if not note:
        note = f"  (ids {first.trade_id + 1}..{last.trade_id}: {span - n} missing)"
        if n / elapsed >= 0.95 * market_rate:
            note += "; it kept up with the market: its own ceiling is higher"
    return n / elapsed, n, note


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=150_000, help="the simulated market's trades a second")
    p.add_argument("--seconds", type=float, default=10.0, help="each measurement's duration")
    args = p.parse_args()
    with SimulatorProcess("--symbols", SYMBOL, "--rate", f"{SYMBOL}={args.rate:g}", "--history-minutes", "0") as sim:
        ws_url = sim.ws_url
        results = {}
        for name, measure in [
            ("(a)  raw websocket-client recv()", lambda: raw_rate(ws_url, args.seconds)),
            (
                "(a') raw recv(), skip_utf8_validation",
                lambda: raw_rate(ws_url, args.seconds, skip_utf8_validation=True),
            ),
            ("(b)  BinanceStream.records()", lambda: stream_rate(ws_url, args.seconds, args.rate)),
        ]:
            time.sleep(1.0)  # let the simulator forget the previous connection
            rate, n, note = measure()
            results[name[:4].strip()] = rate
            print(f"{name:40s} {rate:10,.0f} msgs/s  ({n:,} in ~{args.seconds:g} s){note}")
        raw, raw_skip, captured = results["(a)"], results["(a')"], results["(b)"]
        print(
            f"market rate {args.rate:,.0f} trades/s; BinanceStream / raw recv(): {captured / raw:.0%} (goal >= 75%);"
            f" / raw recv() without UTF-8 validation: {captured / raw_skip:.0%}"
        )


if __name__ == "__main__":
    main()
