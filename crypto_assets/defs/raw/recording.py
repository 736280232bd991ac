"""What the instance records of a decided minute, and how it is written: the one home of a minute partition's events.

A minute costs the instance two events (README, "What a recorded minute costs"):
- a good minute: the materialization of its `raw_trades/<symbol>` partition (``minute_materialization``) and one
  passing evaluation of its ``minute_complete`` check;
- a minute that failed: one failed evaluation naming each rule's result and the reasons, no materialization (a minute
  that could not be proven, or is missing from the lake, has no rule result: its reasons instead);
- a minute the lake failed before it was stored: nothing (the run's failure names the lake; the minute stays missing,
  for the next run or the gap sensor).

``record_materializations`` writes a batch of materializations the way Dagster writes the partitions of a ranged
output: with batch metadata, so that with ``DAGSTER_EVENT_BATCH_SIZE`` set (deploy/) a storage that can batch
(dagster-postgres: one multi-row INSERT) writes them together; without it, or on SQLite, one by one as before.
Check evaluations are not batch-writable in Dagster 1.13; the asset op yields them so that a failed one blocks
(docs/adr/0001-one-check-per-minute.md).
"""

from collections.abc import Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    MetadataValue,
    OpExecutionContext,
)
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id

from crypto_assets.ingest.minute_checks import MINUTE_CHECK, verdict
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome
from crypto_assets.minutes import MINUTE_MS, minute_key


def minute_materialization(key: AssetKey, result: MinuteResult) -> AssetMaterialization:
    """A good minute's partition, with what it holds and where it came from."""
    return AssetMaterialization(
        asset_key=key, partition=minute_key(result.minute_start_ms), metadata=materialization_metadata(result)
    )


def minute_check(key: AssetKey, result: MinuteResult) -> AssetCheckEvaluation | None:
    """The minute's ``minute_complete`` evaluation: passed when the minute is stored and every rule holds; failed
    with each rule's result and the reasons, or with the reasons alone where no rule could be checked (the proof's,
    for a minute that could not be proven and was not written; the path, for a minute missing from the lake). None
    for a minute the lake failed before it was stored: nothing was checked."""
    partition = minute_key(result.minute_start_ms)
    if result.outcome == Outcome.NOT_STORED:
        return None
    if result.outcome in (Outcome.UNPROVEN, Outcome.MISSING):
        description = "; ".join(result.reasons)
        if result.outcome == Outcome.UNPROVEN:
            description = f"minute {partition} could not be proven complete, so it was not written: {description}"
        return _evaluation(
            key,
            partition,
            False,
            description,
            {"action": MetadataValue.text(result.outcome.value), "reasons": MetadataValue.json(list(result.reasons))},
        )
    found = verdict(result.checks)
    metadata: dict[str, object] = {rule.value: MetadataValue.bool(held) for rule, held in found.rules.items()}
    if not found.passed:
        metadata["action"] = MetadataValue.text(result.outcome.value)
        metadata["reasons"] = MetadataValue.json(list(found.reasons))
        metadata.update(found.metadata)
    return _evaluation(key, partition, found.passed and result.ok, found.description, metadata)


def _evaluation(
    key: AssetKey, partition: str, passed: bool, description: str, metadata: dict[str, object]
) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=key,
        check_name=MINUTE_CHECK,
        passed=passed,
        partition=partition,
        severity=AssetCheckSeverity.ERROR,
        blocking=True,
        description=description,
        metadata=metadata,
    )


def record_materializations(context: OpExecutionContext, materializations: Sequence[AssetMaterialization]) -> None:
    """Log ``materializations`` as one batch: Dagster's constructor for an output's partition events, with the
    batch metadata ``context.log_event`` cannot pass (the storage writes the batch when its last event arrives)."""
    step = context.get_step_execution_context()
    batch_id = generate_event_batch_id()
    last = len(materializations) - 1
    for i, materialization in enumerate(materializations):
        DagsterEvent.asset_materialization(step, materialization, DagsterEventBatchMetadata(batch_id, i == last))


def materialization_metadata(result: MinuteResult) -> dict[str, object]:
    """Row count, trade ids, exact volumes, source, lake path; the archive file's sha256 for a minute read from it,
    the note of a minute before the symbol's first trade, and the stream's latency for a minute it wrote."""
    summary = result.summary
    assert summary is not None
    metadata: dict[str, object] = {
        "dagster/row_count": MetadataValue.int(summary.rows),
        "first_trade_id": summary.first_trade_id,
        "last_trade_id": summary.last_trade_id,
        "base_volume": MetadataValue.text(summary.base_volume),
        "quote_volume": MetadataValue.text(summary.quote_volume),
        "source": MetadataValue.text("archive" if result.archive else summary.source),
        "archive_url": MetadataValue.url(result.archive.trades_url) if result.archive else None,
        "archive_sha256": MetadataValue.text(result.archive.trades_sha256) if result.archive else None,
        "action": MetadataValue.text(result.outcome.value),
        "lake_path": MetadataValue.path(result.path) if result.path else None,
        "note": MetadataValue.text(result.note) if result.note else None,
    }
    if result.written_at_ms is not None:
        minute_end_ms = result.minute_start_ms + MINUTE_MS
        metadata["written_after_minute_end_s"] = MetadataValue.float((result.written_at_ms - minute_end_ms) / 1000)
    return {k: v for k, v in metadata.items() if v is not None}
