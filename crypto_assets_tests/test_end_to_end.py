"""`make demo` for real, with faults: the pipeline heals itself and the lake equals the exchange, trade for trade.

Runs `scripts/demo.sh` (the simulator beside `dagster dev`, as `make demo` does) on free ports with a throw-away
DAGSTER_HOME and lake, a one-hour gap window and an exchange with 65 minutes of history. Nobody clicks anything:
the sensors start the stream and backfill the hour. Then the exchange drops the stream, goes half-open, sends a
malformed frame and storms 429s, and the streaming run's process is killed with SIGKILL. At the end every minute
partition of every symbol in the window must be materialized, and every minute file must equal the simulator's
ground truth exactly: no trade lost, duplicated or invented.
"""

import os
import signal
import time
import urllib.request
from collections.abc import Callable

import pytest
from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

from crypto_assets.exchange.models import Trade
from crypto_assets.lake import Lake, LocalLake, trades_to_table
from crypto_assets.minutes import MINUTE_MS, floor_minute, minute_key
from crypto_assets_tests.demo_process import Demo

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
STREAM_QUERY = """
query ($partition: String!) { assetOrError(assetKey: {path: ["raw_trades", "btcusdt"]}) {
    ... on Asset { assetMaterializations(partitions: [$partition]) { partition metadataEntries { label
        ... on TextMetadataEntry { text } ... on IntMetadataEntry { intRepr } } } } } }
"""


def stream_runs(instance, statuses=None):
    return instance.get_runs(RunsFilter(job_name="live_trades_stream", statuses=statuses or []))


def stream_minutes_recorded(instance, symbol: str, after_ms: int) -> list[str]:
    from crypto_assets.defs.names import raw_trades_key

    # the gap backfill records up to an hour of minutes at once: read far enough back not to miss the stream's
    records = instance.fetch_materializations(raw_trades_key(symbol), limit=2000).records
    return [
        r.partition_key
        for r in records
        if r.asset_materialization.metadata["source"].value in ("stream", "stream+rest")
        and r.partition_key >= minute_key(after_ms)
    ]


def missing_partitions(instance, first_ms: int, end_ms: int, symbols=SYMBOLS) -> dict[str, list[str]]:
    from crypto_assets.defs.names import raw_trades_key

    out = {}
    for symbol in symbols:
        done = instance.get_materialized_partitions(raw_trades_key(symbol))
        missing = [minute_key(m) for m in range(first_ms, end_ms, MINUTE_MS) if minute_key(m) not in done]
        if missing:
            out[symbol] = missing
    return out


def step_pids(instance, run) -> set[int]:
    """The pids of a run's step processes (from its STEP_START events): what a kill -9 of the run's process hits."""
    return {e.dagster_event.pid for e in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)}


def assert_lake_equals_exchange(
    lake: Lake, truth_of: Callable[[str, int], list[Trade]], symbols, first_ms: int, end_ms: int
) -> dict[str, list[int]]:
    """Every minute file of [first_ms, end_ms) in ``lake`` equals the exchange's ground truth (``truth_of(symbol,
    minute_ms)``, e.g. ``Demo.minute_truth``) trade by trade; returns each symbol's trade ids in the order the files
    hold them."""
    ids: dict[str, list[int]] = {}
    for symbol in symbols:
        for minute in range(first_ms, end_ms, MINUTE_MS):
            stored = lake.read_minute(symbol, minute)
            assert stored is not None, f"{symbol} {minute_key(minute)} not in the lake"
            expected = trades_to_table(truth_of(symbol, minute))
            assert stored.drop_columns("received_at").equals(expected.drop_columns("received_at")), (
                f"{symbol} {minute_key(minute)} differs"
            )
            ids.setdefault(symbol, []).extend(stored.column("trade_id").to_pylist())
    return ids


