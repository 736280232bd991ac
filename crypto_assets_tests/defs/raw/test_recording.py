"""What a decided minute's ``minute_complete`` evaluation says, by outcome: the values the UI shows."""

from crypto_assets.defs.names import raw_trades_key
from crypto_assets.defs.raw.recording import minute_check
from crypto_assets.ingest.minute_checks import CheckResult, Rule
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome, refused
from crypto_assets.minutes import minute_key

M = 1_700_000_040_000
KEY = raw_trades_key("BTCUSDT")
PASSED = tuple(CheckResult(rule, True, f"{rule} holds") for rule in Rule)


def metadata(evaluation) -> dict:
    return {k: v.value for k, v in evaluation.metadata.items()}


def test_a_good_minute_passes_naming_each_rule():
    evaluation = minute_check(KEY, MinuteResult(M, Outcome.WRITTEN, checks=PASSED))
    assert evaluation.passed and evaluation.partition == minute_key(M)
    assert metadata(evaluation) == {"trade_ids_dense": True, "agrees_with_kline": True, "values_sane": True}


def test_a_failed_rule_fails_with_its_action_and_reasons():
    evaluation = minute_check(KEY, refused("BTCUSDT", M, ValueError("a value no lake can hold")))
    assert not evaluation.passed
    assert metadata(evaluation) == {
        "values_sane": False,
        "action": "refused",
        "reasons": [evaluation.description],
    }


def test_an_unproven_or_missing_minute_fails_with_its_reasons_and_no_rule_result():
    unproven = minute_check(KEY, MinuteResult(M, Outcome.UNPROVEN, reasons=("no closed kline",)))
    assert not unproven.passed
    assert unproven.description == f"minute {minute_key(M)} could not be proven complete, so it was not written: " + (
        "no closed kline"
    )
    assert metadata(unproven) == {"action": "unproven", "reasons": ["no closed kline"]}

    missing = minute_check(KEY, MinuteResult(M, Outcome.MISSING, "/lake/x.parquet", reasons=("/lake/x is gone",)))
    assert not missing.passed and missing.description == "/lake/x is gone"
    assert metadata(missing) == {"action": "missing", "reasons": ["/lake/x is gone"]}  # was "already stored"


def test_a_minute_the_lake_failed_before_storing_is_not_evaluated():
    assert minute_check(KEY, MinuteResult(M, Outcome.NOT_STORED, reasons=("the lake failed",))) is None
