"""The symbol universe: who joins, leaves and halts (pure), resolved from a real simulator's exchangeInfo, kept in the
lake, and loaded while the exchange is unreachable."""

import pytest

from binance_simulator.market import symbol_config
from binance_simulator.server import Simulator, SimulatorConfig
from crypto_assets.exchange.models import SymbolListing
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.ingest.universe import (
    Selection,
    UniverseUnavailable,
    kept,
    load_universe,
    merge,
    shard_of,
)
from crypto_assets.lake import LocalLake

USDT = Selection(quote_asset="USDT")


def listing(symbol: str, status: str = "TRADING") -> SymbolListing:
    quote = "BTC" if symbol.endswith("BTC") else "USDT"
    return SymbolListing(symbol, status, symbol.removesuffix(quote), quote)


def test_a_quote_selection_follows_listings_delistings_and_halts():
    first = merge(
        USDT, None, [listing("BTCUSDT"), listing("ETHUSDT"), listing("ETHBTC"), listing("NEWUSDT", "BREAK")], 1
    )
    assert first.streamed() == ["BTCUSDT", "ETHUSDT"]  # ETHBTC is quoted in BTC; NEWUSDT is not open yet

    later = merge(USDT, first, [listing("BTCUSDT", "HALT"), listing("NEWUSDT"), listing("ETHBTC")], 2)
    assert later.defined() == ["BTCUSDT", "ETHUSDT", "NEWUSDT"]  # ETHUSDT left (no longer listed): its asset stays
    assert later.streamed() == ["BTCUSDT", "NEWUSDT"]  # a halted symbol is streamed (its empty minutes recorded)
    assert later.chased() == ["NEWUSDT"]  # and not chased as gaps
    assert later.members["ETHUSDT"].left_ms == 2 and later.members["NEWUSDT"].since_ms == 2

    back = merge(USDT, later, [listing("BTCUSDT"), listing("ETHUSDT"), listing("NEWUSDT")], 3)
    assert back.chased() == ["BTCUSDT", "ETHUSDT", "NEWUSDT"] and back.members["ETHUSDT"].left_ms is None


def test_an_explicit_list_keeps_its_order_and_its_typos():
    """A delisted explicit symbol leaves; one the exchange does not list at all stays, for the stream to refuse it
    by name (a typo is no delisting)."""
    selection = Selection(("SOLUSDT", "BTCUSDT", "BTCUSTD"))
    universe = merge(selection, None, [listing("BTCUSDT"), listing("SOLUSDT", "BREAK"), listing("ETHUSDT")], 1)
    assert universe.defined() == ["SOLUSDT", "BTCUSDT", "BTCUSTD"]
    assert universe.streamed() == ["BTCUSDT", "BTCUSTD"]
    assert universe.chased() == ["BTCUSDT"]


def test_shards_split_by_a_stable_hash():
    symbols = [f"S{i:03d}USDT" for i in range(300)]
    shards = [shard_of(symbols, i, 3) for i in range(3)]
    assert sorted(sum(shards, [])) == symbols and all(60 < len(s) < 140 for s in shards)
    # a listing joins one shard and moves no other symbol
    assert all(set(shard_of([*symbols, "NEWUSDT"], i, 3)) - set(shards[i]) <= {"NEWUSDT"} for i in range(3))


@pytest.fixture(scope="module")
def exchange():
    config = SimulatorConfig(
        symbols=[symbol_config("BTCUSDT"), symbol_config("ETHUSDT"), symbol_config("ETHBTC")], history_minutes=2
    )
    with Simulator(config) as sim:
        yield sim


def test_resolved_from_exchange_info_kept_in_the_lake_and_loaded_without_the_exchange(exchange, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    universe = load_universe(USDT, lake, lambda: BinanceRestClient(exchange.rest_url))
    assert universe.streamed() == ["BTCUSDT", "ETHUSDT"] and universe.resolved_ms > 0
    assert kept(USDT, lake) == universe  # in the lake, under _state/

    def unreachable():
        return BinanceRestClient("http://127.0.0.1:1", max_attempts=1)

    # stale (max_age 0) and the exchange unreachable: the kept universe, however old
    assert load_universe(USDT, lake, unreachable, max_age_s=0) == universe
    # never resolved and unreachable: a clear error naming the selection, the cause and the lake
    with pytest.raises(UniverseUnavailable, match=r"CRYPTO_SYMBOLS=quote:USDT .*127\.0\.0\.1:1.*no resolved universe"):
        load_universe(USDT, LocalLake(tmp_path / "empty"), unreachable)
    # an explicit list needs no exchange
    explicit = load_universe(Selection(("BTCUSDT",)), LocalLake(tmp_path / "empty"), unreachable)
    assert explicit.streamed() == ["BTCUSDT"]
