"""``python -m binance_simulator --host 127.0.0.1 --port 8765``: run the exchange simulator."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import math
import signal
import sys
import time

from binance_simulator.market import DEFAULT_SYMBOLS, symbol_config
from binance_simulator.payloads import TRADE_SHAPES
from binance_simulator.server import Simulator, SimulatorConfig
from binance_simulator.streams import StreamSettings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m binance_simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--symbols",
        default="BTCUSDT,ETHUSDT,SOLUSDT",
        help=f"comma-separated symbols to list; configured as on Binance: {','.join(DEFAULT_SYMBOLS)}; "
        "any other gets a generic pair with full filters (`make demo` passes CRYPTO_SYMBOLS)",
    )
    p.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="SYMBOL=TRADES_PER_SECOND",
        help="average trade rate of a symbol (repeatable); defaults are realistic per symbol",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--history-minutes", type=int, default=120, help="how long the market has traded before start")
    p.add_argument(
        "--history-from",
        metavar="YYYY-MM-DD[THH:MM]",
        help="the start of the market's history as a UTC time (overrides --history-minutes): a fixed start keeps "
        "the market, trade ids included, the same from one start-up to the next",
    )
    p.add_argument("--weight-per-minute", type=int, default=6000)
    p.add_argument("--ping-interval", type=float, default=20.0, help="seconds between server pings")
    p.add_argument("--pong-timeout", type=float, default=60.0, help="seconds a ping may stay unanswered")
    p.add_argument("--max-connection-lifetime", type=float, default=24 * 3600.0, help="seconds")
    p.add_argument(
        "--hostile",
        action="store_true",
        help="hostile mode: every stream connection cut after 40-100 s (drop, half-open or "
        "serverShutdown), bursts of 10-50x a symbol's rate, empty minutes (history included)",
    )
    p.add_argument(
        "--listed",
        action="append",
        default=[],
        metavar="SYMBOL=MINUTES",
        help="SYMBOL was listed MINUTES ago (repeatable): no trade or kline of it before, trade ids from "
        "0; the other symbols keep --history-minutes of history",
    )
    p.add_argument(
        "--quiet-symbols",
        type=int,
        default=0,
        metavar="N",
        help="add N generated quiet symbols (0.01-0.5 trades/s, many quiet minutes; seven in eight quoted in USDT, "
        "the others in BTC, FDUSD, USDC, ETH, TRY), named deterministically from --seed",
    )
    p.add_argument(
        "--halted",
        action="append",
        default=[],
        metavar="SYMBOL=MINUTES",
        help="SYMBOL has been halted (status HALT, no trade) since MINUTES ago (repeatable); "
        "POST /_sim/faults/resume_trading resumes it",
    )
    p.add_argument(
        "--archive-delay-minutes",
        type=int,
        default=0,
        help="a day's files in the daily archive (/data/spot/daily/...) are published this long after the day ends",
    )
    p.add_argument(
        "--archive-cache-dir",
        metavar="DIR",
        help="keep the daily archive's built files here and reuse those a simulator with the same market built "
        "before (default: a temporary folder, removed at exit)",
    )
    p.add_argument(
        "--trade-shape",
        choices=TRADE_SHAPES,
        default="current",
        help="trade payload shape: current, pre-2024 (with b/a order ids) or without-M",
    )
    return p.parse_args(argv)


def parse_listed(items: list[str], symbols: list[str], flag: str = "--listed") -> dict[str, int]:
    """``["PEPEUSDT=30"]`` -> ``{"PEPEUSDT": 30}``; a bad item exits with a one-line message naming it."""
    listed = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        if not sep or not name or not value.strip().isdigit():
            raise SystemExit(f"{flag} expects SYMBOL=MINUTES with MINUTES a whole number >= 0, got {item!r}")
        if name not in symbols:
            raise SystemExit(f"{flag} names {name}, which is not in --symbols ({','.join(symbols)})")
        if name in listed:
            raise SystemExit(f"{flag} names {name} twice")
        listed[name] = int(value)
    return listed


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    rates = {}
    for item in args.rate:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--rate expects SYMBOL=TRADES_PER_SECOND, got {item!r}")
        try:
            rate = float(value)
        except ValueError:
            rate = math.nan
        if not math.isfinite(rate):
            raise SystemExit(f"--rate expects SYMBOL=TRADES_PER_SECOND with a number, got {item!r}")
        rates[name.strip().upper()] = rate
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    unknown = set(rates) - set(symbols)
    if unknown:
        raise SystemExit(f"--rate names symbols that are not in --symbols: {', '.join(sorted(unknown))}")
    if args.quiet_symbols < 0:
        raise SystemExit(f"--quiet-symbols must be >= 0, got {args.quiet_symbols}")
    if args.archive_delay_minutes < 0:
        raise SystemExit(f"--archive-delay-minutes must be >= 0, got {args.archive_delay_minutes}")
    origin_ms = None
    if args.history_from:
        try:
            origin = dt.datetime.fromisoformat(args.history_from)
        except ValueError:
            origin = None
        if origin is None or (origin.tzinfo is not None and origin.utcoffset() != dt.timedelta(0)):
            raise SystemExit(f"--history-from expects a UTC time YYYY-MM-DD[THH:MM], got {args.history_from!r}")
        origin_ms = int(origin.replace(tzinfo=dt.UTC).timestamp() * 1000)
        if origin_ms > time.time() * 1000:
            raise SystemExit(f"--history-from must be in the past, got {args.history_from!r}")
    try:
        configs = [symbol_config(s, **({"trades_per_second": rates[s]} if s in rates else {})) for s in symbols]
    except ValueError as exc:
        raise SystemExit(f"bad simulator configuration: {exc}") from None
    config = SimulatorConfig(
        symbols=configs,
        seed=args.seed,
        history_minutes=args.history_minutes,
        origin_ms=origin_ms,
        hostile=args.hostile,
        listed=parse_listed(args.listed, symbols),
        quiet_symbols=args.quiet_symbols,
        weight_per_minute=args.weight_per_minute,
        archive_delay_minutes=args.archive_delay_minutes,
        archive_dir=args.archive_cache_dir,
        stream=StreamSettings(
            ping_interval_s=args.ping_interval,
            pong_timeout_s=args.pong_timeout,
            max_lifetime_s=args.max_connection_lifetime,
            trade_shape=args.trade_shape,
        ),
    )
    config.halted = parse_listed(args.halted, [c.symbol for c in config.all_symbols()], "--halted")
    return config


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s simulator: %(message)s")
    args = parse_args(argv)
    sim = Simulator(build_config(args), host=args.host, port=args.port)

    async def run() -> None:
        await sim.start_async()
        print(
            f"Binance simulator listening: REST {sim.rest_url}/api/v3  streams {sim.ws_url}/ws/<stream>  "
            f"archive {sim.archive_url}/data/spot/daily/  symbols {','.join(sim.market.symbols)}",
            flush=True,
        )
        async with sim._server:
            await sim._server.serve_forever()

    def terminated(signum, _frame):
        raise SystemExit(128 + signum)  # through the finally below: the archive's cache folder goes too

    signal.signal(signal.SIGTERM, terminated)
    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"the simulator could not listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        sim.archive.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
