import os
from pathlib import Path

import pytest

from crypto_assets.settings import PROJECT_ROOT, Settings, SettingsError


def settings(dotenv_path=None, **environ):
    return Settings.from_env(environ, dotenv_path=dotenv_path)


def test_defaults():
    s = settings()
    assert s.binance_ws_url == "wss://stream.binance.com:9443"
    assert s.binance_rest_url == "https://api.binance.com"
    assert s.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert s.lake_url == str(PROJECT_ROOT / ".lake")
    assert Path(s.lake_url).is_absolute()
    assert s.aws_endpoint_url is None


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        settings().symbols = ("ETHUSDT",)


def test_blank_values_take_defaults():
    s = settings(BINANCE_WS_URL="", CRYPTO_SYMBOLS="  ", AWS_ENDPOINT_URL="")
    assert s.binance_ws_url == "wss://stream.binance.com:9443"
    assert s.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert s.aws_endpoint_url is None


def test_symbols_are_stripped_upper_cased_and_deduplicated_in_order():
    s = settings(CRYPTO_SYMBOLS=" ethusdt, BTCUSDT ,ETHUSDT,solusdt,")
    assert s.symbols == ("ETHUSDT", "BTCUSDT", "SOLUSDT")


@pytest.mark.parametrize("bad", ["BTC-USDT", "BTC", "A" * 21, "btc usdt"])
def test_bad_symbol_is_named_in_the_error(bad):
    with pytest.raises(ValueError, match="CRYPTO_SYMBOLS") as excinfo:
        settings(CRYPTO_SYMBOLS=f"BTCUSDT,{bad}")
    assert repr(bad) in str(excinfo.value)


def test_symbol_list_without_symbols_is_rejected():
    with pytest.raises(SettingsError, match="no symbol"):
        settings(CRYPTO_SYMBOLS=",,")


def test_urls_are_read_and_trailing_slash_dropped():
    s = settings(
        BINANCE_WS_URL="ws://127.0.0.1:8765/",
        BINANCE_REST_URL="http://127.0.0.1:8765/",
        AWS_ENDPOINT_URL="http://127.0.0.1:9000",
    )
    assert s.binance_ws_url == "ws://127.0.0.1:8765"
    assert s.binance_rest_url == "http://127.0.0.1:8765"
    assert s.aws_endpoint_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BINANCE_WS_URL", "https://stream.binance.com"),
        ("BINANCE_WS_URL", "stream.binance.com:9443"),
        ("BINANCE_REST_URL", "ws://api.binance.com"),
        ("BINANCE_REST_URL", "http://"),
        ("BINANCE_REST_URL", "http://127.0.0.1:notaport"),
        ("AWS_ENDPOINT_URL", "minio:9000"),
    ],
)
def test_bad_url_names_the_variable_and_value(variable, value):
    with pytest.raises(SettingsError) as excinfo:
        settings(**{variable: value})
    assert variable in str(excinfo.value)
    assert repr(value) in str(excinfo.value)


def test_the_archive_url_defaults_to_binance_and_is_checked_like_the_rest_url():
    assert settings().binance_archive_url == "https://data.binance.vision"
    assert settings(BINANCE_ARCHIVE_URL=" ").binance_archive_url == "https://data.binance.vision"
    assert settings(BINANCE_ARCHIVE_URL="http://127.0.0.1:8765/").binance_archive_url == "http://127.0.0.1:8765"
    for bad in ("ws://data.binance.vision", "data.binance.vision", "https://", "https://x/?a=1"):
        with pytest.raises(SettingsError, match="BINANCE_ARCHIVE_URL") as excinfo:
            settings(BINANCE_ARCHIVE_URL=bad)
        assert repr(bad) in str(excinfo.value)


def test_lake_url_accepts_s3_and_local_paths(tmp_path):
    assert settings(CRYPTO_LAKE_URL="s3://bucket/some/prefix/").lake_url == "s3://bucket/some/prefix"
    assert settings(CRYPTO_LAKE_URL="s3://bucket").lake_url == "s3://bucket"
    assert settings(CRYPTO_LAKE_URL=str(tmp_path)).lake_url == str(tmp_path)
    assert settings(CRYPTO_LAKE_URL=f"file://{tmp_path}").lake_url == str(tmp_path)
    assert settings(CRYPTO_LAKE_URL="data/lake").lake_url == str(PROJECT_ROOT / "data" / "lake")


@pytest.mark.parametrize("bad", ["s3://", "gs://bucket/prefix", "file://relative/path"])
def test_bad_lake_url_is_rejected(bad):
    with pytest.raises(SettingsError, match="CRYPTO_LAKE_URL"):
        settings(CRYPTO_LAKE_URL=bad)


