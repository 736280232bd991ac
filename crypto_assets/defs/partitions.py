"""The partitions of the raw and analytics assets: UTC minutes and hours over one bounded window.

The window starts at UTC midnight ``CRYPTO_PARTITION_DAYS`` days back (default 30: ~43,200 minute partitions, which
the UI's partitions tab loads in about 1.2 s, 3.5 s at 90 days: bench/partitions_view.py). It moves forward
once a day. Older minutes stay in the lake and in the dbt tables; they are just no longer Dagster partitions.
The newest partition is the last minute (hour) that has ended.

Dagster finds the minute partition of a time by iterating its cron minute by minute from an hour back
(``dagster/_utils/schedules.py``): about 10 ms a lookup, asked again for every raw asset when Declarative
Automation maps an hour onto its minutes, so the analytics automation's tick grew by ~0.1 s per symbol (60 s at
500). ``memoize_time_window_lookups`` caches those two pure lookups per partitions definition (docs/adr/0010).
"""

import functools
from datetime import UTC, datetime, timedelta

from dagster import AssetKey, DagsterEventType, DagsterInstance, TimeWindowPartitionsDefinition

from crypto_assets.minutes import KEY_FORMAT, MINUTE_MS, minute_key

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:00"
KEYS_PER_QUERY = 1440  # minute keys asked for in one query: a day
LOOKUPS_CACHED = 16_384  # memoized partition lookups per kind (a tick asks for a few hundred distinct ones)


def memoize_time_window_lookups() -> None:
    """Cache ``TimeWindowPartitionsDefinition``'s key-for-timestamp and start-for-key lookups (pure functions of an
    immutable, hashable definition and their arguments) in this process; idempotent."""
    cls = TimeWindowPartitionsDefinition
    if getattr(cls, "_crypto_assets_memoized", False):
        return
    key_for_timestamp, start_for_key = cls.get_partition_key_for_timestamp, cls.start_time_for_partition_key
    cached_key = functools.lru_cache(maxsize=LOOKUPS_CACHED)(key_for_timestamp)
    cached_start = functools.lru_cache(maxsize=LOOKUPS_CACHED)(start_for_key)

    def get_partition_key_for_timestamp(self, timestamp: float, end_closed: bool = False) -> str:
        return cached_key(self, timestamp, end_closed)

    def start_time_for_partition_key(self, partition_key: str) -> datetime:
        return cached_start(self, partition_key)

    cls.get_partition_key_for_timestamp = get_partition_key_for_timestamp
    cls.start_time_for_partition_key = start_time_for_partition_key
    cls._crypto_assets_memoized = True


memoize_time_window_lookups()


def window_start(partition_days: int, now: datetime | None = None) -> datetime:
    """UTC midnight ``partition_days`` days before today."""
    today = (now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=partition_days)


def minute_partitions(partition_days: int, now: datetime | None = None) -> TimeWindowPartitionsDefinition:
    """One partition per UTC minute, keyed ``%Y-%m-%d-%H:%M`` (e.g. 2026-11-21-06:53)."""
    return TimeWindowPartitionsDefinition(
        start=window_start(partition_days, now), cron_schedule="* * * * *", fmt=KEY_FORMAT, timezone="UTC"
    )


def hour_partitions(partition_days: int, now: datetime | None = None) -> TimeWindowPartitionsDefinition:
    """One partition per UTC hour over the same window, keyed ``%Y-%m-%d-%H:00`` (e.g. 2026-11-21-06:00)."""
    return TimeWindowPartitionsDefinition(
        start=window_start(partition_days, now), cron_schedule="0 * * * *", fmt=HOUR_KEY_FORMAT, timezone="UTC"
    )


def materialized_minutes(instance: DagsterInstance, key: AssetKey, start_ms: int, end_ms: int) -> set[str]:
    """The minute partitions of [start_ms, end_ms) that ``key`` has a materialization of. Only the window's keys are
    asked for, so a sensor tick costs the same after a month as after a day (``get_materialized_partitions`` reads
    every partition the asset ever had: 0.15-0.19 s per asset at 30 days of minutes, bench/instance_cost.py)."""
    keys = [minute_key(m) for m in range(start_ms, end_ms, MINUTE_MS)]
    found: set[str] = set()
    for i in range(0, len(keys), KEYS_PER_QUERY):  # never an empty set: that would mean every partition
        chunk = set(keys[i : i + KEYS_PER_QUERY])
        found.update(instance.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION, chunk))
    return found
