"""`raw_trades/<symbol>`: every spot trade of one symbol, one partition per UTC minute, one Parquet file per minute.

Materializing a partition, or a range of them, stores the minutes (``ingest.stored_minutes.store_range``): the
minutes of complete UTC days come from Binance's daily archive (``BINANCE_ARCHIVE_URL``) when the range holds at
least an hour of the day to fetch, every other minute, and every minute the archive cannot prove, over REST by trade
id; every minute is proven complete before it is written, then read back and checked. A UI backfill runs one run
per 1,440 partitions: one per day (a step per symbol), since the partition window starts at UTC midnight. Each
minute that is stored and passes its three checks is recorded as its own partition's materialization, with its own
metadata (the archive's verified sha256 for a minute read from it) and check results. A minute that cannot be
proven complete is neither written nor recorded: its partition gets a failed check (``agrees_with_kline`` when the
kline is what disagrees or is missing, else ``trade_ids_dense``) whose description and metadata give the proof's
reasons, and the run fails at the end naming it and why, after recording the good minutes. The gap sensor or a
retry fetches it again; the passing checks of a later materialization clear the failure.

A minute before the symbol's first trade (before its listing: no trade, no kline, nothing to prove) asked for by
hand (UI / CLI backfill) is not refused: it is recorded as an empty partition (an empty Parquet file, like any
proven-empty minute) whose metadata ``note`` says "before the symbol's first trade (first trade <id> at <time>)";
the first trade is looked up (one REST request) only when a range's first minute has no closed kline. The gap
sensor never asks for such minutes.
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import contextlib
import resource
import warnings
from collections.abc import Iterator
from datetime import timedelta

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Config,
    Failure,
    FreshnessPolicy,
    MetadataValue,
    PreviewWarning,
    TimeWindowPartitionsDefinition,
    multi_asset,
)
from pydantic import Field

from crypto_assets.defs.names import raw_trades_key
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable
from crypto_assets.ingest.minute_checks import CHECK_DESCRIPTIONS, DENSE_IDS, KLINE_AGREEMENT
from crypto_assets.ingest.stored_minutes import (
    ALREADY_STORED,
    BEFORE_FIRST_TRADE,
    UNPROVEN,
    WRITTEN,
    StoredMinute,
    store_range,
    verify_range,
)
from crypto_assets.lake.store import LakeError
from crypto_assets.minutes import KEY_FORMAT, MINUTE_MS, minute_key

# Partitioned asset checks (one result per minute partition) are a preview feature in Dagster 1.13: used knowingly.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)

MINUTES_PER_RUN = 1440  # a UI backfill runs one run per day, a step per symbol (the window starts at UTC midnight)
MAX_PROBLEMS_LISTED = 20


class RawTradesConfig(Config):
    refetch: bool = Field(
        default=False,
        description="Fetch and rewrite minutes whose file is already in the lake and verifies (normally kept).",
    )


def build_raw_trades_asset(symbol: str, partitions_def: TimeWindowPartitionsDefinition) -> AssetsDefinition:
    key = raw_trades_key(symbol)

    @multi_asset(
        name=f"raw_trades__{symbol.lower()}",
        specs=[
            AssetSpec(
                key,
                group_name="raw",
                partitions_def=partitions_def,
                freshness_policy=FreshnessPolicy.time_window(
                    fail_window=timedelta(minutes=10), warn_window=timedelta(minutes=3)
                ),
                kinds={"parquet", "binance"},
                metadata={"symbol": symbol},
                description=(
                    f"Every {symbol} spot trade, one partition per UTC minute (key {KEY_FORMAT}), stored as "
                    f"raw_trades/symbol={symbol}/date=<YYYY-MM-DD>/<HH-MM>.parquet in the lake. Materializing reads "
                    f"complete days from Binance's daily archive and the other minutes over REST by trade id; only "
                    f"minutes proven complete (dense ids, both boundaries, the exchange's 1m kline) are written and "
                    f"recorded."
                ),
            )
        ],
        check_specs=[
            AssetCheckSpec(name, asset=key, blocking=True, partitions_def=partitions_def, description=description)
            for name, description in CHECK_DESCRIPTIONS.items()
        ],
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=MINUTES_PER_RUN),
        # Every minute is recorded by its own events (below), so the op's outputs are optional; a run of the checks
        # alone re-verifies the stored files without fetching anything.
        can_subset=True,
    )
    def raw_trades(
        context: AssetExecutionContext, config: RawTradesConfig, exchange: ExchangeResource, lake: LakeResource
    ) -> Iterator[None]:
        window = context.partition_time_window
        start_ms, end_ms = int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)
        context.log.info(
            f"{symbol}: {(end_ms - start_ms) // MINUTE_MS} minute(s) from {window.start:%Y-%m-%d %H:%M} "
            f"UTC{' (refetching stored minutes)' if config.refetch else ''}"
        )
        weight = 0
        try:
            with exchange.rest_client() as client, contextlib.ExitStack() as stack:
                client.validate_symbols([symbol])  # before the symbol becomes part of any path
                archive = exchange.archive()
                if archive is not None:
                    stack.enter_context(archive)
                try:
                    if key in context.selected_asset_keys:
                        outcomes = store_range(
                            client,
                            lake.lake(),
                            symbol,
                            start_ms,
                            end_ms,
                            archive=archive,
                            refetch=config.refetch,
                            report=context.log.info,
                        )
                    else:  # the checks alone: read the stored minutes back and check them, fetch nothing
                        outcomes = verify_range(client, lake.lake(), symbol, start_ms, end_ms)
                finally:
                    weight = client.weight_spent
        except ExchangeUnreachable as exc:
            raise Failure(description=f"{symbol}: exchange unreachable, nothing written: {exc}") from None
        except ExchangeError as exc:
            raise Failure(description=f"{symbol}: the exchange refused: {exc}") from None
        except LakeError as exc:
            raise Failure(description=f"{symbol}: lake error: {exc}") from None

        context.log.info(
            f"{symbol}: run peak memory {peak_rss_mb():.0f} MB (max RSS of the run process); REST weight spent {weight}"
        )
        problems: dict[str, None] = {}  # in order, each once (a failed lake is the same reason for every minute)
        for outcome in outcomes:
            for event in minute_events(key, outcome, record=key in context.selected_asset_keys):
                context.log_event(event)
            problems.update(dict.fromkeys(outcome.problems))
        recorded = sum(o.ok for o in outcomes)
        before = sum(o.action == BEFORE_FIRST_TRADE and o.ok for o in outcomes)
        context.log.info(
            f"{symbol}: {recorded} of {len(outcomes)} minute(s) recorded "
            f"({sum(o.action == WRITTEN for o in outcomes)} written, "
            f"{sum(o.action == ALREADY_STORED for o in outcomes)} already stored and verified"
            f"{f', {before} empty before the first trade' if before else ''})"
        )
        if problems:
            failed = [o for o in outcomes if not o.ok]
            listed = "\n".join(f"- {p}" for p in list(problems)[:MAX_PROBLEMS_LISTED])
            more = (
                f"\n- ... and {len(problems) - MAX_PROBLEMS_LISTED} more" if len(problems) > MAX_PROBLEMS_LISTED else ""
            )
            raise Failure(
                description=f"{symbol}: {len(failed)} minute(s) not recorded (not proven complete, refused by the "
                f"lake or failing a check); {recorded} recorded.\n{listed}{more}",
                metadata={"minutes_not_recorded": MetadataValue.json([minute_key(o.minute_start_ms) for o in failed])},
            )
        yield from ()  # a generator with no output: each partition is recorded by its own events above

    return raw_trades


def minute_events(
    key: AssetKey, outcome: StoredMinute, record: bool = True
) -> list[AssetMaterialization | AssetCheckEvaluation]:
    """The materialization of a good minute's partition (when ``record``) and its check results; for a minute that
    failed a check, the check results only (so the failure shows on the partition); for an UNPROVEN one, a failed
    evaluation of the check its proof failed (``unproven_check``) with the proof's reasons. (The live stream passes
    only good minutes: its given-up minutes stay log lines.)"""
    partition = minute_key(outcome.minute_start_ms)
    events: list[AssetMaterialization | AssetCheckEvaluation] = []
    if outcome.action == UNPROVEN:
        return [
            AssetCheckEvaluation(
                asset_key=key,
                check_name=unproven_check(outcome.reasons),
                passed=False,
                partition=partition,
                severity=AssetCheckSeverity.ERROR,
                blocking=True,
                description=f"minute {partition} could not be proven complete, so it was not written: "
                + "; ".join(outcome.reasons),
                metadata={"action": MetadataValue.text(UNPROVEN), "reasons": MetadataValue.json(list(outcome.reasons))},
            )
        ]
    if outcome.ok and record:
        events.append(
            AssetMaterialization(asset_key=key, partition=partition, metadata=materialization_metadata(outcome))
        )
    for check in outcome.checks:
        if check.name not in CHECK_DESCRIPTIONS:
            continue
        events.append(
            AssetCheckEvaluation(
                asset_key=key,
                check_name=check.name,
                passed=check.passed,
                partition=partition,
                severity=AssetCheckSeverity.ERROR,
                blocking=True,
                description=check.description,
                metadata={k: v for k, v in check.metadata.items() if v is not None},
            )
        )
    return events


def peak_rss_mb() -> float:
    """The largest resident memory this process has had, in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unproven_check(reasons: tuple[str, ...]) -> str:
    """The check an unproven minute fails: the kline agreement when a reason is about the kline, else dense ids
    (the boundaries and the ids are what the proof could not establish)."""
    return KLINE_AGREEMENT if any("kline" in reason for reason in reasons) else DENSE_IDS


