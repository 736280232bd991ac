"""Each symbol's first trade, as the gap backfill needs it: minutes before a symbol's first trade (before its listing)
are no gaps.

The first trade is the exchange's (``BinanceRestClient.first_trade``); what is kept of it lives in the gap sensor's
cursor (``GapCursor.first_trades``), the one state Dagster keeps for a sensor between ticks (a tick may run in a fresh
process, and resources are built anew for each): it is looked up once per symbol, and for a symbol that has not
traded yet again every ``NOT_TRADED_RECHECK_S``. The raw op does not keep it: it asks at most once per run, and only
when a range's first minute has no kline (``stored_minutes``). A failed lookup is logged and tried again next tick,
and only that symbol waits for it; the lookups of one tick stop after ``LOOKUP_BUDGET_S`` (a tick must end within
60 s), with few attempts each, on the machine's shared REST weight budget like every REST caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable
from crypto_assets.exchange.models import Trade
from crypto_assets.minutes import floor_minute, utc_text

NOT_TRADED_RECHECK_S = 600  # a symbol without any trade yet: its first trade is asked for again this often
LOOKUP_BUDGET_S = 20.0  # first-trade lookups of one tick stop after this long (a tick must end within 60 s)
LOOKUP_TIMEOUT_S = 5.0
LOOKUP_ATTEMPTS = 2


class FirstTradeClient(Protocol):  # the REST client's part used here (a context manager)
    def first_trade(self, symbol: str) -> Trade | None: ...
    def close(self) -> None: ...


def symbol_starts(
    known: dict[str, dict[str, int]],
    symbols: Sequence[str],
    now_ms: int,
    window_start: int,
    client_factory: Callable[[], FirstTradeClient],
    *,
    info: Callable[[str], None],
    warning: Callable[[str], None],
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, int], list[str]]:
    """Each symbol's first minute that can be a gap: the window's start or its first trade's minute, whichever is
    later. ``known`` (the cursor's first trades: symbol -> {"id", "time_ms"}, or {"none_checked_ms"}) is looked up
    where a symbol is missing from it or its "not traded yet" is older than ``NOT_TRADED_RECHECK_S``, and updated.
    Symbols whose first trade is not known (lookup failed or left for the next tick) or that have not traded yet
    are left out, with a text saying so. ``client_factory`` is called once, at the first lookup."""
    lookups_end = monotonic() + LOOKUP_BUDGET_S
    client: FirstTradeClient | None = None
    starts: dict[str, int] = {}
    not_ready: list[str] = []
    try:
        for symbol in symbols:
            first = known.get(symbol)
            if needs_lookup(first, now_ms):
                if monotonic() > lookups_end:
                    not_ready.append(
                        f"{symbol}: first trade not looked up yet (this tick's lookups took "
                        f"{LOOKUP_BUDGET_S:g} s): next tick"
                    )
                    continue
                try:
                    if client is None:
                        client = client_factory()
                    trade = client.first_trade(symbol)
                except (ExchangeError, ExchangeUnreachable, OSError) as exc:
                    warning(
                        f"{symbol}: could not look up its first trade ({exc}); its gaps wait, "
                        f"the lookup is tried again next tick"
                    )
                    not_ready.append(f"{symbol}: first trade unknown (lookup failed: {exc})")
                    continue
                first = (
                    {"id": trade.trade_id, "time_ms": trade.trade_time}
                    if trade is not None
                    else {"none_checked_ms": now_ms}
                )
                known[symbol] = first
                info(
                    f"{symbol}: first trade {first['id']} at {utc_text(first['time_ms'])}"
                    if trade is not None
                    else f"{symbol}: has not traded yet"
                )
            assert first is not None
            if "time_ms" not in first:
                not_ready.append(f"{symbol}: has not traded yet (asked at {utc_text(first['none_checked_ms'])})")
                continue
            starts[symbol] = max(window_start, floor_minute(first["time_ms"]))
    finally:
        if client is not None:
            client.close()
    return starts, not_ready


def needs_lookup(first: dict[str, int] | None, now_ms: int) -> bool:
    """Not known yet, or known not to have traded ``NOT_TRADED_RECHECK_S`` ago or longer."""
    if first is None:
        return True
    return "time_ms" not in first and now_ms - first.get("none_checked_ms", 0) >= NOT_TRADED_RECHECK_S * 1000
