"""CRYPTO_METRICS_HOST and CRYPTO_METRICS_PORT: where the capture process serves its Prometheus metrics, and how the
values reach it (shard i on port + i)."""

import msgspec
import pytest

from crypto_assets.defs.raw.resources import ExchangeResource
from crypto_assets.ingest.capture_process import CaptureConfig
from crypto_assets.settings import Settings, SettingsError


def settings(**environ):
    return Settings.from_env(environ, dotenv_path=None)


def test_on_by_default_on_the_local_address():
    assert (settings().metrics_host, settings().metrics_port) == ("127.0.0.1", 9464)
    got = settings(CRYPTO_METRICS_HOST=" 0.0.0.0 ", CRYPTO_METRICS_PORT="0")
    assert (got.metrics_host, got.metrics_port) == ("0.0.0.0", 0)
    assert settings(CRYPTO_METRICS_HOST="::").metrics_host == "::"
    assert settings(CRYPTO_METRICS_HOST="capture.local").metrics_host == "capture.local"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CRYPTO_METRICS_PORT", "65536", "between 0 and 65535"),
        ("CRYPTO_METRICS_PORT", "-1", "between 0 and 65535"),
        ("CRYPTO_METRICS_PORT", "http", "whole number"),
        ("CRYPTO_METRICS_HOST", "http://0.0.0.0", "not an address"),
        ("CRYPTO_METRICS_HOST", "0.0.0.0:9464 x", "not an address"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(variable, value, message):
    with pytest.raises(SettingsError, match=message) as excinfo:
        settings(**{variable: value})
    assert variable in str(excinfo.value)


def test_the_exchange_resource_carries_them():
    resource = ExchangeResource.from_settings(settings(CRYPTO_METRICS_HOST="0.0.0.0", CRYPTO_METRICS_PORT="9500"))
    assert (resource.metrics_host, resource.metrics_port) == ("0.0.0.0", 9500)


def test_a_capture_config_without_the_fields_decodes_with_metrics_off():
    """An older op's configuration (no metrics fields) still decodes: no metrics, shard 0/1."""
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
    config = msgspec.json.decode(msgspec.json.encode(fields), type=CaptureConfig)
    assert (config.metrics_host, config.metrics_port, config.shard) == ("127.0.0.1", 0, "0/1")
