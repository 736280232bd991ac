"""What becomes of a minute read back from the lake, as a value: on a local lake with hand-made trades."""

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.minute_checks import Rule
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome, refused, verify_stored
from crypto_assets.lake import LocalLake
from crypto_assets.minutes import MINUTE_MS

M = 1_700_000_040_000  # a minute start


def kline(minute: int, n: int, volume: str) -> Kline:
    return Kline("BTCUSDT", minute, minute + 59_999, "1", "1", "1", "1", volume, "0", n, "0", "0")


def test_a_stored_minute_is_already_stored_and_checked_a_minute_not_in_the_lake_is_missing(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    lake.write_minute("BTCUSDT", M, [Trade("BTCUSDT", 11, "100", "0.1", M + 1_000, False)])
    out = verify_stored(lake, "BTCUSDT", [M, M + MINUTE_MS], {M: kline(M, 1, "0.1")})

    stored = out[M]
    assert stored.outcome == Outcome.ALREADY_STORED and stored.ok
    assert [c.rule for c in stored.checks] == [Rule.DENSE_IDS, Rule.KLINE_AGREEMENT, Rule.SANE_VALUES]

    # not "already stored" with a made-up check: missing, no rule result (nothing to check), the path as the reason
    missing = out[M + MINUTE_MS]
    assert missing.outcome == Outcome.MISSING and not missing.ok and missing.checks == ()
    path = lake.path_of("BTCUSDT", M + MINUTE_MS)
    assert missing.path == path and missing.problems == [f"{path} is not in the lake"]


def test_outcomes_are_the_actions_the_metadata_shows():
    assert {o.name: o.value for o in Outcome} == {
        "WRITTEN": "written",
        "ALREADY_STORED": "already stored",
        "BEFORE_FIRST_TRADE": "before first trade",
        "UNPROVEN": "unproven",
        "REFUSED": "refused",
        "NOT_STORED": "not stored",
        "MISSING": "missing",
    }


def test_a_refused_minute_fails_values_sane_by_rule():
    result = refused("BTCUSDT", M, ValueError("trade #7: price 0.000000001 has 9 decimals"))
    assert isinstance(result, MinuteResult) and result.outcome == Outcome.REFUSED and not result.ok
    assert [(c.rule, c.passed) for c in result.checks] == [(Rule.SANE_VALUES, False)]
