from dagster import AssetKey, DefaultScheduleStatus, Definitions

from crypto_assets.definitions import build_definitions, defs
from crypto_assets.defs.resources import ExchangeResource
from crypto_assets.settings import Settings


def test_definitions_load():
    Definitions.validate_loadable(defs)


def test_market_snapshot_asset_and_schedule_exist():
    assert defs.resolve_assets_def("market_snapshot").key == AssetKey("market_snapshot")
    schedule = defs.resolve_schedule_def("market_snapshot_every_minute")
    assert schedule.cron_schedule == "* * * * *"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(schedule.job_name)
    assert job.asset_layer.executable_asset_keys == {AssetKey("market_snapshot")}


def test_exchange_resource_comes_from_settings():
    settings = Settings.from_env(
        {"BINANCE_REST_URL": "http://127.0.0.1:8765", "BINANCE_WS_URL": "ws://127.0.0.1:8765", "CRYPTO_SYMBOLS": "ethusdt"},
        dotenv_path=None,
    )
    resource = build_definitions(settings).resources["exchange"]
    assert isinstance(resource, ExchangeResource)
    assert (resource.rest_url, resource.ws_url, resource.symbols) == (
        "http://127.0.0.1:8765",
        "ws://127.0.0.1:8765",
        ["ETHUSDT"],
    )
