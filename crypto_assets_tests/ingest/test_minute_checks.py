"""The three rules of a stored minute and their one verdict, on tables built from hand-made trades."""

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.minute_checks import Rule, check_ids, check_kline, check_values, summarize, verdict
from crypto_assets.lake.schema import trades_to_table

M = 1_700_000_040_000  # a minute start


def trades(*ids, price="100.5", qty="0.1", at=M + 1_000):
    return [Trade("BTCUSDT", i, price, qty, at + n, False) for n, i in enumerate(ids)]


def kline(n, volume, first=None, last=None, open_time=M):
    return Kline("BTCUSDT", open_time, open_time + 59_999, "1", "1", "1", "1", volume, "0", n, "0", "0", first, last)


def test_dense_and_continuous():
    table = trades_to_table(trades(11, 12, 13))
    result = check_ids(M, table, prev_last_id=10, next_first_id=14)
    assert result.passed and "unchecked" not in result.description
    assert check_ids(M, table, None, None).passed
    assert "unchecked" in check_ids(M, table, None, None).description


def test_hole_and_broken_continuity_are_named():
    table = trades_to_table(trades(11, 12, 15))
    result = check_ids(M, table, prev_last_id=9, next_first_id=17)
    assert not result.passed
    # the messages of completeness's rules (the same as the proof's), the minute named once
    assert result.description.count("minute 2023-11-14-22:14") == 1
    assert "trade ids not consecutive: hole after 12 (2 missing, next is 15)" in result.description
    assert (
        "start boundary: first trade id 11 != 10 expected from the last trade before the minute" in result.description
    )
    assert (
        "end boundary: the next trade after the minute is 17, expected 16 (last trade id 15 + 1)" in result.description
    )


def test_empty_minute_continuity():
    empty = trades_to_table([])
    assert check_ids(M, empty, 10, 11).passed
    assert "jump" in check_ids(M, empty, 10, 13).description


def test_kline_agreement():
    table = trades_to_table(trades(11, 12, 13))
    assert check_kline(M, table, kline(3, "0.30000000")).passed
    assert check_kline(M, table, kline(3, "0.3", first=11, last=13)).passed
    wrong = check_kline(M, table, kline(4, "0.4", first=10, last=13))
    assert not wrong.passed
    for text in (
        "trade count 4 != 3 trade(s) held",
        "volume 0.4 != sum of qty 0.3",
        "kline first trade id 10 != first trade id held 11",
    ):
        assert text in wrong.description
    assert not check_kline(M, table, None).passed
    assert not check_kline(M, table, None, 10, 14).passed  # a minute with trades always needs its kline


def test_an_empty_minute_the_ids_run_on_across_needs_no_kline():
    empty = trades_to_table([])
    result = check_kline(M, empty, None, prev_last_id=10, next_first_id=11)
    assert result.passed and "(10 -> 11)" in result.description
    for prev, nxt in ((10, 13), (None, 11), (10, None)):
        assert not check_kline(M, empty, None, prev, nxt).passed
    assert check_kline(M, empty, kline(0, "0", first=-1, last=-1)).passed
    assert "first trade id is 11" in check_kline(M, empty, kline(0, "0", first=11)).description


def test_the_stored_checks_and_the_proof_say_the_same():
    """Both run completeness's rules: a hole, a boundary and a kline disagreement read alike before and after."""
    from crypto_assets.ingest.completeness import prove_minute

    held = trades(11, 12, 15)
    reasons = prove_minute(M, held, prev_trade_id=9, next_trade_id=17, kline=kline(4, "0.3")).reasons
    described = (
        check_ids(M, trades_to_table(held), 9, 17).description
        + check_kline(M, trades_to_table(held), kline(4, "0.3")).description
    )
    name = "minute 2023-11-14-22:14: "
    assert len(reasons) == 4 and all(r.startswith(name) and r[len(name) :] in described for r in reasons)


def test_values_sane():
    assert check_values(M, trades_to_table(trades(1, 2))).passed
    assert "price <= 0" in check_values(M, trades_to_table(trades(1, price="0"))).description
    outside = check_values(M, trades_to_table(trades(1, at=M + 60_000)))
    assert "1 trade(s) outside the minute" in outside.description and "trade 1 at" in outside.description


def test_summary_is_exact():
    summary = summarize(M, trades_to_table(trades(7, 8, price="0.00000003", qty="3")))
    assert (summary.rows, summary.first_trade_id, summary.last_trade_id) == (2, 7, 8)
    assert (summary.base_volume, summary.quote_volume, summary.source) == ("6", "0.00000018", "rest")
    empty = summarize(M, trades_to_table([]))
    assert (empty.rows, empty.first_trade_id, empty.base_volume, empty.quote_volume) == (0, None, "0", "0")


def test_the_verdict_passes_only_when_every_rule_holds_and_names_each():
    table = trades_to_table(trades(11, 12, 13))
    good = verdict((check_ids(M, table, 10, 14), check_kline(M, table, kline(3, "0.3")), check_values(M, table)))
    assert good.passed and good.reasons == () and good.failed == () and good.metadata == {}
    assert good.rules == {"trade_ids_dense": True, "agrees_with_kline": True, "values_sane": True}
    assert good.description == "every rule holds: trade_ids_dense, agrees_with_kline, values_sane"

    holed = trades_to_table(trades(11, 12, 15))
    bad = verdict((check_ids(M, holed, 10, 16), check_kline(M, holed, kline(4, "0.3")), check_values(M, holed)))
    assert not bad.passed
    assert bad.rules == {Rule.DENSE_IDS: False, Rule.KLINE_AGREEMENT: False, Rule.SANE_VALUES: True}
    # which rules failed is a value, in order, each with its description: nothing is read out of the text
    assert bad.failed == (Rule.DENSE_IDS, Rule.KLINE_AGREEMENT)
    assert len(bad.reasons) == 2 and "hole after 12" in bad.reasons[0]
    assert bad.description == "; ".join(bad.reasons)
    assert bad.metadata["kline_trade_count"] == 4 and bad.metadata["previous_last_id"] == 10


def test_each_rule_names_its_result():
    table = trades_to_table(trades(11, 12, 13))
    results = (check_ids(M, table, 10, 14), check_kline(M, table, None), check_values(M, table))
    assert [(r.rule, r.passed) for r in results] == [
        (Rule.DENSE_IDS, True),
        (Rule.KLINE_AGREEMENT, False),
        (Rule.SANE_VALUES, True),
    ]
    assert [r.value for r in Rule] == ["trade_ids_dense", "agrees_with_kline", "values_sane"]  # the metadata names