def test_dotenv_is_honoured_and_real_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("CRYPTO_SYMBOLS=ethusdt\nBINANCE_REST_URL=http://127.0.0.1:1111\n")
    s = settings(dotenv_path=dotenv, BINANCE_REST_URL="http://127.0.0.1:2222")
    assert s.symbols == ("ETHUSDT",)  # from .env
    assert s.binance_rest_url == "http://127.0.0.1:2222"  # the real environment wins


def test_dotenv_with_explicit_environ_does_not_touch_os_environ(tmp_path, monkeypatch):
    monkeypatch.delenv("CRYPTO_SYMBOLS", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("CRYPTO_SYMBOLS=ethusdt\n")
    assert settings(dotenv_path=dotenv).symbols == ("ETHUSDT",)
    assert "CRYPTO_SYMBOLS" not in os.environ


def test_dotenv_loads_into_process_environment_without_overriding(tmp_path, monkeypatch):
    monkeypatch.setenv("BINANCE_REST_URL", "http://127.0.0.1:2222")
    # setenv records the variable's original state, so the value load_dotenv puts there is undone after the test.
    monkeypatch.setenv("CRYPTO_SYMBOLS", "placeholder")
    monkeypatch.delenv("CRYPTO_SYMBOLS")
    dotenv = tmp_path / ".env"
    dotenv.write_text("CRYPTO_SYMBOLS=solusdt\nBINANCE_REST_URL=http://127.0.0.1:1111\n")
    s = Settings.from_env(dotenv_path=dotenv)
    assert s.symbols == ("SOLUSDT",)
    assert s.binance_rest_url == "http://127.0.0.1:2222"


def test_missing_dotenv_file_is_fine(tmp_path):
    assert settings(dotenv_path=tmp_path / "absent.env").symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def test_partition_days_default_and_value():
    assert settings().partition_days == 30
    assert settings(CRYPTO_PARTITION_DAYS=" 7 ").partition_days == 7


@pytest.mark.parametrize("bad", ["0", "-3", "1.5", "thirty", "367"])
def test_bad_partition_days_is_named_in_the_error(bad):
    with pytest.raises(SettingsError, match="CRYPTO_PARTITION_DAYS") as excinfo:
        settings(CRYPTO_PARTITION_DAYS=bad)
    assert repr(bad) in str(excinfo.value)


def test_gap_backfill_settings():
    s = settings()
    assert (s.gap_lookback_hours, s.gap_settle_seconds, s.gap_max_runs) == (24, 60, 2)
    s = settings(CRYPTO_GAP_LOOKBACK_HOURS="6", CRYPTO_GAP_SETTLE_SECONDS="30", CRYPTO_GAP_MAX_RUNS="4")
    assert (s.gap_lookback_hours, s.gap_settle_seconds, s.gap_max_runs) == (6, 30, 4)
    with pytest.raises(SettingsError, match="CRYPTO_GAP_SETTLE_SECONDS='5' must be between 15 and 3600"):
        settings(CRYPTO_GAP_SETTLE_SECONDS="5")


def test_weight_budget_dir_defaults_under_dagster_home_and_can_be_set(tmp_path):
    assert settings().weight_budget_dir == str(PROJECT_ROOT / ".dagster_home" / "weight_budget")
    assert settings(DAGSTER_HOME=str(tmp_path)).weight_budget_dir == str(tmp_path / "weight_budget")
    assert settings(CRYPTO_WEIGHT_BUDGET_DIR=str(tmp_path / "wb"), DAGSTER_HOME="/elsewhere").weight_budget_dir == str(
        tmp_path / "wb"
    )
    assert settings(CRYPTO_WEIGHT_BUDGET_DIR="var/wb").weight_budget_dir == str(PROJECT_ROOT / "var" / "wb")
    with pytest.raises(SettingsError, match="CRYPTO_WEIGHT_BUDGET_DIR='s3://b/wb' must be a local path"):
        settings(CRYPTO_WEIGHT_BUDGET_DIR="s3://b/wb")


def test_duckdb_path_is_taken_from_the_dbt_project_folder(tmp_path):
    dbt_project = PROJECT_ROOT / "dbt_crypto_pipeline"
    assert settings().duckdb_path == str(dbt_project / ".dbt" / "crypto.duckdb")
    assert settings(DBT_DUCKDB_PATH="wh/x.duckdb").duckdb_path == str(dbt_project / "wh" / "x.duckdb")
    assert settings(DBT_DUCKDB_PATH=str(tmp_path / "x.duckdb")).duckdb_path == str(tmp_path / "x.duckdb")
    with pytest.raises(SettingsError, match="DBT_DUCKDB_PATH='s3://b/x.duckdb' must be a local path"):
        settings(DBT_DUCKDB_PATH="s3://b/x.duckdb")
