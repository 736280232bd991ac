"""`raw_trades/<symbol>`: every spot trade of one symbol, one partition per UTC minute, one Parquet file per minute.

Materializing a partition, or a range of them, stores the minutes (``ingest.stored_minutes.store_range``): the
minutes of complete UTC days come from Binance's daily archive (``BINANCE_ARCHIVE_URL``) when the range holds at
least an hour of the day to fetch, every other minute, and every minute the archive cannot prove, over REST by trade
id; every minute is proven complete before it is written, then read back and checked. A UI backfill runs one run
per 1,440 partitions: one per day (a step per symbol), since the partition window starts at UTC midnight. Each
minute that is stored and passes the ``minute_complete`` check (its three rules) is recorded as its own partition's
materialization, with its own metadata (the archive's verified sha256 for a minute read from it), and its check
result (``recording.py``: two events per minute, the materializations written as one batch). A minute that cannot be
proven complete is neither written nor recorded: its partition gets a failed ``minute_complete`` whose description
and metadata give each rule's result and the reasons; the op yields it, so the failure blocks what depends on the
minute in the run, and the run fails at the end naming it and why, after recording the good minutes. The gap sensor or a
retry fetches it again; the passing checks of a later materialization clear the failure. Every failure of the op
names its reason as a value in its metadata (``reason``: a ``miss_reasons.MissReason``, with a one-line ``detail``),
which the gap sensor reads instead of the failure's text.

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
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Config,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    TimeWindowPartitionsDefinition,
    multi_asset,
)
from pydantic import Field

from crypto_assets.defs.names import raw_trades_key
from crypto_assets.defs.raw.io_manager import RAW_TRADES_IO_MANAGER
from crypto_assets.defs.raw.miss_reasons import MissReason, failure_metadata
from crypto_assets.defs.raw.recording import (
    materialization_metadata,
    minute_check,
    minute_materialization,
    record_materializations,
)
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable
from crypto_assets.ingest.minute_checks import MINUTE_CHECK, MINUTE_CHECK_DESCRIPTION
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome, store_range, verify_range
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


def build_raw_trades_asset(
    symbol: str, partitions_def: TimeWindowPartitionsDefinition, group_name: str = "raw", streamed: bool = True
) -> AssetsDefinition:
    """``streamed``: False for a symbol that left the universe (its recorded minutes stay, no freshness is owed)."""
    key = raw_trades_key(symbol)

    @multi_asset(
        name=f"raw_trades__{symbol.lower()}",
        specs=[
            AssetSpec(
                key,
                group_name=group_name,
                partitions_def=partitions_def,
                freshness_policy=FreshnessPolicy.time_window(
                    fail_window=timedelta(minutes=10), warn_window=timedelta(minutes=3)
                )
                if streamed
                else None,
                kinds={"parquet", "binance"},
                metadata={"symbol": symbol},
                description=(
                    f"Every {symbol} spot trade, one partition per UTC minute (key {KEY_FORMAT}), stored as "
                    f"raw_trades/symbol={symbol}/date=<YYYY-MM-DD>/<HH-MM>.parquet in the lake. Materializing reads "
                    f"complete days from Binance's daily archive and the other minutes over REST by trade id; only "
                    f"minutes proven complete (dense ids, both boundaries, the exchange's 1m kline) are written and "
                    f"recorded."
                ),
            ).with_io_manager_key(RAW_TRADES_IO_MANAGER)
        ],
        check_specs=[
            AssetCheckSpec(
                MINUTE_CHECK,
                asset=key,
                blocking=True,
                partitions_def=partitions_def,
                description=MINUTE_CHECK_DESCRIPTION,
            )
        ],
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=MINUTES_PER_RUN),
        # A run of the checks alone re-verifies the stored files without fetching anything.
        can_subset=True,
    )
    def raw_trades(
        context: AssetExecutionContext, config: RawTradesConfig, exchange: ExchangeResource, lake: LakeResource
    ) -> Iterator[MaterializeResult | AssetCheckEvaluation]:
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
                        results = store_range(
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
                        results = verify_range(client, lake.lake(), symbol, start_ms, end_ms)
                finally:
                    weight = client.weight_spent
        except ExchangeUnreachable as exc:
            raise Failure(
                description=f"{symbol}: exchange unreachable, nothing written: {exc}",
                metadata=failure_metadata(MissReason.EXCHANGE_UNREACHABLE, str(exc)),
            ) from None
        except ExchangeError as exc:
            raise Failure(
                description=f"{symbol}: the exchange refused: {exc}",
                metadata=failure_metadata(MissReason.EXCHANGE_REFUSED, str(exc)),
            ) from None
        except LakeError as exc:
            raise Failure(
                description=f"{symbol}: lake error: {exc}", metadata=failure_metadata(MissReason.LAKE_FAILED, str(exc))
            ) from None

        context.log.info(
            f"{symbol}: run peak memory {peak_rss_mb():.0f} MB (max RSS of the run process); REST weight spent {weight}"
        )
        if key in context.selected_asset_keys:
            yield from _materializations(context, key, results)
        problems: dict[str, None] = {}  # in order, each once (a failed lake is the same reason for every minute)
        for result in results:
            evaluation = minute_check(key, result)
            if evaluation is not None:
                yield evaluation  # yielded, not logged: a failed one blocks (Dagster enforces only yielded ones)
            problems.update(dict.fromkeys(result.problems))
        recorded = sum(o.ok for o in results)
        before = sum(o.outcome == Outcome.BEFORE_FIRST_TRADE and o.ok for o in results)
        context.log.info(
            f"{symbol}: {recorded} of {len(results)} minute(s) recorded "
            f"({sum(o.outcome == Outcome.WRITTEN for o in results)} written, "
            f"{sum(o.outcome == Outcome.ALREADY_STORED for o in results)} already stored and verified"
            f"{f', {before} empty before the first trade' if before else ''})"
        )
        if problems:
            failed = [o for o in results if not o.ok]
            lake_failed = next((o for o in failed if o.outcome == Outcome.NOT_STORED), None)
            reason = failure_metadata(
                MissReason.LAKE_FAILED if lake_failed else MissReason.MINUTES_NOT_RECORDED,
                (lake_failed.problems if lake_failed else list(problems))[0],
            )
            listed = "\n".join(f"- {p}" for p in list(problems)[:MAX_PROBLEMS_LISTED])
            more = (
                f"\n- ... and {len(problems) - MAX_PROBLEMS_LISTED} more" if len(problems) > MAX_PROBLEMS_LISTED else ""
            )
            raise Failure(
                description=f"{symbol}: {len(failed)} minute(s) not recorded (not proven complete, refused by the "
                f"lake or failing a check); {recorded} recorded.\n{listed}{more}",
                metadata={
                    "minutes_not_recorded": MetadataValue.json([minute_key(o.minute_start_ms) for o in failed]),
                    **reason,
                },
            )

    return raw_trades


def _materializations(
    context: AssetExecutionContext, key: AssetKey, results: list[MinuteResult]
) -> Iterator[MaterializeResult]:
    """Every minute of the run good: one ranged ``MaterializeResult``, each partition with its own metadata (Dagster
    writes the range's materializations as one batch where the storage can), so that assets downstream in the same
    run go ahead. Otherwise the good minutes are recorded one by one and the run fails after the checks."""
    if all(o.ok for o in results):
        for result in results:
            partition = minute_key(result.minute_start_ms)
            context.add_asset_metadata(materialization_metadata(result), asset_key=key, partition_key=partition)
        yield MaterializeResult(asset_key=key)
    else:
        record_materializations(context, [minute_materialization(key, o) for o in results if o.ok])


def peak_rss_mb() -> float:
    """The largest resident memory this process has had, in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
