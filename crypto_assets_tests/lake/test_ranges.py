"""A range of minutes read back from every lake (local, and S3 on moto): one table or a stream of batches, in order,
equal to what was written; a minute the lake does not hold is named, before anything is read."""

from __future__ import annotations

import pyarrow as pa
import pytest

from crypto_assets.lake.ranges import SHOWN, MinutesNotInLake, iter_range, read_range
from crypto_assets.lake.schema import TRADE_SCHEMA, trades_to_table
from crypto_assets.minutes import minute_key
from crypto_assets_tests.lake.trades import MINUTE, MINUTE_MS, simulated_minute

MINUTES = [MINUTE + i * MINUTE_MS for i in range(12)]


@pytest.fixture
def written(lake):
    tables = []
    for minute in MINUTES:
        trades = simulated_minute(minute, rate=2)
        lake.write_minute("BTCUSDT", minute, trades)
        tables.append(trades_to_table(trades))
    return pa.concat_tables(tables)


def test_a_range_reads_back_as_written_in_order(lake, written):
    table = read_range(lake, "BTCUSDT", MINUTES[0], MINUTES[-1] + MINUTE_MS)
    assert table.schema == TRADE_SCHEMA and table.equals(written)
    streamed = pa.Table.from_batches(list(iter_range(lake, "BTCUSDT", MINUTES[0], MINUTES[-1] + MINUTE_MS)))
    assert streamed.equals(written)


def test_a_minute_not_in_the_lake_is_named_before_anything_is_read(lake, written):
    end = MINUTES[-1] + 9 * MINUTE_MS  # 8 minutes past the last one written
    with pytest.raises(MinutesNotInLake) as raised:
        iter_range(lake, "BTCUSDT", MINUTES[0], end)  # raises here, not at the first batch
    message = str(raised.value)
    assert message.startswith(
        f"8 minute(s) of BTCUSDT are not in lake {lake.url}: {minute_key(MINUTES[-1] + MINUTE_MS)}"
    )
    assert raised.value.missing == list(range(MINUTES[-1] + MINUTE_MS, end, MINUTE_MS))


def test_many_missing_minutes_are_counted_not_all_listed(lake):
    with pytest.raises(MinutesNotInLake, match=rf"{SHOWN} more$"):
        read_range(lake, "BTCUSDT", MINUTE, MINUTE + 2 * SHOWN * MINUTE_MS)