@pytest.mark.integration
@pytest.mark.timeout(720)
def test_the_pipeline_heals_itself_and_the_lake_equals_the_exchange(tmp_path):
    demo = Demo(
        tmp_path,
        {
            "CRYPTO_PARTITION_DAYS": "1",
            "CRYPTO_GAP_LOOKBACK_HOURS": "1",
            "CRYPTO_GAP_SETTLE_SECONDS": "30",
            "CRYPTO_SYMBOLS": ",".join(SYMBOLS),
            "SIM_ARGS": "--history-minutes 65",
        },
    )
    started_ms = int(time.time() * 1000)
    demo.start()
    try:
        # -- no click: the keep-alive sensor starts the stream, which records minutes as they close
        instance = demo.loaded_instance()
        first_stream = demo.wait_for("stream run", lambda: stream_runs(instance, [DagsterRunStatus.STARTED]), 150)[0]
        streamed = demo.wait_for(
            "minute recorded from the stream", lambda: stream_minutes_recorded(instance, "BTCUSDT", started_ms), 150
        )
        ui = demo.graphql(STREAM_QUERY, {"partition": streamed[0]})["assetOrError"]["assetMaterializations"]
        assert any(e.get("text") in ("stream", "stream+rest") for m in ui for e in m["metadataEntries"]), ui

        # -- the exchange misbehaves
        demo.fault("drop")
        time.sleep(15)
        demo.fault("malformed", symbol="ETHUSDT", count=1)
        demo.fault("half_open", duration_s=45)  # the stream notices after 30 s of silence and reconnects
        time.sleep(20)
        demo.fault("rate_limit_storm", duration_s=30, retry_after_s=2)  # while gap runs fetch over REST
        demo.wait_for(
            "stream reconnected after the half-open socket",
            lambda: stream_minutes_recorded(instance, "BTCUSDT", int(time.time() * 1000) - 2 * MINUTE_MS),
            150,
        )

        # -- the streaming run's process dies hard; the keep-alive sensor starts another one
        def stream_step():  # a run just started by the keep-alive may not have started its step yet
            runs = stream_runs(instance, [DagsterRunStatus.STARTED])
            return (runs[0], step_pids(instance, runs[0])) if runs and step_pids(instance, runs[0]) else None

        victim, pids = demo.wait_for("a streaming run with its step process", stream_step, 90)
        killed_ms = int(time.time() * 1000)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        replacement = demo.wait_for(
            "replacement stream run",
            lambda: [r for r in stream_runs(instance, [DagsterRunStatus.STARTED]) if r.run_id != victim.run_id],
            120,
        )
        assert len(stream_runs(instance, [DagsterRunStatus.STARTED])) == 1  # never two at once
        demo.wait_for(
            "minute recorded by the replacement stream",
            lambda: stream_minutes_recorded(instance, "BTCUSDT", killed_ms + MINUTE_MS),
            150,
        )

        # -- every minute of the window materialized: the sensors filled what the stream could not prove
        first_ms = floor_minute(started_ms) - 50 * MINUTE_MS  # history the gap sensor backfilled at start-up
        end_ms = floor_minute(int(time.time() * 1000)) - MINUTE_MS
        demo.wait_for(
            "every partition materialized", lambda: not missing_partitions(instance, first_ms, end_ms), 240, every_s=5
        )

        # -- the lake equals the exchange's ground truth, minute by minute
        assert_lake_equals_exchange(LocalLake(demo.lake_path), demo.minute_truth, SYMBOLS, first_ms, end_ms)

        weights = demo.sim_get("/_sim/state")["weights"]
        assert all(ip["bans"] == 0 for ip in weights.values()), weights  # the 429 storm never became a 418
        assert first_stream.run_id != replacement[0].run_id
    finally:
        demo.stop()
    with pytest.raises(OSError):  # the demo stopped its simulator when dagster dev exited
        urllib.request.urlopen(f"{demo.sim_url}/api/v3/ping", timeout=2)
