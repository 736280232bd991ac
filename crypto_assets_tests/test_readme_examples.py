"""The README's "Use the data" examples, run as written, each in its own Python process with the project's
configuration pointing at a lake, a Dagster instance and a warehouse this test filled from the simulator: two symbols'
minutes of an hour recorded through Dagster, that hour's silver and gold built by dbt. What each example returns is
compared with the simulator's ground truth."""

import datetime as dt
import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import DagsterInstance

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.definitions import build_definitions
from crypto_assets.defs.analytics.schedules import HOURLY_JOB
from crypto_assets.defs.names import RANGE_END_TAG, RANGE_START_TAG, raw_trades_key
from crypto_assets.minutes import HOUR_MS, MINUTE_MS, minute_key
from crypto_assets.minutes import hour_key as hour_key_of
from crypto_assets.settings import Settings
from crypto_assets_tests.ground_truth import truth

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def readme_examples() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Use the data", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder standing for the project root (``.lake`` in it), its environment, and the hour two hours back,
    recorded and built."""
    root = tmp_path_factory.mktemp("project")
    hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    config = SimulatorConfig(
        symbols=[symbol_config(s, trades_per_second=2, burst_probability=0) for s in SYMBOLS],
        origin_ms=hour - 10 * MINUTE_MS,
    )
    with Simulator(config) as sim:
        env = {
            "CRYPTO_LAKE_URL": str(root / ".lake"),
            "CRYPTO_SYMBOLS": ",".join(SYMBOLS),
            "DBT_DUCKDB_PATH": str(root / "warehouse" / "crypto.duckdb"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "BINANCE_REST_URL": sim.rest_url,
            "BINANCE_WS_URL": sim.ws_url,
            "BINANCE_ARCHIVE_URL": sim.archive_url,
            "CRYPTO_WEIGHT_BUDGET_DIR": str(root / "budget"),
        }
        (root / "dagster_home").mkdir()
        defs = build_definitions(Settings.from_env(env, dotenv_path=None))
        with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            tags = {RANGE_START_TAG: minute_key(hour), RANGE_END_TAG: minute_key(hour + HOUR_MS - MINUTE_MS)}
            raw = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, tags=tags, asset_selection=[raw_trades_key(s) for s in SYMBOLS]
            )
            assert raw.success
            hour_key = hour_key_of(hour)
            assert (
                defs.resolve_job_def(HOURLY_JOB).execute_in_process(instance=instance, partition_key=hour_key).success
            )
        yield root, {**os.environ, **env}, sim, hour


def run_example(number: int, project, epilogue: str) -> str:
    """README example ``number`` as written, then ``epilogue`` (prints what the test compares), in a new process
    whose working folder is the project root stand-in."""
    root, env, _, _ = project
    script = root / f"example_{number}.py"
    script.write_text(readme_examples()[number] + "\n" + epilogue)
    done = subprocess.run([sys.executable, str(script)], cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_readme_has_three_examples():
    assert len(readme_examples()) == 3


def test_a_downstream_asset_gets_the_hours_trades(project):
    _, _, sim, hour = project
    hour_key = hour_key_of(hour)
    out = run_example(
        0,
        project,
        "from dagster import DagsterInstance\n"
        "result = defs.resolve_implicit_global_asset_job_def().execute_in_process(\n"
        f"    instance=DagsterInstance.get(), partition_key={hour_key!r}, asset_selection=[btc_vwap_1h.key])\n"
        "print(repr(result.output_for_node('btc_vwap_1h')))\n",
    )
    trades = truth(sim, "BTCUSDT", hour, hour + HOUR_MS)
    quote = sum(Decimal(t.price) * Decimal(t.qty) for t in trades)
    vwap = quote / sum(Decimal(t.qty) for t in trades)
    assert float(out.strip().splitlines()[-1]) == pytest.approx(float(vwap), rel=1e-12)


def test_the_notebook_cell_reads_trades_and_candles(project):
    _, _, sim, hour = project
    out = run_example(1, project, "print(trades.num_rows, len(candles), str(candles['volume'].sum()))\n")
    rows, candle_count, volume = out.split()
    expected = {s: truth(sim, s, hour, hour + HOUR_MS) for s in SYMBOLS}
    assert int(rows) == sum(len(t) for t in expected.values())
    assert int(candle_count) == 60
    assert Decimal(volume) == sum(Decimal(t.qty) for t in expected["BTCUSDT"])


def test_the_duckdb_query_reads_the_lake(project):
    _, _, sim, hour = project
    out = run_example(2, project, "")
    day = dt.datetime.fromtimestamp(hour / 1000, dt.UTC).date().isoformat()
    for symbol in SYMBOLS:
        assert re.search(rf"{symbol}\s*│\s*{day}\s*│\s*{len(truth(sim, symbol, hour, hour + HOUR_MS))}\s*│", out), out
