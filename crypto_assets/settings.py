"""The project's public configuration contract, read from environment variables (and a `.env` file).

| variable          | default                              |
|-------------------|--------------------------------------|
| BINANCE_WS_URL    | wss://stream.binance.com:9443        |
| BINANCE_REST_URL  | https://api.binance.com              |
| BINANCE_ARCHIVE_URL | https://data.binance.vision        |
| CRYPTO_SYMBOLS    | BTCUSDT,ETHUSDT,SOLUSDT (or quote:USDT: every pair quoted in USDT) |
| CRYPTO_STREAM_SHARDS | 1                                 |
| CRYPTO_LAKE_URL   | <project root>/.lake                 |
| AWS_ENDPOINT_URL  | unset (AWS's own endpoints)          |
| CRYPTO_PARTITION_DAYS | 30                               |
| CRYPTO_GAP_LOOKBACK_HOURS | 24                           |
| CRYPTO_GAP_SETTLE_SECONDS | 60                           |
| CRYPTO_GAP_MAX_RUNS   | 2                                |
| CRYPTO_SPOOL_DIR      | <DAGSTER_HOME>/lake_spool (DAGSTER_HOME defaulting to <project root>/.dagster_home) |
| CRYPTO_SPOOL_MAX_MB   | 1024                             |
| CRYPTO_SYMBOLS_PER_CONNECTION | 512 (1024 streams, Binance's most per connection) |
| CRYPTO_WEIGHT_BUDGET_DIR | <DAGSTER_HOME>/weight_budget (DAGSTER_HOME defaulting to <project root>/.dagster_home) |
| CRYPTO_METRICS_HOST | 127.0.0.1 (the address the capture process serves its Prometheus metrics on) |
| CRYPTO_METRICS_PORT | 9464 (shard i of CRYPTO_STREAM_SHARDS on 9464 + i; 0 = no metrics) |
| DBT_DUCKDB_PATH   | dbt_crypto_pipeline/.dbt/crypto.duckdb (relative paths from dbt_crypto_pipeline/) |

A variable that is unset or blank takes its default. A `.env` file in the project root fills in variables that
the real environment does not set (the real environment wins). No Dagster imports here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values, load_dotenv

from crypto_assets.exchange.endpoints import SYMBOL_PATTERN
from crypto_assets.lake import normalize_lake_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOTENV_PATH = PROJECT_ROOT / ".env"

DEFAULT_WS_URL = "wss://stream.binance.com:9443"
DEFAULT_REST_URL = "https://api.binance.com"
DEFAULT_ARCHIVE_URL = "https://data.binance.vision"  # Binance's public daily archives (/data/spot/daily/...)
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEFAULT_LAKE_URL = str(PROJECT_ROOT / ".lake")
DEFAULT_PARTITION_DAYS = 30
MAX_PARTITION_DAYS = 366  # the UI loads ~1.2 s per 30 days of minute partitions (bench/partitions_view.py)
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"  # what `make dev` / `make demo` use when none is set
SPOOL_FOLDER = "lake_spool"  # under DAGSTER_HOME unless CRYPTO_SPOOL_DIR says otherwise
DEFAULT_SPOOL_DIR = str(DEFAULT_DAGSTER_HOME / SPOOL_FOLDER)
DEFAULT_SPOOL_MAX_MB = 1024
# the live stream's symbols per WebSocket connection: @trade and @kline_1m each, Binance carries 1024 streams at most
DEFAULT_SYMBOLS_PER_CONNECTION = MAX_SYMBOLS_PER_CONNECTION = 512
WEIGHT_BUDGET_FOLDER = "weight_budget"  # under DAGSTER_HOME unless CRYPTO_WEIGHT_BUDGET_DIR says otherwise
DEFAULT_WEIGHT_BUDGET_DIR = str(DEFAULT_DAGSTER_HOME / WEIGHT_BUDGET_FOLDER)
# the capture process's Prometheus metrics (crypto_assets/ingest/metrics.py): local by default, 0.0.0.0 in deploy/
DEFAULT_METRICS_HOST = "127.0.0.1"
DEFAULT_METRICS_PORT = 9464  # the port of shard 0; shard i listens on port + i
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_crypto_pipeline"
DEFAULT_DUCKDB_PATH = str(DBT_PROJECT_DIR / ".dbt" / "crypto.duckdb")


class SettingsError(ValueError):
    """A configuration value is invalid. The message names the variable and the bad value."""


@dataclass(frozen=True)
class Settings:
    binance_ws_url: str
    binance_rest_url: str
    symbols: tuple[str, ...]
    lake_url: str
    aws_endpoint_url: str | None = None
    partition_days: int = DEFAULT_PARTITION_DAYS
    gap_lookback_hours: int = 24  # how far back the gap sensor looks for minutes to backfill
    gap_settle_seconds: int = 60  # a minute is a gap only this long after its end (the stream records it in ~1 s)
    gap_max_runs: int = 2  # gap backfill runs in flight at once (they share the exchange's REST weight limit)
    spool_dir: str = DEFAULT_SPOOL_DIR  # where stream minutes wait while the lake fails
    spool_max_mb: int = DEFAULT_SPOOL_MAX_MB  # the spool's bound; past it, minutes are left to the gap backfill
    symbols_per_connection: int = DEFAULT_SYMBOLS_PER_CONNECTION  # the live stream's symbols per connection
    # the REST weight budget's state files, shared by every process on the machine that calls the exchange
    weight_budget_dir: str = DEFAULT_WEIGHT_BUDGET_DIR
    duckdb_path: str = DEFAULT_DUCKDB_PATH  # the warehouse file dbt builds (silver and gold)
    binance_archive_url: str = DEFAULT_ARCHIVE_URL  # Binance's public data site (daily zips of trades and klines)
    # CRYPTO_SYMBOLS=quote:<ASSET>: every pair quoted in it, resolved from exchangeInfo (then ``symbols`` is empty
    # until ``crypto_assets.ingest.universe`` resolves them)
    quote_asset: str | None = None
    stream_shards: int = 1  # streaming runs the symbols are split over (one keep-alive guarantee each)
    metrics_host: str = DEFAULT_METRICS_HOST  # where the capture process serves its Prometheus metrics ...
    metrics_port: int = DEFAULT_METRICS_PORT  # ... on this port (+ the shard's index; 0: no metrics)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] = os.environ,
        dotenv_path: Path | str | None = DEFAULT_DOTENV_PATH,
    ) -> Settings:
        """Read the settings from `environ`, with `dotenv_path` (if it exists) filling in unset variables.

        With the process environment (the default), the `.env` values are loaded into `os.environ` with
        `load_dotenv(override=False)` so that child processes and libraries see them too. With any other mapping
        nothing global is touched: the `.env` values are merged under it. Pass `dotenv_path=None` to ignore `.env`.
        """
        if dotenv_path is not None and Path(dotenv_path).is_file():
            if environ is os.environ:
                load_dotenv(dotenv_path, override=False)
            else:
                file_values = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
                environ = {**file_values, **environ}

        def get(name: str) -> str | None:
            value = environ.get(name)
            return value.strip() if value is not None and value.strip() else None

        aws_endpoint = get("AWS_ENDPOINT_URL")
        return cls(
            binance_ws_url=parse_url("BINANCE_WS_URL", get("BINANCE_WS_URL") or DEFAULT_WS_URL, ("ws", "wss")),
            binance_rest_url=parse_url(
                "BINANCE_REST_URL", get("BINANCE_REST_URL") or DEFAULT_REST_URL, ("http", "https")
            ),
            symbols=parse_symbols(get("CRYPTO_SYMBOLS")) if get("CRYPTO_SYMBOLS") else DEFAULT_SYMBOLS,
            quote_asset=parse_quote_selection(get("CRYPTO_SYMBOLS")),
            stream_shards=parse_int("CRYPTO_STREAM_SHARDS", get("CRYPTO_STREAM_SHARDS"), 1, 1, 64, "shards"),
            lake_url=parse_lake_url(get("CRYPTO_LAKE_URL") or DEFAULT_LAKE_URL),
            aws_endpoint_url=(parse_url("AWS_ENDPOINT_URL", aws_endpoint, ("http", "https")) if aws_endpoint else None),
            partition_days=parse_int(
                "CRYPTO_PARTITION_DAYS",
                get("CRYPTO_PARTITION_DAYS"),
                DEFAULT_PARTITION_DAYS,
                1,
                MAX_PARTITION_DAYS,
                "days",
            ),
            gap_lookback_hours=parse_int(
                "CRYPTO_GAP_LOOKBACK_HOURS", get("CRYPTO_GAP_LOOKBACK_HOURS"), 24, 1, 24 * MAX_PARTITION_DAYS, "hours"
            ),
            gap_settle_seconds=parse_int(
                "CRYPTO_GAP_SETTLE_SECONDS", get("CRYPTO_GAP_SETTLE_SECONDS"), 60, 15, 3600, "seconds"
            ),
            gap_max_runs=parse_int("CRYPTO_GAP_MAX_RUNS", get("CRYPTO_GAP_MAX_RUNS"), 2, 1, 10, "runs"),
            spool_dir=parse_local_path(
                "CRYPTO_SPOOL_DIR",
                get("CRYPTO_SPOOL_DIR") or str(Path(get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME) / SPOOL_FOLDER),
            ),
            spool_max_mb=parse_int(
                "CRYPTO_SPOOL_MAX_MB", get("CRYPTO_SPOOL_MAX_MB"), DEFAULT_SPOOL_MAX_MB, 1, 1024 * 1024, "MB"
            ),
            symbols_per_connection=parse_int(
                "CRYPTO_SYMBOLS_PER_CONNECTION",
                get("CRYPTO_SYMBOLS_PER_CONNECTION"),
                DEFAULT_SYMBOLS_PER_CONNECTION,
                1,
                MAX_SYMBOLS_PER_CONNECTION,
                "symbols",
            ),
            weight_budget_dir=parse_local_path(
                "CRYPTO_WEIGHT_BUDGET_DIR",
                get("CRYPTO_WEIGHT_BUDGET_DIR")
                or str(Path(get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME) / WEIGHT_BUDGET_FOLDER),
            ),
            duckdb_path=parse_local_path(
                "DBT_DUCKDB_PATH", get("DBT_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH, relative_to=DBT_PROJECT_DIR
            ),
            binance_archive_url=parse_url(
                "BINANCE_ARCHIVE_URL", get("BINANCE_ARCHIVE_URL") or DEFAULT_ARCHIVE_URL, ("http", "https")
            ),
            metrics_host=parse_host("CRYPTO_METRICS_HOST", get("CRYPTO_METRICS_HOST") or DEFAULT_METRICS_HOST),
            metrics_port=parse_int(
                "CRYPTO_METRICS_PORT", get("CRYPTO_METRICS_PORT"), DEFAULT_METRICS_PORT, 0, 65535, "(a port, 0 = off)"
            ),
        )


def parse_url(variable: str, value: str, schemes: tuple[str, ...]) -> str:
    """Check that `value` is an absolute URL with one of `schemes` and a host; return it without a trailing slash."""
    expected = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise SettingsError(
            f"{variable}={value!r} is not a valid URL ({exc}); expected {expected}host[:port]"
        ) from None
    if parts.scheme.lower() not in schemes:
        raise SettingsError(f"{variable}={value!r} must start with {expected}")
    if not parts.hostname:
        raise SettingsError(f"{variable}={value!r} has no host; expected {expected}host[:port]")
    if parts.query or parts.fragment:
        raise SettingsError(f"{variable}={value!r} must not carry a query string or fragment")
    return value.rstrip("/")


def parse_host(variable: str, value: str) -> str:
    """An address to listen on: an IPv4 or IPv6 address or a host name (no scheme, port or path)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-]*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*", value):
        raise SettingsError(
            f"{variable}={value!r} is not an address to listen on; expected e.g. 127.0.0.1, 0.0.0.0, :: or a host name"
        )
    return value


