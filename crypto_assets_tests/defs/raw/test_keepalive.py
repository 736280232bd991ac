"""The keep-alive sensor evaluated against a real (SQLite) Dagster instance holding real run records."""

import time
from datetime import UTC, datetime, timedelta

import msgspec
from dagster import DagsterRunStatus, build_sensor_context

from crypto_assets.definitions import build_definitions
from crypto_assets.defs.raw.keepalive import (
    FAILURE_BACKOFF_AFTER,
    FIRST_BEAT_WITHIN_S,
    STREAM_RESTART_BACKOFF,
    build_live_stream_keepalive,
)
from crypto_assets.defs.raw.live_stream import HEARTBEAT_TAG, SHARD_TAG, SYMBOLS_TAG, live_trades_stream
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.models import SymbolListing
from crypto_assets.ingest.universe import Selection, merge
from crypto_assets.lake import LocalLake
from crypto_assets.settings import Settings
from crypto_assets_tests.defs.raw.conftest import sensor_context

SYMBOLS = "BTCUSDT,ETHUSDT"


def definitions(**env):
    return build_definitions(
        Settings.from_env(
            {"CRYPTO_SYMBOLS": SYMBOLS, "CRYPTO_PARTITION_DAYS": "1", "BINANCE_REST_URL": "http://127.0.0.1:1", **env},
            dotenv_path=None,
        )
    )


def evaluate(defs, name, instance):
    """One tick of the sensor ``name``."""
    sensor = defs.resolve_sensor_def(name)
    return sensor.evaluate_tick(sensor_context(defs, sensor, instance))


def stream_run(instance, defs, status, started_s_ago: float = 0, **tags):
    run = instance.create_run_for_job(defs.resolve_job_def("live_trades_stream"), tags={SYMBOLS_TAG: SYMBOLS, **tags})
    if status == DagsterRunStatus.FAILURE:
        instance.report_run_failed(run)
    elif status == DagsterRunStatus.CANCELED:
        instance.report_run_canceled(run)
    elif status != DagsterRunStatus.NOT_STARTED:
        at = datetime.now(UTC) - timedelta(seconds=started_s_ago)
        instance.handle_run_event(run.run_id, _event(run, status), at)
    return instance.get_run_by_id(run.run_id)


def _event(run, status):
    from dagster._core.events import DagsterEvent, DagsterEventType

    event_type = {DagsterRunStatus.STARTED: DagsterEventType.RUN_START}[status]
    return DagsterEvent(event_type.value, job_name=run.job_name)


# ---- keep-alive ------------------------------------------------------------------------------------------------------
def test_starts_a_stream_run_when_none_is_alive(instance):
    result = evaluate(definitions(), "live_stream_keepalive", instance)
    [request] = result.run_requests
    assert request.tags[SYMBOLS_TAG] == SYMBOLS


def test_leaves_a_healthy_run_alone(instance):
    defs = definitions()
    stream_run(instance, defs, DagsterRunStatus.STARTED, **{HEARTBEAT_TAG: str(int(time.time()))})
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert not result.run_requests and "STARTED" in result.skip_message


def test_a_run_without_heartbeat_is_failed_and_replaced(instance):
    defs = definitions()
    dead = stream_run(instance, defs, DagsterRunStatus.STARTED, **{HEARTBEAT_TAG: str(int(time.time()) - 600)})
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert len(result.run_requests) == 1
    # its worker was asked to stop first, through the instance's run launcher (here the default one, which has no
    # code server to ask: it says so in the run's log)
    engine = [e.message for e in instance.all_logs(dead.run_id) if e.dagster_event and e.dagster_event.is_engine_event]
    assert any("termination request" in (m or "") for m in engine), engine


