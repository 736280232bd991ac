"""How much of websocket-client's raw receive rate BinanceStream keeps while turning every frame into a record.

The simulator runs as its own process with BTCUSDT trading far above any real rate; this process then reads
the stream for N seconds, one connection at a time:

  (a)  raw websocket-client: ``websocket.create_connection(url)`` and a tight ``recv()`` loop (default options:
       websocket-client validates UTF-8 in pure Python unless wsaccel is installed);
  (a') the same with ``skip_utf8_validation=True``, the option BinanceStream uses (msgspec validates UTF-8 itself);
  (b)  ``BinanceStream(ws_url, ["BTCUSDT"]).records()`` as production runs it (``@trade`` and ``@kline_1m`` on one
       combined connection): frames parsed into records, trades counted.

Then (c) the cost of the capture process's Prometheus metrics (``crypto_assets.ingest.metrics.CaptureMetrics``): (b)
with ``metrics=None`` and with metrics on (scraped every second, as a busy Prometheus would), alternating
``--metrics-runs`` times each on this noisy machine, medians compared. The throughput compared is trades per CPU
second of this process (the reader and the scraper thread): on a loaded machine the wall-clock rate mostly measures
the neighbours, and a reader behind a market faster than it is dropped. Run (c) with a market it keeps up with
(``--metrics-only --rate 50000``).

Goal: (b) >= 75% of (a); (c) metrics cost <= 5 % of (b). A reader that falls 64 MB behind the market is dropped by
the simulator (as Binance drops slow consumers); its rate is then the rate until the drop, and the line says so.

    .venv/bin/python bench/stream_capture.py [--rate 150000] [--seconds 10] [--metrics-runs 5] [--metrics-only]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import websocket
from prometheus_client import generate_latest

from binance_simulator.process import SimulatorProcess
from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.exchange.stream import BinanceStream
from crypto_assets.ingest.metrics import CaptureMetrics

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


def stream_rate(ws_url: str, seconds: float, market_rate: float, metrics: CaptureMetrics | None = None):
    """Trade records a second from BinanceStream.records() (told ``metrics`` when given); (rate, records, note)."""
    stream = BinanceStream(ws_url, [SYMBOL], metrics=metrics)
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


def metrics_overhead(ws_url: str, seconds: float, market_rate: float, runs: int) -> None:
    """(b) with metrics off and on, alternating ``runs`` times each; medians and the overhead."""
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for run in range(runs):
        for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):
            time.sleep(1.0)
            metrics = CaptureMetrics() if mode == "on" else None
            stop = threading.Event()
            if metrics is not None:  # scraped every second while it streams

                def scrape(m=metrics, stop=stop):
                    while not stop.wait(1.0):
                        generate_latest(m.registry)

                threading.Thread(target=scrape, daemon=True).start()
            cpu = time.process_time()
            wall, n, note = stream_rate(ws_url, seconds, market_rate, metrics)
            rate = n / (time.process_time() - cpu)
            stop.set()
            rates[mode].append(rate)
            if metrics is not None:
                scraped = metrics.registry.get_sample_value("crypto_capture_trades_received_total", {"symbol": SYMBOL})
                assert scraped is not None and scraped >= n, (scraped, n)  # every trade counted
            print(f"(c)  metrics {mode:3s} run {run + 1}/{runs}  {rate:10,.0f} trades/CPU-s ({wall:,.0f}/s wall){note}")
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(
        f"metrics off median {off:,.0f} trades/CPU-s, on median {on:,.0f}: overhead {(off - on) / off:.1%} "
        f"(goal <= 5 %); off {', '.join(f'{r:,.0f}' for r in rates['off'])}; "
        f"on {', '.join(f'{r:,.0f}' for r in rates['on'])}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=150_000, help="the simulated market's trades a second")
    p.add_argument("--seconds", type=float, default=10.0, help="each measurement's duration")
    p.add_argument("--metrics-runs", type=int, default=5, help="(c): runs with metrics off and on, alternating")
    p.add_argument("--metrics-only", action="store_true", help="measure (c) alone")
    args = p.parse_args()
    with SimulatorProcess("--symbols", SYMBOL, "--rate", f"{SYMBOL}={args.rate:g}", "--history-minutes", "0") as sim:
        ws_url = sim.ws_url
        if not args.metrics_only:
            receive_rates(ws_url, args)
        if args.metrics_runs:
            metrics_overhead(ws_url, args.seconds, args.rate, args.metrics_runs)


def receive_rates(ws_url: str, args: argparse.Namespace) -> None:
    """(a), (a') and (b)."""
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
