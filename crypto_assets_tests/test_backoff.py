"""The one back-off rule: doubling from the first wait, capped, jitter within the upper half."""

import pytest

from crypto_assets.backoff import Backoff


def test_the_wait_doubles_from_the_first_and_stops_at_the_cap():
    b = Backoff(first_s=0.5, max_s=30)
    assert [b.delay_s(n) for n in range(9)] == [0, 0.5, 1, 2, 4, 8, 16, 30, 30]
    assert b.delay_s(10_000) == 30  # no overflow after a long outage


def test_jitter_draws_from_the_upper_half():
    b = Backoff(first_s=1, max_s=8, jitter=True)
    draws = [b.delay_s(3) for _ in range(500)]
    assert all(2 <= d <= 4 for d in draws) and max(draws) - min(draws) > 1


@pytest.mark.parametrize(("first", "cap"), [(2, 1), (-1, 5)])
def test_a_nonsense_policy_is_refused(first, cap):
    with pytest.raises(ValueError, match="back-off needs"):
        Backoff(first_s=first, max_s=cap)
