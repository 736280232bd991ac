"""CRYPTO_SYMBOLS_PER_CONNECTION: how many symbols the live stream carries per WebSocket connection, and how the
value reaches the capture process."""

import msgspec
import pytest

from crypto_assets.defs.raw.resources import ExchangeResource
from crypto_assets.exchange.stream import DEFAULT_SYMBOLS_PER_CONNECTION
from crypto_assets.ingest.capture_process import CaptureConfig
from crypto_assets.settings import Settings, SettingsError


def settings(**environ):
    return Settings.from_env(environ, dotenv_path=None)


def test_512_symbols_per_connection_by_default_as_the_stream_itself():
    assert settings().symbols_per_connection == 512 == DEFAULT_SYMBOLS_PER_CONNECTION
    assert settings(CRYPTO_SYMBOLS_PER_CONNECTION=" 2 ").symbols_per_connection == 2


@pytest.mark.parametrize(
    ("value", "message"), [("0", "between 1 and 512"), ("513", "between 1 and 512"), ("x", "whole number")]
)
def test_bad_values_are_refused_naming_the_variable(value, message):
    with pytest.raises(SettingsError, match=message) as excinfo:
        settings(CRYPTO_SYMBOLS_PER_CONNECTION=value)
    assert "CRYPTO_SYMBOLS_PER_CONNECTION" in str(excinfo.value)


def test_the_exchange_resource_carries_it_and_the_capture_config_defaults_to_512():
    assert ExchangeResource.from_settings(settings(CRYPTO_SYMBOLS_PER_CONNECTION="3")).symbols_per_connection == 3
    # a configuration written without the field (an older op) still decodes
    fields = {
        "ws_url": "ws://h:1",
        "rest_url": "http://h:1",
        "budget_dir": "/b",
        "symbols": ["BTCUSDT"],
        "lake_url": "/l",
        "endpoint_url": None,
        "spool_dir": "/s",
        "spool_max_mb": 1,
    }
    assert msgspec.json.decode(msgspec.json.encode(fields), type=CaptureConfig).symbols_per_connection == 512
