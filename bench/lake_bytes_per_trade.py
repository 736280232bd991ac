"""Bytes per trade and write throughput of the lake's minute files, on BTC-like data from the simulator's model.

Writes ``--minutes`` minutes of trades of each of ``--symbols`` (the simulator's market model with the symbol's
trading rules, no server; default rate 40 trades/s, then 10x) as minute files to a temporary local lake through
``LocalLake.write_minute`` and prints, per symbol and rate, the bytes per trade (goal <= 20) and the write
throughput (trades/s, ``Trade`` records in -> fsynced file out).

    .venv/bin/python bench/lake_bytes_per_trade.py [--minutes 10] [--rate 40] [--symbols BTCUSDT,PEPEUSDT]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from binance_simulator.market import Market, symbol_config, units_to_decimal
from crypto_assets.exchange.models import Trade
from crypto_assets.lake import LocalLake

ORIGIN_MS = 1_763_683_200_000  # 2025-11-21 00:00 UTC
MINUTE_MS = 60_000


def minute_trades(market: Market, symbol: str, start_ms: int) -> list[Trade]:
    t = market[symbol].trades_between(start_ms, start_ms + MINUTE_MS - 1)
    received = [ms + 5 for ms in t.time.tolist()]
    return [
        Trade(symbol, i, units_to_decimal(p), units_to_decimal(q), ms, m, r)
        for i, p, q, ms, m, r in zip(
            t.id.tolist(), t.price.tolist(), t.qty.tolist(), t.time.tolist(), t.is_buyer_maker.tolist(), received
        )
    ]


def run(symbol: str, rate: float, minutes: int) -> tuple[int, int, float]:
    market = Market([symbol_config(symbol, trades_per_second=rate)], seed=1, origin_ms=ORIGIN_MS)
    batches = [minute_trades(market, symbol, ORIGIN_MS + k * MINUTE_MS) for k in range(minutes)]
    trades = total_bytes = 0
    with tempfile.TemporaryDirectory() as root:
        lake = LocalLake(root)
        started = time.perf_counter()
        for k, batch in enumerate(batches):
            result = lake.write_minute(symbol, ORIGIN_MS + k * MINUTE_MS, batch)
            trades += result.rows
            total_bytes += result.bytes
        elapsed = time.perf_counter() - started
    return trades, total_bytes, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=40.0, help="trades/s of each symbol (also run at 10x)")
    parser.add_argument("--symbols", default="BTCUSDT,PEPEUSDT", help="comma-separated simulator symbols")
    args = parser.parse_args()
    for symbol in args.symbols.split(","):
        for rate in (args.rate, args.rate * 10):
            report(symbol, rate, args.minutes)


def report(symbol: str, rate: float, minutes: int) -> None:
    trades, size, elapsed = run(symbol, rate, minutes)
    print(
        f"lake minute files, {symbol} at {rate:g} trades/s x {minutes} min: {trades} trades, "
        f"{size / trades:.1f} bytes/trade (goal <= 20), write {trades / elapsed:,.0f} trades/s "
        f"({elapsed / minutes * 1000:.0f} ms per minute file)"
    )


if __name__ == "__main__":
    main()
