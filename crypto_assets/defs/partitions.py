"""The partitions of the raw and analytics assets: UTC minutes and hours over one bounded window.

The window starts at UTC midnight ``CRYPTO_PARTITION_DAYS`` days back (default 30: ~43,200 minute partitions, which
the UI's partitions tab loads in about 1.2 s, 3.5 s at 90 days: bench/partitions_view.py). It moves forward
once a day. Older minutes stay in the lake and in the dbt tables; they are just no longer Dagster partitions.
The newest partition is the last minute (hour) that has ended.
"""

from datetime import UTC, datetime, timedelta

from dagster import TimeWindowPartitionsDefinition

from crypto_assets.minutes import KEY_FORMAT

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:00"


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
