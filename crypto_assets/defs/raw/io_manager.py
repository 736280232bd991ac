"""How assets downstream of ``raw_trades/<symbol>`` (and ``load_asset_value``) receive its trades: the IO manager
``raw_trades_io_manager`` reads the partitions they depend on from the lake. It only reads: the lake is written by the
stream and the backfills, whose ops record partitions without an output value, so Dagster never hands it one.

An input gets every trade of the upstream partitions it depends on (one minute, or a range through a partition
mapping: an hourly asset gets its 60 minutes as one input), typed by its annotation:
- ``pyarrow.Table`` (also unannotated): ``TRADE_SCHEMA`` as the lake holds it (decimal128(19, 8) price and qty);
- ``pandas.DataFrame``: the same columns backed by Arrow (``pd.ArrowDtype``), so the decimals stay exact;
- ``pyarrow.RecordBatchReader``: the streaming way for ranges too large for memory, one minute file at a time.
Every minute of the range must be recorded (materialized in the instance) and in the lake; otherwise the input fails
naming the minutes, never a table with rows silently missing."""

from typing import Any

import pandas as pd
import pyarrow as pa
from dagster import ConfigurableIOManager, DagsterInvariantViolationError, Failure, InputContext, OutputContext

from crypto_assets.defs.partitions import materialized_minutes
from crypto_assets.defs.raw.resources import LakeResource
from crypto_assets.lake import LakeError
from crypto_assets.lake.ranges import SHOWN, iter_range, read_range
from crypto_assets.lake.schema import TRADE_SCHEMA
from crypto_assets.minutes import MINUTE_MS, minute_key

RAW_TRADES_IO_MANAGER = "raw_trades_io_manager"
LOADABLE = (pa.Table, pd.DataFrame, pa.RecordBatchReader)


class RawTradesIOManager(ConfigurableIOManager):
    """Loads ``raw_trades/<symbol>`` partitions from the lake as a pyarrow Table, a pandas DataFrame (Arrow-backed,
    exact decimals) or a pyarrow RecordBatchReader (streaming), by the input's annotation."""

    lake: LakeResource

    def handle_output(self, context: OutputContext, obj: object) -> None:
        raise Failure(
            f"{context.asset_key.to_user_string()} is written by the stream and the backfills, not through its IO "
            f"manager: its op records partitions without returning a value"
        )

    def load_input(self, context: InputContext) -> pa.Table | pd.DataFrame | pa.RecordBatchReader:
        key = context.asset_key
        if not context.has_asset_partitions:
            raise Failure(
                f"{key.to_user_string()} has one partition per minute: an asset that reads it must be partitioned "
                f"too (by minute, hour or day; a partition mapping picks the minutes), not read it whole"
            )
        window = context.asset_partitions_time_window
        start_ms, end_ms = int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)
        symbol = key.path[-1].upper()
        wanted = context.dagster_type.typing_type
        if wanted in (object, Any):  # unannotated, or load_asset_value without a python_type
            wanted = pa.Table
        if wanted not in LOADABLE:
            raise Failure(
                f"an input of {key.to_user_string()} can be a pyarrow.Table, a pandas.DataFrame or a "
                f"pyarrow.RecordBatchReader, not {wanted!r}"
            )
        unrecorded = _unrecorded(context, start_ms, end_ms)
        if unrecorded:
            more = f" and {len(unrecorded) - SHOWN} more" if len(unrecorded) > SHOWN else ""
            raise Failure(
                f"{len(unrecorded)} minute(s) of {key.to_user_string()} in {minute_key(start_ms)}.."
                f"{minute_key(end_ms - MINUTE_MS)} are not recorded yet: {', '.join(unrecorded[:SHOWN])}{more}"
            )
        lake = self.lake.lake()
        try:
            if wanted is pa.RecordBatchReader:
                return pa.RecordBatchReader.from_batches(TRADE_SCHEMA, iter_range(lake, symbol, start_ms, end_ms))
            table = read_range(lake, symbol, start_ms, end_ms)
        except LakeError as exc:  # a minute recorded but not in the lake, an unreadable file, a lake that fails
            raise Failure(f"cannot load {key.to_user_string()}: {exc}") from exc
        return table.to_pandas(types_mapper=pd.ArrowDtype) if wanted is pd.DataFrame else table


def _unrecorded(context: InputContext, start_ms: int, end_ms: int) -> list[str]:
    """The minute keys of [start_ms, end_ms) without a materialization in the instance (none checked when the
    context has no instance: a direct call; the lake still refuses minutes it does not hold)."""
    try:
        instance = context.instance
    except DagsterInvariantViolationError:  # built without an instance
        return []
    recorded = materialized_minutes(instance, context.asset_key, start_ms, end_ms)
    return [minute_key(m) for m in range(start_ms, end_ms, MINUTE_MS) if minute_key(m) not in recorded]
