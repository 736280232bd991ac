"""The names the raw and analytics domains share: the raw asset keys, and Dagster's own run tags and run statuses
(imported from Dagster, never retyped)."""

from dagster import AssetKey
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

# A run that has not finished: queued, starting, started, cancelling (or suspended). Sensors count these as in flight.
IN_FLIGHT_STATUSES = list(NOT_FINISHED_STATUSES)
# The tags Dagster puts on a run of one partition, or of a partition range (a backfill's single run, a gap run).
PARTITION_TAG = PARTITION_NAME_TAG
RANGE_START_TAG = ASSET_PARTITION_RANGE_START_TAG
RANGE_END_TAG = ASSET_PARTITION_RANGE_END_TAG


def raw_trades_key(symbol: str) -> AssetKey:
    """``raw_trades/<symbol>`` (lower case): the minute-partitioned asset of one symbol's trades."""
    return AssetKey(["raw_trades", symbol.lower()])
