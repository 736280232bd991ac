"""Each symbol's first trade for the gap backfill (``first_trades.py``): looked up once, kept in the cursor's dict,
asked again for a symbol that had not traded; a failed lookup holds only its symbol. A fake client, no exchange."""

from crypto_assets.defs.raw.first_trades import LOOKUP_BUDGET_S, NOT_TRADED_RECHECK_S, symbol_starts
from crypto_assets.exchange.errors import ExchangeUnreachable
from crypto_assets.exchange.models import Trade
from crypto_assets.minutes import MINUTE_MS

M0 = 1_767_225_600_000
NOW = M0 + 100 * MINUTE_MS


class FakeClient:
    def __init__(self, firsts: dict, calls: list):
        self.firsts, self.calls, self.closed = firsts, calls, False

    def first_trade(self, symbol: str) -> Trade | None:
        self.calls.append(symbol)
        first = self.firsts[symbol]
        if isinstance(first, Exception):
            raise first
        return first

    def close(self) -> None:
        self.closed = True


class Exchange:
    """The client factory: counts the clients made."""

    def __init__(self, firsts: dict):
        self.firsts, self.calls, self.clients = firsts, [], []

    def __call__(self) -> FakeClient:
        self.clients.append(FakeClient(self.firsts, self.calls))
        return self.clients[-1]


def trade(symbol: str, trade_id: int, at: int) -> Trade:
    return Trade(symbol, trade_id, "1", "1", at, False)


def starts(known, exchange, *, now=NOW, window_start=M0 + 40 * MINUTE_MS, symbols=("OLD", "NEW", "QUIET"), **kw):
    infos, warnings = [], []
    out = symbol_starts(
        known, list(symbols), now, window_start, exchange, info=infos.append, warning=warnings.append, **kw
    )
    return out, infos, warnings


def test_looked_up_once_and_kept():
    exchange = Exchange(
        {"OLD": trade("OLD", 7, M0 + 5_000), "NEW": trade("NEW", 0, M0 + 70 * MINUTE_MS + 1_234), "QUIET": None}
    )
    known: dict = {}
    (found, not_ready), infos, _ = starts(known, exchange)
    # the window's start, or the first trade's minute when later; a symbol that has not traded has no start
    assert found == {"OLD": M0 + 40 * MINUTE_MS, "NEW": M0 + 70 * MINUTE_MS}
    assert not_ready == ["QUIET: has not traded yet (asked at 2026-01-01T01:40:00.000Z)"]
    assert known == {
        "OLD": {"id": 7, "time_ms": M0 + 5_000},
        "NEW": {"id": 0, "time_ms": M0 + 70 * MINUTE_MS + 1_234},
        "QUIET": {"none_checked_ms": NOW},
    }
    assert exchange.calls == ["OLD", "NEW", "QUIET"] and len(exchange.clients) == 1 and exchange.clients[0].closed
    assert "NEW: first trade 0 at 2026-01-01T01:10:01.234Z" in infos and "QUIET: has not traded yet" in infos

    # the next tick asks nothing (no client at all) ...
    (again, _), _, _ = starts(known, exchange, now=NOW + 60_000)
    assert again == found and exchange.calls == ["OLD", "NEW", "QUIET"] and len(exchange.clients) == 1
    # ... until the symbol that had not traded is due to be asked again
    exchange.firsts["QUIET"] = trade("QUIET", 0, NOW + 5 * MINUTE_MS)
    (later, _), _, _ = starts(known, exchange, now=NOW + NOT_TRADED_RECHECK_S * 1000)
    assert exchange.calls[3:] == ["QUIET"] and later["QUIET"] == NOW + 5 * MINUTE_MS


def test_a_failed_lookup_holds_only_its_symbol_and_is_tried_again():
    exchange = Exchange(
        {"OLD": ExchangeUnreachable("http://127.0.0.1:9", "connection refused"), "NEW": trade("NEW", 0, M0)}
    )
    known: dict = {}
    (found, not_ready), _, warnings = starts(known, exchange, symbols=("OLD", "NEW"))
    assert set(found) == {"NEW"} and "OLD" not in known
    assert not_ready[0].startswith("OLD: first trade unknown (lookup failed: ")
    assert "its gaps wait, the lookup is tried again next tick" in warnings[0]
    exchange.firsts["OLD"] = trade("OLD", 1, M0)
    (found, not_ready), _, _ = starts(known, exchange, symbols=("OLD", "NEW"))
    assert set(found) == {"OLD", "NEW"} and not not_ready and exchange.calls == ["OLD", "NEW", "OLD"]


def test_the_lookups_of_one_tick_stop_after_their_budget():
    exchange = Exchange({"OLD": trade("OLD", 1, M0), "NEW": trade("NEW", 0, M0), "QUIET": None})
    clock = iter([0.0, 0.0, LOOKUP_BUDGET_S + 1, LOOKUP_BUDGET_S + 2])  # the budget is spent after OLD
    (found, not_ready), _, _ = starts({}, exchange, monotonic=lambda: next(clock))
    assert set(found) == {"OLD"} and exchange.calls == ["OLD"]
    assert [t.split(":")[0] for t in not_ready] == ["NEW", "QUIET"] and "next tick" in not_ready[0]