def test_a_starting_run_has_time_for_its_first_beat(instance):
    """No heartbeat yet: the run's step process is still loading (over 50 s was seen on two busy cores); only a run
    silent FIRST_BEAT_WITHIN_S after its start is failed."""
    defs = definitions()
    loading = stream_run(instance, defs, DagsterRunStatus.STARTED, started_s_ago=FIRST_BEAT_WITHIN_S - 60)
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert not result.run_requests and "STARTED" in result.skip_message
    assert instance.get_run_by_id(loading.run_id).status == DagsterRunStatus.STARTED

    instance.delete_run(loading.run_id)
    silent = stream_run(instance, defs, DagsterRunStatus.STARTED, started_s_ago=FIRST_BEAT_WITHIN_S + 10)
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert instance.get_run_by_id(silent.run_id).status == DagsterRunStatus.FAILURE
    assert len(result.run_requests) == 1
    [failure] = [
        e.message for e in instance.all_logs(silent.run_id) if e.is_dagster_event and e.dagster_event.is_run_failure
    ]
    assert "no heartbeat 19" in failure and "after its start" in failure, failure


def test_a_run_streaming_other_symbols_is_cancelled_first(instance):
    defs = definitions(CRYPTO_SYMBOLS="BTCUSDT,SOLUSDT")
    old = stream_run(instance, defs, DagsterRunStatus.NOT_STARTED)  # tagged BTCUSDT,ETHUSDT
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert not result.run_requests  # never two at once: the replacement starts once the old run has ended
    status = instance.get_run_by_id(old.run_id).status
    assert status in (DagsterRunStatus.CANCELED, DagsterRunStatus.CANCELING)
    if status == DagsterRunStatus.CANCELING:
        assert evaluate(defs, "live_stream_keepalive", instance).run_requests == []  # still ending
        instance.report_run_canceled(instance.get_run_by_id(old.run_id))  # what its run worker does as it stops
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert result.run_requests[0].tags[SYMBOLS_TAG] == "BTCUSDT,SOLUSDT"


def test_repeated_failures_space_out_the_restarts(instance):
    defs = definitions()
    for _ in range(3):
        stream_run(instance, defs, DagsterRunStatus.FAILURE)
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert not result.run_requests and "failed in a row" in result.skip_message


def test_restarts_wait_1_2_4_minutes_up_to_15_after_failures_in_a_row(instance):
    """The keep-alive's policy on the project's back-off rule: from the third failure in a row, 1 min, then doubled,
    at most 15, counted from the last failure's end."""
    assert [STREAM_RESTART_BACKOFF.delay_s(n) for n in range(1, 7)] == [60, 120, 240, 480, 900, 900]
    defs = definitions()
    for failures in range(1, FAILURE_BACKOFF_AFTER + 2):
        stream_run(instance, defs, DagsterRunStatus.FAILURE)
        result = evaluate(defs, "live_stream_keepalive", instance)
        if failures < FAILURE_BACKOFF_AFTER:
            assert len(result.run_requests) == 1  # (not launched here: the next failure is made by hand)
            continue
        wait = int(result.skip_message.rsplit("next start in ", 1)[1].rstrip("s"))
        expected = STREAM_RESTART_BACKOFF.delay_s(failures - FAILURE_BACKOFF_AFTER + 1)
        assert expected - 10 <= wait <= expected, result.skip_message


