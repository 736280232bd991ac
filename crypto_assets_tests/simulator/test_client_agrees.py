"""The client's table of Binance endpoints (``crypto_assets.exchange.endpoints``) and the simulator's own
(``binance_simulator.endpoints``) agree entry by entry: paths, REQUEST_WEIGHTs, the row limit and the stream
channels, the legal range of a symbol parameter. Each side keeps its own copy, so a wrong entry on one side fails
here instead of being shared."""

from __future__ import annotations

import re

import pytest

from binance_simulator import endpoints as served
from crypto_assets.exchange import endpoints as client

PATHS = ("PING", "TIME", "EXCHANGE_INFO", "TRADES", "HISTORICAL_TRADES", "AGG_TRADES", "KLINES")
CHANNELS = ("TRADE_CHANNEL", "AGG_TRADE_CHANNEL", "KLINE_1M_CHANNEL")


def constants(module) -> dict[str, object]:
    """The module's upper-case names; a compiled pattern as its text (the simulator quotes it, the client matches)."""
    return {
        name: value.pattern if isinstance(value, re.Pattern) else value
        for name, value in vars(module).items()
        if name.isupper()
    }


@pytest.mark.parametrize("name", PATHS + CHANNELS + ("MAX_LIMIT", "LEGAL_SYMBOL_PARAMETER", "AGG_TRADES_MAX_WINDOW_MS"))
def test_the_client_and_the_simulator_declare_the_same(name):
    assert constants(client)[name] == constants(served)[name]


def test_every_constant_both_declare_is_the_same():
    client_constants, served_constants = constants(client), constants(served)
    both = client_constants.keys() & served_constants.keys()
    assert set(PATHS + CHANNELS) <= both
    assert {name: client_constants[name] for name in both} == {name: served_constants[name] for name in both}


def test_the_simulator_serves_every_path_the_client_weighs_and_no_other():
    assert set(served.REST_WEIGHTS) == set(client.REST_WEIGHTS) == {getattr(served, name) for name in PATHS}


@pytest.mark.parametrize("path", sorted(served.REST_WEIGHTS))
def test_each_path_weighs_the_same_for_the_client_and_the_simulator(path):
    # Both tables hold one weight per path: none of these endpoints' weights depends on the request's limit.
    assert isinstance(client.REST_WEIGHTS[path], int) and isinstance(served.REST_WEIGHTS[path], int)
    assert client.REST_WEIGHTS[path] == served.REST_WEIGHTS[path]


def test_the_channels_the_client_subscribes_are_the_ones_the_simulator_streams():
    client_channels = {value for name, value in constants(client).items() if name.endswith("_CHANNEL")}
    assert client_channels == set(served.STREAM_CHANNELS)
