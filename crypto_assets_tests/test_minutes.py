import pytest

from crypto_assets.minutes import (
    MINUTE_MS,
    check_whole_minutes,
    floor_minute,
    minute_key,
    minute_keys,
    minute_start_ms,
    minute_starts,
)

NOV_21_1005 = 1795255500000  # 2026-11-21T10:05:00Z


@pytest.mark.parametrize(
    "key, ms", [("2026-11-21-10:05", NOV_21_1005), ("1970-01-01-00:00", 0), ("2024-02-29-23:59", 1709251140000)]
)
def test_valid_keys_round_trip(key, ms):
    assert minute_start_ms(key) == ms
    assert minute_key(ms) == key
    assert minute_key(ms + 59_999) == key


@pytest.mark.parametrize(
    "key",
    [
        "2026-13-01-00:00",
        "2026-11-21-10:5",
        "abc",
        "",
        "2026-11-21 10:05",
        "2026-02-30-00:00",
        "2026-11-21-24:00",
        "2026-11-21-10:60",
        "2026-11-21-10:05Z",
        " 2026-11-21-10:05",
        "2025-02-29-00:00",
    ],
)
def test_malformed_keys_raise_naming_the_key(key):
    with pytest.raises(ValueError) as err:
        minute_start_ms(key)
    assert repr(key) in str(err.value)


def test_non_string_key():
    with pytest.raises(ValueError, match="malformed minute partition key 5"):
        minute_start_ms(5)  # type: ignore[arg-type]


def test_splitting_a_range():
    assert floor_minute(NOV_21_1005 + 1234) == NOV_21_1005
    assert minute_starts(NOV_21_1005, NOV_21_1005 + 3 * MINUTE_MS) == [NOV_21_1005 + i * MINUTE_MS for i in range(3)]
    assert minute_starts(NOV_21_1005 + 1, NOV_21_1005 + MINUTE_MS + 1) == [NOV_21_1005, NOV_21_1005 + MINUTE_MS]
    assert minute_starts(NOV_21_1005, NOV_21_1005) == []
    assert minute_keys(NOV_21_1005, NOV_21_1005 + 2 * MINUTE_MS) == ["2026-11-21-10:05", "2026-11-21-10:06"]


def test_whole_minutes_check():
    check_whole_minutes(NOV_21_1005, NOV_21_1005 + MINUTE_MS)
    with pytest.raises(ValueError, match="whole minutes"):
        check_whole_minutes(NOV_21_1005 + 1, NOV_21_1005 + MINUTE_MS)
    with pytest.raises(ValueError, match="empty minute range"):
        check_whole_minutes(NOV_21_1005, NOV_21_1005)
