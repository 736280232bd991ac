"""The three checks of a minute file as stored in the lake, and its summary. No Dagster imports.

They look at what was actually written (the table read back from the lake), independently of the proof that let
the minute be written:
- ``trade_ids_dense``: ids strictly consecutive inside the minute, and continuous with the neighbouring minutes in
  the lake (the last id of the nearest earlier minute + 1 = this minute's first id; empty minutes in between are
  skipped, a missing file breaks the chain and leaves that side unchecked);
- ``agrees_with_kline``: the exchange's closed 1m kline has the same trade count and base volume (exact), and the
  same first / last trade id when it carries them (stream klines do, REST klines do not);
- ``values_sane``: price > 0, qty > 0, every trade_time inside the minute, no duplicate trade id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.exchange.models import Kline
from crypto_assets.ingest.completeness import MAX_LISTED, decimal_text
from crypto_assets.ingest.minutes import MINUTE_MS, minute_key
from crypto_assets.lake.schema import quote_amounts

DENSE_IDS = "trade_ids_dense"
KLINE_AGREEMENT = "agrees_with_kline"
SANE_VALUES = "values_sane"
CHECK_DESCRIPTIONS = {
    DENSE_IDS: "Trade ids run without holes inside the minute and continue from the previous minute in the lake "
               "to the next one.",
    KLINE_AGREEMENT: "The minute agrees with the exchange's closed 1m kline: trade count, base volume (exact), and "
                     "first / last trade id when the kline carries them.",
    SANE_VALUES: "price > 0, qty > 0, every trade_time inside the minute, no duplicate trade id.",
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    description: str  # what was found, naming the minute
    metadata: dict[str, int | str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class MinuteSummary:
    """What a stored minute holds. Volumes are exact decimal strings; ids are None for a minute without trades."""

    minute_start_ms: int
    rows: int
    first_trade_id: int | None
    last_trade_id: int | None
    base_volume: str
    quote_volume: str  # sum of price x qty, exact (up to 16 decimals)
    source: str  # "stream" (every trade carries received_at), "rest" (none does) or "stream+rest" (a repaired minute)


def summarize(minute_start_ms: int, table: pa.Table) -> MinuteSummary:
    ids = table.column("trade_id")
    received = table.column("received_at")
    return MinuteSummary(
        minute_start_ms=minute_start_ms,
        rows=table.num_rows,
        first_trade_id=pc.min(ids).as_py(),
        last_trade_id=pc.max(ids).as_py(),
        base_volume=_decimal_sum(table.column("qty")),
        quote_volume=_decimal_sum(quote_amounts(table)),
        source=_source(table.num_rows, received.null_count),
    )


def _source(rows: int, from_rest: int) -> str:
    if not rows or from_rest == rows:
        return "rest"
    return "stream" if not from_rest else "stream+rest"


def check_ids(minute_start_ms: int, table: pa.Table, prev_last_id: int | None,
              next_first_id: int | None) -> CheckResult:
    """``prev_last_id``: last trade id of the nearest earlier non-empty minute in the lake with no missing file
    between (None: unknown); ``next_first_id``: first id of the nearest later one (None: unknown)."""
    name = f"minute {minute_key(minute_start_ms)}"
    ids = _ids(table)
    problems: list[str] = []
    breaks = np.nonzero(np.diff(ids) != 1)[0]
    if breaks.size:
        listed = ", ".join(f"{ids[i]} -> {ids[i + 1]}" for i in breaks[:MAX_LISTED])
        more = f" and {breaks.size - MAX_LISTED} more" if breaks.size > MAX_LISTED else ""
        problems.append(f"ids not consecutive: {listed}{more}")
    if ids.size:
        if prev_last_id is not None and ids[0] != prev_last_id + 1:
            problems.append(f"first id {ids[0]} does not follow the previous minute's last id {prev_last_id}")
        if next_first_id is not None and next_first_id != ids[-1] + 1:
            problems.append(f"the next minute starts at id {next_first_id}, not at {ids[-1] + 1}")
    elif prev_last_id is not None and next_first_id is not None and next_first_id != prev_last_id + 1:
        problems.append(f"no trade, but the ids jump across the minute from {prev_last_id} to {next_first_id}")
    sides = [side for side, known in (("previous", prev_last_id), ("next", next_first_id)) if known is None]
    note = f" ({' and '.join(sides)} neighbour not in the lake: that side unchecked)" if sides else ""
    metadata = {"rows": int(ids.size), "previous_last_id": prev_last_id, "next_first_id": next_first_id}
    if problems:
        return CheckResult(DENSE_IDS, False, f"{name}: " + "; ".join(problems), metadata)
    return CheckResult(DENSE_IDS, True, f"{name}: {ids.size} dense trade ids, continuous with its neighbours{note}",
                       metadata)


def check_kline(minute_start_ms: int, table: pa.Table, kline: Kline | None) -> CheckResult:
    name = f"minute {minute_key(minute_start_ms)}"
    if kline is None:
        return CheckResult(KLINE_AGREEMENT, False, f"{name}: no closed 1m kline from the exchange to compare with")
    ids = _ids(table)
    volume = _decimal_sum(table.column("qty"))
    problems: list[str] = []
    if kline.open_time != minute_start_ms:
        problems.append(f"the kline opens at {minute_key(kline.open_time)}")
    if kline.trade_count != table.num_rows:
        problems.append(f"kline trade count {kline.trade_count} != {table.num_rows} rows")
    if Decimal(kline.volume) != Decimal(volume):
        problems.append(f"kline volume {kline.volume} != sum of qty {volume}")
    if ids.size:
        if kline.first_trade_id is not None and kline.first_trade_id != ids[0]:
            problems.append(f"kline first id {kline.first_trade_id} != {ids[0]}")
        if kline.last_trade_id is not None and kline.last_trade_id != ids[-1]:
            problems.append(f"kline last id {kline.last_trade_id} != {ids[-1]}")
    metadata = {"kline_trade_count": kline.trade_count, "kline_volume": kline.volume,
                "kline_first_id": kline.first_trade_id, "kline_last_id": kline.last_trade_id}
    if problems:
        return CheckResult(KLINE_AGREEMENT, False, f"{name}: " + "; ".join(problems), metadata)
    return CheckResult(KLINE_AGREEMENT, True,
                       f"{name}: {kline.trade_count} trades and volume {kline.volume}, as the exchange's kline says",
                       metadata)


def check_values(minute_start_ms: int, table: pa.Table) -> CheckResult:
    name = f"minute {minute_key(minute_start_ms)}"
    problems: list[str] = []
    for column in ("price", "qty"):
        bad = pc.sum(pc.less_equal(table.column(column), pa.scalar(0, table.schema.field(column).type))).as_py()
        if bad:
            problems.append(f"{bad} trade(s) with {column} <= 0")
    times = table.column("trade_time").cast(pa.int64()).to_numpy()
    outside = int(np.count_nonzero((times < minute_start_ms) | (times >= minute_start_ms + MINUTE_MS)))
    if outside:
        problems.append(f"{outside} trade(s) with trade_time outside the minute")
    ids = _ids(table)
    duplicates = int(ids.size - np.unique(ids).size)
    if duplicates:
        problems.append(f"{duplicates} duplicate trade id(s)")
    if problems:
        return CheckResult(SANE_VALUES, False, f"{name}: " + "; ".join(problems))
    return CheckResult(SANE_VALUES, True, f"{name}: {table.num_rows} trades with positive price and qty, all inside "
                                          f"the minute, no duplicate id")


def _ids(table: pa.Table) -> np.ndarray:
    return table.column("trade_id").to_numpy()


def _decimal_sum(column: pa.ChunkedArray) -> str:
    total = pc.sum(column).as_py()
    return decimal_text(Decimal(total) if total is not None else Decimal(0))
