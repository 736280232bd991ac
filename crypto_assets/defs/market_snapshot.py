"""`market_snapshot`: the interim "trades are flowing" view, refreshed every minute by a schedule."""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetExecutionContext,
    DefaultScheduleStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
)

from crypto_assets.defs.resources import ExchangeResource
from crypto_assets.exchange.rest import ExchangeError, ExchangeUnreachable

TRADES_PER_SYMBOL = 50
TABLE_ROWS = 20
TRADE_FIELDS = ("id", "price", "qty", "time", "isBuyerMaker")


@asset(
    group_name="preview",
    kinds={"python"},
    description=(
        "Interim preview: the most recent trades of every configured symbol, fetched over the exchange's REST API "
        "(GET /api/v3/trades) and shown as metadata (last price, last trade id and time, and a table of the latest "
        "trades). It shows that trades are flowing until the raw_trades assets and the live streamer land; it "
        "stores nothing and is not a complete record of trades."
    ),
)
def market_snapshot(context: AssetExecutionContext, exchange: ExchangeResource) -> MaterializeResult:
    trades_by_symbol: dict[str, list[dict[str, Any]]] = {}
    with exchange.rest_client() as client:
        for symbol in exchange.symbols:
            try:
                rows = client.recent_trades(symbol, limit=TRADES_PER_SYMBOL)
            except ExchangeUnreachable as exc:
                raise Failure(description=f"Exchange unreachable: {exc}") from None
            except ExchangeError as exc:
                raise Failure(description=f"Exchange refused the trades request for {symbol}: {exc}") from None
            trades_by_symbol[symbol] = [_check_row(row, symbol, exchange.rest_url) for row in rows]
            if not rows:
                context.log.warning(f"{exchange.rest_url} returned no recent trades for {symbol}")
    return MaterializeResult(metadata=snapshot_metadata(trades_by_symbol))


def snapshot_metadata(trades_by_symbol: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per symbol: trades fetched and, when there are any, last price / trade id / trade time; plus a table."""
    metadata: dict[str, Any] = {}
    latest: list[tuple[str, dict[str, Any]]] = []
    for symbol, rows in trades_by_symbol.items():
        metadata[f"{symbol}_trades_fetched"] = MetadataValue.int(len(rows))
        if not rows:
            continue
        last = max(rows, key=lambda row: row["id"])
        metadata[f"{symbol}_last_price"] = MetadataValue.float(float(last["price"]))
        metadata[f"{symbol}_last_trade_id"] = MetadataValue.int(last["id"])
        metadata[f"{symbol}_last_trade_time"] = MetadataValue.text(utc_iso(last["time"]))
        latest.extend((symbol, row) for row in rows)
    latest.sort(key=lambda item: (item[1]["time"], item[1]["id"]), reverse=True)
    metadata["latest_trades"] = MetadataValue.md(trades_table(latest[:TABLE_ROWS]))
    return metadata


def trades_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        "| trade time (UTC) | symbol | trade id | price | quantity | taker side |",
        "|---|---|---:|---:|---:|---|",
    ]
    for symbol, row in rows:
        taker_side = "sell" if row["isBuyerMaker"] else "buy"
        lines.append(f"| {utc_iso(row['time'])} | {symbol} | {row['id']} | {row['price']} | {row['qty']} | {taker_side} |")
    if not rows:
        lines.append("| (no trades returned) | | | | | |")
    return "\n".join(lines)


def utc_iso(epoch_ms: int) -> str:
    """Binance trade time (milliseconds since the epoch) as ISO 8601 UTC, e.g. 2017-07-12T13:19:09.590+00:00."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _check_row(row: Any, symbol: str, rest_url: str) -> dict[str, Any]:
    if not isinstance(row, dict) or any(field not in row for field in TRADE_FIELDS):
        raise Failure(
            description=f"{rest_url} returned a {symbol} trade row without the fields {TRADE_FIELDS}: {str(row)[:200]}"
        )
    return row


market_snapshot_every_minute = ScheduleDefinition(
    name="market_snapshot_every_minute",
    target=market_snapshot,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Refreshes the market_snapshot preview every minute, so trades show up under `dagster dev` unprompted.",
)
