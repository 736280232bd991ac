"""The stream repairs its own holes: after each kind of reconnect and after a restart, the ids it missed come over
REST and every minute is written complete by the capture itself (BinanceStream -> LiveCapture with a StreamRepairer
-> lake), against the simulator twenty times faster than real time, compared with its ground truth."""

import threading

import pytest

from crypto_assets.ingest.stored_minutes import Outcome
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets_tests.ingest.test_live_capture import QUIET, T0, assert_equals_truth, capture, fast_simulator

pytestmark = pytest.mark.integration


def at(clock, ms):
    while clock() < ms:
        threading.Event().wait(0.02)


def test_every_kind_of_reconnect_is_repaired_and_every_minute_written(tmp_path):
    def faults(sim, clock):
        at(clock, T0 + 20_000)
        sim.drop_connections()  # abrupt, mid-minute
        at(clock, T0 + MINUTE_MS + 5_000)
        sim.half_open()  # silent from here: noticed after the silence timeout (40 s of exchange time here)
        at(clock, T0 + 2 * MINUTE_MS + 50_000)
        sim.server_shutdown(grace_s=0.2)
        at(clock, T0 + 3 * MINUTE_MS + 59_000)
        sim.drop_connections()  # just before a minute ends

    sim, lake, decided, live = capture(tmp_path, minutes=5, faults=faults, repair=True)
    minutes = range(T0 - MINUTE_MS, T0 + 6 * MINUTE_MS, MINUTE_MS)  # the join minute included: repaired too
    sources = {}
    for minute in minutes:
        for symbol in ("BTCUSDT", QUIET):
            result = decided[(symbol, minute)]
            assert result.outcome == Outcome.WRITTEN and result.ok, (symbol, minute_key(minute), result.problems)
        assert_equals_truth(sim, lake, "BTCUSDT", minute, all_streamed=False)
        assert lake.read_minute(QUIET, minute).num_rows == 0
        sources[minute] = decided[("BTCUSDT", minute)].summary.source
    # the join minute and each minute a cut touched hold trades of both origins
    for touched in (T0 - MINUTE_MS, T0, T0 + MINUTE_MS, T0 + 2 * MINUTE_MS, T0 + 3 * MINUTE_MS):
        assert sources[touched] in ("stream+rest", "rest"), (minute_key(touched), sources)
    # the stream carried its share (which later minutes it carried alone depends on the machine's load: a reconnect
    # that takes longer than planned touches them too, and the repair makes them exact all the same)
    assert any(source in ("stream", "stream+rest") for source in sources.values()), sources
    assert live.repairer.stats.repairs >= 2 * 5 and live.repairer.stats.failed == 0  # join + 4 cuts, 2 symbols


def test_a_restart_goes_on_from_the_last_minute_in_the_lake(tmp_path):
    sim, clock = fast_simulator()
    try:
        capture(tmp_path, minutes=1, repair=True, sim=sim, clock=clock)
        at(clock, T0 + 3 * MINUTE_MS + 30_000)  # the capture is down for more than two minutes
        _, lake, second, live = capture(tmp_path, minutes=5, repair=True, sim=sim, clock=clock)
        for minute in range(T0 + 2 * MINUTE_MS, T0 + 6 * MINUTE_MS, MINUTE_MS):
            for symbol in ("BTCUSDT", QUIET):
                result = second[(symbol, minute)]
                assert result.outcome == Outcome.WRITTEN and result.ok, (symbol, minute_key(minute), result.problems)
            assert_equals_truth(sim, lake, "BTCUSDT", minute, all_streamed=False)
        # the minutes the capture was down for came whole from REST, through the restarted capture itself
        assert second[("BTCUSDT", T0 + 2 * MINUTE_MS)].summary.source == "rest"
        assert min(m for s, m in second if s == "BTCUSDT") == T0 + 2 * MINUTE_MS  # nothing written twice
    finally:
        sim.stop()


def test_a_repair_that_cannot_be_fetched_leaves_its_minutes_to_the_gap_backfill(tmp_path):
    def faults(sim, clock):
        at(clock, T0 + 20_000)
        sim.fail_rest(duration_s=300)  # every REST request fails for 5 minutes of exchange time (15 s here)
        sim.drop_connections()

    sim, lake, decided, live = capture(tmp_path, minutes=4, faults=faults, repair=True)
    given_up = decided[("BTCUSDT", T0)]
    assert given_up.outcome == Outcome.UNPROVEN and "repair over REST failed" in given_up.problems[0], given_up.problems
    assert lake.read_minute("BTCUSDT", T0) is None
    assert decided[("BTCUSDT", T0 + 4 * MINUTE_MS)].ok  # later minutes are captured as usual
    assert_equals_truth(sim, lake, "BTCUSDT", T0 + 4 * MINUTE_MS)
