"""The three rules a minute file as stored in the lake is checked against, their one verdict, and its summary. No
Dagster imports.

The rules look at what was actually written (the table read back from the lake), independently of the proof that
let the minute be written, but with the same rules: each calls the rule functions of ``completeness`` (numbered
there), the neighbouring minutes in the lake standing in for the trades before and after the minute. Dagster shows
them as one asset check per minute partition, ``MINUTE_CHECK`` (``verdict``): one recorded event per minute instead of
one per rule, its metadata naming each rule's result. A rule is a value (``Rule``), carried by every result
(``CheckResult.rule``) and by a failing verdict (``Verdict.failed``): nothing finds a rule in a description's text.
- ``trade_ids_dense``: rules 2, 3, 4 and 6: ids strictly consecutive inside the minute, and continuous with the
  neighbouring minutes in the lake (the last id of the nearest earlier minute + 1 = this minute's first id; empty
  minutes in between are skipped, a missing file breaks the chain and leaves that side unchecked);
- ``agrees_with_kline``: rule 5: the exchange's closed 1m kline has the same trade count and base volume (exact),
  and the same first / last trade id when it carries them (stream klines do, REST klines do not); an empty minute
  the ids run on across needs no kline (rule 6);
- ``values_sane``: rule 1 (every trade_time inside the minute), and the file's own values: price > 0, qty > 0, no
  duplicate trade id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crypto_assets.exchange.models import Kline
from crypto_assets.ingest.completeness import (
    agrees_with_kline,
    decimal_text,
    dense_ids,
    empty_minute,
    end_boundary,
    inside_minute,
    kline_needed,
    minute_name,
    start_boundary,
)
from crypto_assets.lake.schema import quote_amounts


class Rule(StrEnum):
    """The three rules of a stored minute; the value is the rule's name in the check's metadata."""

    DENSE_IDS = "trade_ids_dense"
    KLINE_AGREEMENT = "agrees_with_kline"
    SANE_VALUES = "values_sane"


RULE_DESCRIPTIONS = {
    Rule.DENSE_IDS: "Trade ids run without holes inside the minute and continue from the previous minute in the lake "
    "to the next one.",
    Rule.KLINE_AGREEMENT: "The minute agrees with the exchange's closed 1m kline: trade count, base volume (exact), "
    "and first / last trade id when the kline carries them.",
    Rule.SANE_VALUES: "price > 0, qty > 0, every trade_time inside the minute, no duplicate trade id.",
}
MINUTE_CHECK = "minute_complete"  # the one asset check of a minute partition: every rule holds
MINUTE_CHECK_DESCRIPTION = "The stored minute is complete and exact: " + " ".join(
    f"{name}: {text}" for name, text in RULE_DESCRIPTIONS.items()
)


@dataclass(frozen=True)
class CheckResult:
    rule: Rule
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


def check_ids(
    minute_start_ms: int, table: pa.Table, prev_last_id: int | None, next_first_id: int | None
) -> CheckResult:
    """Rules 2, 3, 4 and 6 of ``completeness`` on the stored file. ``prev_last_id``: last trade id of the nearest
    earlier non-empty minute in the lake with no missing file between (None: unknown); ``next_first_id``: first id
    of the nearest later one (None: unknown). An unknown neighbour leaves its boundary unchecked."""
    name = minute_name(minute_start_ms)
    ids = _ids(table)
    first = int(ids[0]) if ids.size else None
    last = int(ids[-1]) if ids.size else None
    problems = dense_ids(minute_start_ms, ids)
    if ids.size:
        problems += start_boundary(minute_start_ms, first, prev_trade_id=prev_last_id, required=False)
        problems += end_boundary(minute_start_ms, last, next_trade_id=next_first_id, required=False)
    else:
        problems += empty_minute(minute_start_ms, prev_trade_id=prev_last_id, next_trade_id=next_first_id)
    sides = [side for side, known in (("previous", prev_last_id), ("next", next_first_id)) if known is None]
    note = f" ({' and '.join(sides)} neighbour not in the lake: that side unchecked)" if sides else ""
    metadata = {"rows": int(ids.size), "previous_last_id": prev_last_id, "next_first_id": next_first_id}
    if problems:
        return CheckResult(Rule.DENSE_IDS, False, _described(name, problems), metadata)
    return CheckResult(
        Rule.DENSE_IDS, True, f"{name}: {ids.size} dense trade ids, continuous with its neighbours{note}", metadata
    )


def check_kline(
    minute_start_ms: int,
    table: pa.Table,
    kline: Kline | None,
    prev_last_id: int | None = None,
    next_first_id: int | None = None,
) -> CheckResult:
    """Rule 5 of ``completeness`` on the stored file. Without a kline it fails, unless the minute has no trade and
    the ids run on across it (``prev_last_id`` / ``next_first_id`` as for ``check_ids``; rule 6 needs no kline)."""
    name = minute_name(minute_start_ms)
    if kline is None and not kline_needed(table.num_rows, prev_last_id, next_first_id):
        return CheckResult(
            Rule.KLINE_AGREEMENT,
            True,
            f"{name}: no closed 1m kline to compare with, and none needed: the "
            f"minute has no trade and the ids run on across it "
            f"({prev_last_id} -> {next_first_id})",
        )
    ids = _ids(table)
    problems = agrees_with_kline(
        minute_start_ms,
        kline,
        count=table.num_rows,
        volume=_qty_sum(table),
        first_id=int(ids[0]) if ids.size else None,
        last_id=int(ids[-1]) if ids.size else None,
    )
    if kline is None:
        return CheckResult(Rule.KLINE_AGREEMENT, False, _described(name, problems))
    metadata = {
        "kline_trade_count": kline.trade_count,
        "kline_volume": kline.volume,
        "kline_first_id": kline.first_trade_id,
        "kline_last_id": kline.last_trade_id,
    }
    if problems:
        return CheckResult(Rule.KLINE_AGREEMENT, False, _described(name, problems), metadata)
    return CheckResult(
        Rule.KLINE_AGREEMENT,
        True,
        f"{name}: {kline.trade_count} trades and volume {kline.volume}, as the exchange's kline says",
        metadata,
    )


def check_values(minute_start_ms: int, table: pa.Table) -> CheckResult:
    """Rule 1 of ``completeness`` on the stored file, and the file's own values: price > 0, qty > 0, no duplicate
    trade id."""
    name = minute_name(minute_start_ms)
    ids = _ids(table)
    problems = inside_minute(minute_start_ms, ids, table.column("trade_time").cast(pa.int64()).to_numpy())
    for column in ("price", "qty"):
        bad = pc.sum(pc.less_equal(table.column(column), pa.scalar(0, table.schema.field(column).type))).as_py()
        if bad:
            problems.append(f"{name}: {bad} trade(s) with {column} <= 0")
    duplicates = int(ids.size - np.unique(ids).size)
    if duplicates:
        problems.append(f"{name}: {duplicates} duplicate trade id(s)")
    if problems:
        return CheckResult(Rule.SANE_VALUES, False, _described(name, problems))
    return CheckResult(
        Rule.SANE_VALUES,
        True,
        f"{name}: {table.num_rows} trades with positive price and qty, all inside the minute, no duplicate id",
    )


@dataclass(frozen=True)
class Verdict:
    """The one check result of a stored minute: passed when every rule holds. ``rules``: each rule's result;
    ``failed``: the rules that do not hold, in order; ``reasons``: their descriptions."""

    passed: bool
    description: str
    rules: dict[Rule, bool]
    failed: tuple[Rule, ...]
    reasons: tuple[str, ...]
    metadata: dict[str, int | str | None]  # the failed rules' figures (neighbour ids, the kline's count and volume)


def verdict(results: tuple[CheckResult, ...]) -> Verdict:
    """The rules' results as one verdict. A passing verdict keeps only the rule names (what every minute records
    stays small); a failing one keeps the failed rules' descriptions and figures."""
    failed = [r for r in results if not r.passed]
    rules = {r.rule: r.passed for r in results}
    if not failed:
        return Verdict(True, "every rule holds: " + ", ".join(rules), rules, (), (), {})
    metadata: dict[str, int | str | None] = {}
    for result in failed:
        metadata.update({k: v for k, v in result.metadata.items() if v is not None})
    reasons = tuple(r.description for r in failed)
    return Verdict(False, "; ".join(reasons), rules, tuple(r.rule for r in failed), reasons, metadata)


def _described(name: str, problems: list[str]) -> str:
    """The problems of one check as one description naming the minute once: 'minute X: p1; p2'."""
    prefix = f"{name}: "
    return prefix + "; ".join(p[len(prefix) :] if p.startswith(prefix) else p for p in problems)


def _ids(table: pa.Table) -> np.ndarray:
    return table.column("trade_id").to_numpy()


def _qty_sum(table: pa.Table) -> Decimal:
    """The exact sum of qty (0 without trades)."""
    total = pc.sum(table.column("qty")).as_py()
    return Decimal(total) if total is not None else Decimal(0)


def _decimal_sum(column: pa.ChunkedArray) -> str:
    total = pc.sum(column).as_py()
    return decimal_text(Decimal(total) if total is not None else Decimal(0))