def test_the_configured_symbols_are_the_exchange_resources(instance, tmp_path):
    """Before any universe is kept in the lake, the stream carries the symbols the code location loaded with
    (``exchange.symbols``), and the run is told them in its config."""
    sensor = build_live_stream_keepalive(live_trades_stream)
    exchange = ExchangeResource(rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1", symbols=["SOLUSDT"])
    lake = LakeResource(url=str(tmp_path / "lake"))
    result = sensor.evaluate_tick(
        build_sensor_context(instance=instance, resources={"exchange": exchange, "lake": lake})
    )
    assert result.run_requests[0].tags[SYMBOLS_TAG] == "SOLUSDT"
    assert result.run_requests[0].run_config["ops"]["stream_trades"]["config"] == {
        "symbols": ["SOLUSDT"],
        "shard": "0/1",
    }


def test_a_canceled_run_ends_the_failure_row(instance):
    """Failures in a row, then the stream stopped on purpose (Ctrl-C on `dagster dev` ends the run canceled): the next
    start is at once, not after the failures' back-off."""
    defs = definitions()
    for _ in range(3):
        stream_run(instance, defs, DagsterRunStatus.FAILURE)
    stream_run(instance, defs, DagsterRunStatus.CANCELED)
    assert len(evaluate(defs, "live_stream_keepalive", instance).run_requests) == 1


def test_a_silent_canceling_run_is_marked_canceled_and_replaced(instance):
    """Its worker died before it could record the end (no run monitoring under `dagster dev` would): left canceling it
    would count as alive for ever. Canceled, not failed: it was stopped on purpose, and it starts no back-off."""
    defs = definitions()
    for _ in range(2):
        stream_run(instance, defs, DagsterRunStatus.FAILURE)
    run = stream_run(instance, defs, DagsterRunStatus.STARTED, **{HEARTBEAT_TAG: str(int(time.time()) - 600)})
    instance.report_run_canceling(run)
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
    assert len(result.run_requests) == 1


# ---- shards ----------------------------------------------------------------------------------------------------------
def test_each_shard_gets_its_own_run_and_only_a_changed_shard_is_replaced(instance, tmp_path):
    """CRYPTO_STREAM_SHARDS=2: one run per shard, each told its symbols; a second run of a shard is cancelled; when
    the universe kept in the lake changes (a symbol left), only the shard that held it is replaced."""
    lake = str(tmp_path / "lake")
    env = {"CRYPTO_SYMBOLS": "BTCUSDT,ETHUSDT,SOLUSDT", "CRYPTO_STREAM_SHARDS": "2", "CRYPTO_LAKE_URL": lake}
    defs = definitions(**env)
    requests = evaluate(defs, "live_stream_keepalive", instance).run_requests
    by_shard = {r.tags[SHARD_TAG]: r.run_config["ops"]["stream_trades"]["config"]["symbols"] for r in requests}
    assert by_shard == {"0/2": ["ETHUSDT", "SOLUSDT"], "1/2": ["BTCUSDT"]}

    runs = {}
    for request in requests:
        run = instance.create_run_for_job(defs.resolve_job_def("live_trades_stream"), tags=request.tags)
        instance.handle_run_event(run.run_id, _event(run, DagsterRunStatus.STARTED), datetime.now(UTC))
        instance.add_run_tags(run.run_id, {HEARTBEAT_TAG: str(int(time.time()))})
        runs[request.tags[SHARD_TAG]] = run.run_id
    duplicate = instance.create_run_for_job(defs.resolve_job_def("live_trades_stream"), tags=requests[0].tags)
    instance.handle_run_event(duplicate.run_id, _event(duplicate, DagsterRunStatus.STARTED), datetime.now(UTC))
    result = evaluate(defs, "live_stream_keepalive", instance)
    assert not result.run_requests
    assert instance.get_run_by_id(duplicate.run_id).status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)
    assert instance.get_run_by_id(runs[requests[0].tags[SHARD_TAG]]).status == DagsterRunStatus.STARTED

    # SOLUSDT is delisted (BREAK): the universe kept in the lake says so; shard 0/2 is replaced, 1/2 untouched
    selection = Selection(("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    listings = [SymbolListing(s, "BREAK" if s == "SOLUSDT" else "TRADING") for s in selection.symbols]
    universe = merge(selection, None, listings, int(time.time() * 1000))
    LocalLake(lake).write_state(f"universe-{selection.name}.json", msgspec.json.encode(universe))
    evaluate(defs, "live_stream_keepalive", instance)
    assert instance.get_run_by_id(runs["0/2"]).status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)
    assert instance.get_run_by_id(runs["1/2"]).status == DagsterRunStatus.STARTED
