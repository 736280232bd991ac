"""A code location on a quote selection (CRYPTO_SYMBOLS=quote:USDT): resolved from a real simulator, loaded again
while the exchange is unreachable, refreshed by the ``symbol_universe`` sensor; raw asset groups stay readable."""

from dagster import AssetKey, build_sensor_context

from crypto_assets.definitions import build_definitions
from crypto_assets.defs.raw import GROUP_SIZE, raw_group
from crypto_assets.defs.raw.live_stream import spool_dir
from crypto_assets.settings import Settings


def settings(rest_url: str, lake: str) -> Settings:
    env = {"CRYPTO_SYMBOLS": "quote:USDT", "BINANCE_REST_URL": rest_url, "CRYPTO_LAKE_URL": lake}
    return Settings.from_env({**env, "CRYPTO_PARTITION_DAYS": "1"}, dotenv_path=None)


def raw_keys(defs) -> set[str]:
    keys = {spec.key for a in defs.assets if hasattr(a, "specs") for spec in a.specs}
    return {k.path[1] for k in keys if isinstance(k, AssetKey) and k.path[0] == "raw_trades"}


def test_a_quote_selection_loads_from_the_exchange_then_without_it(simulator, tmp_path, instance):
    lake = str(tmp_path / "lake")
    defs = build_definitions(settings(simulator.rest_url, lake))
    assert raw_keys(defs) == {"btcusdt", "ethusdt", "quietusdt"}  # every USDT pair the simulator lists

    offline = build_definitions(settings("http://127.0.0.1:1", lake))  # the universe kept in the lake
    assert raw_keys(offline) == raw_keys(defs)

    sensor = defs.resolve_sensor_def("symbol_universe")
    resources = {"exchange": defs.resources["exchange"], "lake": defs.resources["lake"]}
    result = sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources))
    assert not result.run_requests and "3 symbols (0 halted, 0 left) for quote:USDT" in result.skip_message


def test_raw_groups_split_by_first_letter_beyond_a_readable_size():
    assert raw_group("BTCUSDT", 3) == "raw"
    assert raw_group("BTCUSDT", GROUP_SIZE + 1) == "raw_b" and raw_group("1INCHUSDT", 500) == "raw_0"


def test_each_shard_spools_in_its_own_folder():
    """A spool is locked by one capture process: two shards on one machine must not wait for each other's."""
    assert spool_dir("/var/spool", "0/1") == "/var/spool"
    assert spool_dir("/var/spool", "1/3") == "/var/spool/shard-1-of-3" != spool_dir("/var/spool", "0/3")