def parse_int(variable: str, value: str | None, default: int, low: int, high: int, unit: str) -> int:
    """A whole number of ``unit`` between ``low`` and ``high``; None (unset) gives ``default``."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{variable}={value!r} is not a whole number of {unit}") from None
    if not low <= number <= high:
        raise SettingsError(f"{variable}={value!r} must be between {low} and {high} {unit}")
    return number


def parse_local_path(variable: str, value: str, relative_to: Path = PROJECT_ROOT) -> str:
    """A local path, made absolute (relative paths are taken from ``relative_to``); URLs are refused."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        raise SettingsError(f"{variable}={value!r} must be a local path, not a URL")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (relative_to / path).resolve())


QUOTE_SELECTION = re.compile(r"^quote:([A-Za-z0-9]{2,12})$", re.IGNORECASE)


def parse_quote_selection(value: str | None) -> str | None:
    """``quote:USDT`` -> ``USDT`` (a selection of every pair quoted in that asset); anything else -> None."""
    match = QUOTE_SELECTION.match(value or "")
    return match.group(1).upper() if match else None


def parse_symbols(value: str) -> tuple[str, ...]:
    """Split a comma-separated symbol list: strip, upper-case, validate, drop duplicates keeping order. A quote
    selection (``quote:USDT``) gives no explicit symbol: the universe is resolved from the exchange."""
    if parse_quote_selection(value):
        return ()
    if value.strip().lower().startswith("quote:"):
        raise SettingsError(
            f"CRYPTO_SYMBOLS={value!r} is not a quote selection: expected quote:<ASSET>, e.g. quote:USDT"
        )
    symbols: list[str] = []
    for raw in value.split(","):
        symbol = raw.strip().upper()
        if not symbol:
            continue  # tolerate "BTCUSDT," and "A,,B"; an all-empty list is rejected below
        if not SYMBOL_PATTERN.match(symbol):
            raise SettingsError(
                f"CRYPTO_SYMBOLS contains an invalid symbol {raw.strip()!r}: a symbol is 5 to 20 letters or digits, "
                f"like BTCUSDT (full value: {value!r})"
            )
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise SettingsError(f"CRYPTO_SYMBOLS={value!r} lists no symbol; expected e.g. BTCUSDT,ETHUSDT")
    return tuple(symbols)


def parse_lake_url(value: str) -> str:
    """Accept `s3://bucket[/prefix]`, `file:///abs/path` or a local path (relative paths are taken from the project
    root). Return `s3://bucket/prefix` without a trailing slash, or an absolute local path."""
    try:
        return normalize_lake_url(value, relative_to=PROJECT_ROOT)
    except ValueError as exc:
        raise SettingsError(f"CRYPTO_LAKE_URL={exc}") from None
