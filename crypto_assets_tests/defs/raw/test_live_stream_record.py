"""What the stream op records of the capture process's lines (``live_stream._record``), in a real op run against a
real (SQLite) instance: the wire format in, a partition's materialization and check result out."""

from dagster import DagsterEventType, EventRecordsFilter, OpExecutionContext, job, op

from crypto_assets.defs.names import raw_trades_key
from crypto_assets.defs.raw.live_stream import _record
from crypto_assets.ingest.capture_process import LogLine, MinuteDecided, encode_message
from crypto_assets.ingest.minute_checks import MINUTE_CHECK, CheckResult, MinuteSummary, Rule
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome
from crypto_assets.minutes import MINUTE_MS, minute_key

M = 1_700_000_040_000
GOOD = MinuteResult(
    M,
    Outcome.WRITTEN,
    "/lake/raw_trades/symbol=BTCUSDT/date=2023-11-14/22-14.parquet",
    MinuteSummary(M, 3, 11, 13, "0.3", "30.15", "stream"),
    tuple(CheckResult(rule, True, f"{rule} holds") for rule in Rule),
    written_at_ms=M + MINUTE_MS + 1_500,
)
GIVEN_UP = MinuteResult(M + MINUTE_MS, Outcome.UNPROVEN, reasons=("the stream joined mid-minute",))
LINES = [
    encode_message(MinuteDecided.of("BTCUSDT", GOOD)),
    encode_message(MinuteDecided.of("BTCUSDT", GIVEN_UP)),
    encode_message(LogLine("WARNING", "stream disconnected")),
    b"not json\n",
]


@op
def replay(context: OpExecutionContext) -> None:
    _record(context, LINES)  # what arrived together is recorded together


@job
def replay_lines():
    replay()


def test_a_decided_minute_is_recorded_and_a_given_up_one_logged(instance):
    result = replay_lines.execute_in_process(instance=instance)
    assert result.success
    key = raw_trades_key("BTCUSDT")
    assert instance.get_materialized_partitions(key) == {minute_key(M)}  # the given-up minute is left to the gaps
    [record] = instance.fetch_materializations(key, limit=10).records
    metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert (metadata["action"], metadata["source"], metadata["dagster/row_count"]) == ("written", "stream", 3)
    assert metadata["written_after_minute_end_s"] == 1.5
    [check] = instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION))
    evaluation = check.event_log_entry.dagster_event.event_specific_data
    assert (evaluation.check_name, evaluation.partition, evaluation.passed) == (MINUTE_CHECK, minute_key(M), True)
    logs = [e.user_message for e in instance.all_logs(result.run_id) if not e.is_dagster_event]
    assert any("not recorded from the stream" in m and "joined mid-minute" in m for m in logs), logs
    assert "stream disconnected" in logs
    assert any("unreadable line from the capture process" in m for m in logs), logs