def materialization_metadata(outcome: StoredMinute) -> dict[str, object]:
    summary = outcome.summary
    assert summary is not None
    metadata: dict[str, object] = {
        "dagster/row_count": MetadataValue.int(summary.rows),
        "first_trade_id": summary.first_trade_id,
        "last_trade_id": summary.last_trade_id,
        "base_volume": MetadataValue.text(summary.base_volume),
        "quote_volume": MetadataValue.text(summary.quote_volume),
        "source": MetadataValue.text("archive" if outcome.archive else summary.source),
        "archive_url": MetadataValue.url(outcome.archive.trades_url) if outcome.archive else None,
        "archive_sha256": MetadataValue.text(outcome.archive.trades_sha256) if outcome.archive else None,
        "archive_klines_sha256": MetadataValue.text(outcome.archive.klines_sha256) if outcome.archive else None,
        "action": MetadataValue.text(outcome.action),
        "lake_path": MetadataValue.path(outcome.path) if outcome.path else None,
        "note": MetadataValue.text(outcome.note) if outcome.note else None,
    }
    if outcome.written_at_ms is not None:
        minute_end_ms = outcome.minute_start_ms + MINUTE_MS
        metadata["written_after_minute_end_s"] = MetadataValue.float((outcome.written_at_ms - minute_end_ms) / 1000)
    return {k: v for k, v in metadata.items() if v is not None}
