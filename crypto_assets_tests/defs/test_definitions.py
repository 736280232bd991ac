from dagster import AssetKey, DefaultScheduleStatus, DefaultSensorStatus, Definitions, PartitionKeyRange

from crypto_assets.definitions import build_definitions, defs
from crypto_assets.defs.raw.resources import ExchangeResource
from crypto_assets.settings import Settings


def test_definitions_load():
    Definitions.validate_loadable(defs)


def test_stream_job_and_self_healing_sensors_are_on_by_default():
    assert defs.resolve_job_def("live_trades_stream") is not None
    for name in (
        "live_stream_keepalive",
        "raw_trades_gap_backfill",
        "analytics_automation",
        "analytics_next_hour_rebuild",
    ):
        assert defs.resolve_sensor_def(name).default_status == DefaultSensorStatus.RUNNING
    gap_job = defs.resolve_job_def(defs.resolve_sensor_def("raw_trades_gap_backfill").job_name)
    assert {k.path[0] for k in gap_job.asset_layer.executable_asset_keys} == {"raw_trades"}


def test_exchange_resource_comes_from_settings():
    settings = Settings.from_env(
        {
            "BINANCE_REST_URL": "http://127.0.0.1:8765",
            "BINANCE_WS_URL": "ws://127.0.0.1:8765",
            "CRYPTO_SYMBOLS": "ethusdt",
        },
        dotenv_path=None,
    )
    resource = build_definitions(settings).resources["exchange"]
    assert isinstance(resource, ExchangeResource)
    assert (resource.rest_url, resource.ws_url, resource.symbols) == (
        "http://127.0.0.1:8765",
        "ws://127.0.0.1:8765",
        ["ETHUSDT"],
    )


def test_one_minute_partitioned_raw_asset_per_configured_symbol():
    settings = Settings.from_env({"CRYPTO_SYMBOLS": "ethusdt,SOLUSDT", "CRYPTO_PARTITION_DAYS": "7"}, dotenv_path=None)
    built = build_definitions(settings)
    raw = [k for k in built.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "raw_trades"]
    assert sorted(raw) == [AssetKey(["raw_trades", "ethusdt"]), AssetKey(["raw_trades", "solusdt"])]
    asset = built.resolve_assets_def(AssetKey(["raw_trades", "ethusdt"]))
    partitions = asset.partitions_def
    assert (partitions.cron_schedule, partitions.fmt, partitions.timezone) == ("* * * * *", "%Y-%m-%d-%H:%M", "UTC")
    first = partitions.get_first_partition_key()
    assert (
        first.endswith("-00:00")
        and len(partitions.get_partition_keys_in_range(PartitionKeyRange(first, partitions.get_last_partition_key())))
        >= 7 * 1440
    )
    assert asset.backfill_policy.max_partitions_per_run == 1440  # one run per symbol-day
    assert asset.specs_by_key[AssetKey(["raw_trades", "ethusdt"])].group_name == "raw"
    assert {c.name for c in asset.check_specs} == {"minute_complete"}
    assert all(c.blocking for c in asset.check_specs)


def test_analytics_hang_off_the_raw_assets():
    graph = defs.resolve_asset_graph()
    silver = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "silver"]
    assert silver
    upstream = set().union(*(graph.get(k).parent_keys for k in silver))
    assert {AssetKey(["raw_trades", s.lower()]) for s in Settings.from_env().symbols} <= upstream
    for name in ("analytics_every_hour", "analytics_latest_prices_every_hour"):
        assert defs.resolve_schedule_def(name).default_status == DefaultScheduleStatus.RUNNING


def test_minute_partition_lookups_are_memoized_and_exact():
    """defs/partitions.py memoizes Dagster's minute lookups (the analytics automation asks them once per raw asset):
    the answers stay Dagster's, minute by minute, at and between boundaries."""
    from dagster import TimeWindowPartitionsDefinition

    from crypto_assets.defs.partitions import minute_partitions
    from crypto_assets.minutes import MINUTE_MS, minute_key, minute_start_ms

    assert TimeWindowPartitionsDefinition._crypto_assets_memoized
    minutes = minute_partitions(2)
    start = int(minutes.start.timestamp() * 1000) + 3 * 60 * MINUTE_MS
    for ms in range(start, start + 90 * MINUTE_MS, 17_000):
        for _ in range(2):  # computed, then from the cache
            assert minutes.get_partition_key_for_timestamp(ms / 1000) == minute_key(ms - ms % MINUTE_MS)
            key = minute_key(ms - ms % MINUTE_MS)
            assert int(minutes.start_time_for_partition_key(key).timestamp() * 1000) == minute_start_ms(key)
    boundary = start / 1000
    assert minutes.get_partition_key_for_timestamp(boundary, end_closed=True) == minute_key(start - MINUTE_MS)
