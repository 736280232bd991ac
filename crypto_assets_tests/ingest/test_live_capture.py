"""The stream path end to end without Dagster: BinanceStream -> LiveCapture -> lake, against the simulator running
twenty times faster than real time (a minute lasts 3 s), compared with the simulator's ground truth; a value the
lake refuses, and a lake that fails for minutes (the spool)."""

import threading
import time
from decimal import Decimal

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange.models import Connected, Disconnected, Kline, MalformedFrame, Trade
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.exchange.stream import BinanceStream
from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets.ingest.live_capture import LiveCapture
from crypto_assets.ingest.spool import MinuteSpool, SpooledMinute
from crypto_assets.ingest.stored_minutes import Outcome
from crypto_assets.ingest.stream_repair import StreamRepairer
from crypto_assets.lake import LocalLake, minute_file_path
from crypto_assets.lake.schema import trades_to_table
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets_tests.exchange._clocks import FastClock
from crypto_assets_tests.ground_truth import truth

pytestmark = pytest.mark.integration

SPEED = 20
QUIET = "QUIETUSDT"
T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS  # a minute start


def fast_simulator():
    """A started simulator of BTCUSDT and a symbol that never trades, 5 s before minute T0 on a fast clock."""
    clock = FastClock(T0 - 5_000, SPEED)
    config = SimulatorConfig(
        symbols=[
            symbol_config("BTCUSDT", burst_probability=0.1),
            symbol_config(QUIET, trades_per_second=0, burst_probability=0),
        ],
        history_minutes=2,
    )
    return Simulator(config, clock=clock).start(), clock


def capture(tmp_path, minutes: int, faults=None, *, repair: bool = False, sim=None, clock=None):
    """Stream from 5 s before minute T0 (or from ``clock``'s now, with ``sim`` already running) until every minute up
    to T0 + ``minutes`` is decided; call ``faults(sim, clock)`` from a thread. With ``repair`` the capture repairs
    its holes over REST (as the capture process does) and goes on from what the lake holds. Returns
    (sim, lake, {(symbol, minute): MinuteResult}, live)."""
    own_sim = sim is None
    if own_sim:
        sim, clock = fast_simulator()
    lake = LocalLake(tmp_path / "lake")
    repairer = (
        StreamRepairer(BinanceRestClient(sim.rest_url, budget=WeightBudget(clock=clock, speed=SPEED)))
        if repair
        else None
    )
    # on the fast clock a REST round trip or a busy CPU takes minutes of exchange time: with repairs (the case under
    # test) the waits are scaled to real seconds
    waits = (
        {"repair_wait_ms": 30_000 * SPEED, "blind_wait_ms": 30_000 * SPEED, "grace_ms": 3_000 * SPEED} if repair else {}
    )
    live = LiveCapture(lake, ["BTCUSDT", QUIET], repairer=repairer, clock=lambda: clock() / 1000, **waits)
    if repair:
        live.resume_from_lake()
    decided = {}
    # a half-open connection is noticed after 40 s of exchange time (2 s here)
    stream = BinanceStream(sim.ws_url, ["BTCUSDT", QUIET], clock=clock, silence_timeout_s=2.0)
    if faults:
        threading.Thread(target=faults, args=(sim, clock), daemon=True).start()
    try:
        for record in stream.records():
            for symbol, result in live.feed(record):
                decided[(symbol, result.minute_start_ms)] = result
            if all((s, T0 + minutes * MINUTE_MS) in decided for s in ("BTCUSDT", QUIET)):
                break
    finally:
        stream.close()
        if repairer is not None:
            repairer.close()
        if own_sim:
            sim.stop()
    return sim, lake, decided, live


def assert_equals_truth(sim, lake, symbol, minute, *, all_streamed=True):
    """The lake's minute is the exchange's, trade by trade (every trade from the stream, unless a repair added some)."""
    stored = lake.read_minute(symbol, minute)
    assert stored is not None, f"{symbol} {minute_key(minute)} not in the lake"
    expected = trades_to_table(truth(sim, symbol, minute, minute + MINUTE_MS))
    assert stored.drop_columns("received_at").equals(expected.drop_columns("received_at")), minute_key(minute)
    if all_streamed:
        assert stored.column("received_at").null_count == 0


def test_every_minute_after_joining_is_written_complete_and_checked(tmp_path):
    sim, lake, decided, _ = capture(tmp_path, minutes=3)
    # the minute the stream joined is given up (the REST backfill fetches it); it is not in the lake
    joined = decided[("BTCUSDT", T0 - MINUTE_MS)]
    assert joined.outcome == Outcome.UNPROVEN and "joined" in joined.problems[0]
    assert lake.read_minute("BTCUSDT", T0 - MINUTE_MS) is None
    for minute in range(T0, T0 + 4 * MINUTE_MS, MINUTE_MS):
        result = decided[("BTCUSDT", minute)]
        assert result.outcome == Outcome.WRITTEN and result.ok, result.problems
        assert result.summary.source == "stream"
        assert_equals_truth(sim, lake, "BTCUSDT", minute)
        quiet = decided[(QUIET, minute)]
        assert quiet.ok and lake.read_minute(QUIET, minute).num_rows == 0
        assert quiet.summary.source == "stream"  # no trade to tell: the stream's own closed kline proved it empty
        # recorded within seconds of the minute's end (exchange time), not after the grace period
        assert result.written_at_ms - (minute + MINUTE_MS) < 3_000 * SPEED


def test_minutes_touched_by_a_disconnect_or_malformed_frame_are_left_to_rest(tmp_path):
    def faults(sim, clock):
        while clock() < T0 + MINUTE_MS + 20_000:
            threading.Event().wait(0.05)
        sim.drop_connections()  # during minute T0+1
        while clock() < T0 + 3 * MINUTE_MS + 30_000:
            threading.Event().wait(0.05)
        sim.send_malformed("BTCUSDT", count=1)  # during minute T0+3

    sim, lake, decided, _ = capture(tmp_path, minutes=5, faults=faults)
    by_minute = {m: decided[("BTCUSDT", m)] for m in range(T0, T0 + 6 * MINUTE_MS, MINUTE_MS)}
    given_up = {m for m, o in by_minute.items() if not o.ok}
    assert T0 + MINUTE_MS in given_up and T0 + 3 * MINUTE_MS in given_up
    assert T0 + 5 * MINUTE_MS not in given_up and T0 not in given_up
    for minute, result in by_minute.items():
        if minute in given_up:
            assert result.outcome == Outcome.UNPROVEN and lake.read_minute("BTCUSDT", minute) is None
        else:
            assert_equals_truth(sim, lake, "BTCUSDT", minute)


# ---- what the lake refuses, and a lake that fails for a while -------------------------------------------------------
def synthetic_minute(symbol, minute, first_id, prices):
    """Trades (qty 0.5 each) of one minute with these prices, and its closed stream kline."""
    trades = [
        Trade(
            symbol,
            first_id + i,
            price,
            "0.50000000",
            minute + 1_000 * (i + 1),
            False,
            received_at=minute + 1_000 * (i + 1) + 5,
        )
        for i, price in enumerate(prices)
    ]
    kline = Kline(
        symbol,
        minute,
        minute + MINUTE_MS - 1,
        "1",
        "1",
        "1",
        "1",
        str(Decimal("0.5") * len(prices)),
        "0",
        len(prices),
        "0",
        "0",
        first_trade_id=first_id,
        last_trade_id=first_id + len(prices) - 1,
        received_at=minute + MINUTE_MS,
    )
    return trades, kline


def test_a_minute_whose_value_the_lake_refuses_is_given_up_and_the_stream_goes_on(tmp_path):
    now = [T0 - 5_000]
    live = LiveCapture(LocalLake(tmp_path / "lake"), ["BTCUSDT"], clock=lambda: now[0] / 1000)
    live.feed(Connected(T0 - 5_000, "ws://sim"))
    bad_trades, bad_kline = synthetic_minute("BTCUSDT", T0, 100, ["96748.61", "96748.000000001", "96749"])
    good_trades, good_kline = synthetic_minute("BTCUSDT", T0 + MINUTE_MS, 103, ["96750", "96751"])
    decided = []
    for record in [*bad_trades, *good_trades, bad_kline, good_kline]:
        now[0] = max(now[0], record.trade_time if isinstance(record, Trade) else record.received_at + 100)
        decided += live.feed(record)
    by_minute = {result.minute_start_ms: result for _, result in decided}

    refused = by_minute[T0]
    assert refused.outcome == Outcome.REFUSED and not refused.ok
    reason = refused.problems[0]
    for part in ("BTCUSDT", minute_key(T0), "#101", "96748.000000001"):
        assert part in reason, reason
    assert LocalLake(tmp_path / "lake").read_minute("BTCUSDT", T0) is None
    assert by_minute[T0 + MINUTE_MS].outcome == Outcome.WRITTEN  # the next minute is written and checked as usual
    assert LocalLake(tmp_path / "lake").read_minute("BTCUSDT", T0 + MINUTE_MS).num_rows == 2


class WriteLog(LocalLake):
    """A real local lake that also notes the order in which minute files are written."""

    def __init__(self, root):
        super().__init__(root)
        self.writes = []

    def _write_bytes(self, key, data):
        super()._write_bytes(key, data)
        self.writes.append(key)


def test_a_lake_outage_waits_in_the_spool_and_every_minute_lands_once_in_order(tmp_path):
    """The lake's root is a regular file (every read and write fails with LakeError) from the start until 4.5
    minutes in. The minutes wait in the spool; the capture restarts 2.5 minutes in (new spool, new connection) and
    drains what the first one left before anything newer. In the end every minute is in the lake as the exchange has
    it, written once, in order; only the minute the restarted stream joined during is left to REST."""
    root = tmp_path / "lake"
    root.write_text("not a folder")
    lake = WriteLog(root)
    sim, clock = fast_simulator()
    decided, statuses = [], []

    def capture_until(done) -> LiveCapture:
        spool = MinuteSpool(tmp_path / "spool", 64 * 2**20)
        live = LiveCapture(lake, ["BTCUSDT", QUIET], spool=spool, clock=lambda: clock() / 1000)
        stream = BinanceStream(sim.ws_url, ["BTCUSDT", QUIET], clock=clock)
        next_retry = 0.0
        try:
            for record in stream.records():
                decided.extend(live.feed(record))
                if root.is_file() and clock() >= T0 + 4 * MINUTE_MS + 30_000:
                    statuses.append(live.spool_status())
                    root.unlink()  # the lake is back
                if time.monotonic() >= next_retry:  # a retry every 5 s of exchange time, as the drainer does
                    decided.extend(live.drain_spool())
                    next_retry = time.monotonic() + 5 / SPEED
                if done() or clock() > T0 + 9 * MINUTE_MS:
                    break
        finally:
            stream.close()
            spool.close()
        return live

    try:
        first = capture_until(lambda: clock() >= T0 + 2 * MINUTE_MS + 30_000)
        statuses.append(first.spool_status())
        second = capture_until(
            lambda: (
                {("BTCUSDT", T0 + 5 * MINUTE_MS), (QUIET, T0 + 5 * MINUTE_MS)}
                <= {(s, o.minute_start_ms) for s, o in decided}
            )
        )
    finally:
        sim.stop()

    # while minutes waited, the status said how many, since when and why (the lake's own error)
    assert statuses[0].startswith("4 minute(s) wait in the spool") and "Not a directory" in statuses[0], statuses
    assert "Not a directory" in statuses[1] and second.spool_status() is None
    written = [(s, o.minute_start_ms) for s, o in decided if o.outcome == Outcome.WRITTEN]
    assert len(written) == len(set(written))  # each minute reported once
    expected = [T0, T0 + MINUTE_MS] + list(range(T0 + 3 * MINUTE_MS, T0 + 6 * MINUTE_MS, MINUTE_MS))
    for symbol in ("BTCUSDT", QUIET):
        minutes = [m for s, m in written if s == symbol]
        assert minutes == expected  # T0 + 2: the restarted stream joined during it (left to REST)
        keys = [k for k in lake.writes if f"symbol={symbol}/" in k]
        assert keys == [minute_file_path(symbol, m) for m in minutes]  # written once each, in order
        joined = [o for s, o in decided if s == symbol and o.minute_start_ms == T0 + 2 * MINUTE_MS]
        assert [o.outcome for o in joined] == [Outcome.UNPROVEN]
    assert all(o.ok for _, o in decided if o.outcome == Outcome.WRITTEN)
    # drained from the spool, each minute keeps its source (an empty one too: its stream kline waited with it)
    assert {o.summary.source for _, o in decided if o.outcome == Outcome.WRITTEN} == {"stream"}
    for minute in expected:
        assert_equals_truth(sim, lake, "BTCUSDT", minute)
        assert lake.read_minute(QUIET, minute).num_rows == 0


def test_a_minute_without_trades_is_sourced_by_what_proved_it_empty(tmp_path):
    """An empty minute's file has no trade whose received_at could tell where it came from: the capture names the
    kline that proved it empty, the stream's (``stream``) or a repair's over REST (``rest``, no received_at)."""
    lake = LocalLake(tmp_path / "lake")
    spool = MinuteSpool(tmp_path / "spool", 2**20)
    live = LiveCapture(lake, [QUIET], spool=spool, clock=lambda: (T0 + 3 * MINUTE_MS) / 1000)
    streamed = Kline(QUIET, T0, T0 + MINUTE_MS - 1, "1", "1", "1", "1", "0", "0", 0, "0", "0", -1, -1, T0 + MINUTE_MS)
    repaired = Kline(QUIET, T0 + MINUTE_MS, T0 + 2 * MINUTE_MS - 1, "1", "1", "1", "1", "0", "0", 0, "0", "0")
    for kline in (streamed, repaired):
        assert spool.put(SpooledMinute(QUIET, kline.open_time, [], kline, T0 + 3 * MINUTE_MS))
    drained = {result.minute_start_ms: result for _, result in live.drain_spool()}
    assert all(o.outcome == Outcome.WRITTEN and o.ok and o.summary.rows == 0 for o in drained.values()), drained
    assert drained[T0].summary.source == "stream"
    assert drained[T0 + MINUTE_MS].summary.source == "rest"


def test_an_unreadable_file_in_the_lake_gives_up_its_minute_without_blocking_the_others(tmp_path):
    """A minute whose existing file is not a valid minute file (the merge needs it) is given up naming the file; the
    lake itself answers, so nothing waits in the spool behind it."""
    lake = LocalLake(tmp_path / "lake")
    spool = MinuteSpool(tmp_path / "spool", 2**20)
    garbage = tmp_path / "lake" / minute_file_path("BTCUSDT", T0)
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"not parquet")
    now = [T0 - 5_000]
    live = LiveCapture(lake, ["BTCUSDT"], spool=spool, clock=lambda: now[0] / 1000)
    live.feed(Connected(T0 - 5_000, "ws://sim"))
    stuck_trades, stuck_kline = synthetic_minute("BTCUSDT", T0, 100, ["96748.61", "96749"])
    good_trades, good_kline = synthetic_minute("BTCUSDT", T0 + MINUTE_MS, 102, ["96750", "96751"])
    decided = []
    for record in [*stuck_trades, *good_trades, stuck_kline, good_kline]:
        now[0] = max(now[0], record.trade_time if isinstance(record, Trade) else record.received_at + 100)
        decided += live.feed(record)
    by_minute = {result.minute_start_ms: result for _, result in decided}
    assert not by_minute[T0].ok and str(garbage) in by_minute[T0].problems[0]
    assert by_minute[T0 + MINUTE_MS].outcome == Outcome.WRITTEN and len(spool) == 0
    assert garbage.read_bytes() == b"not parquet"  # left for a person to look at


# ---- several connections: each event concerns its connection's symbols only ---------------------------------------
class NoteRepairs:
    """What LiveCapture needs of a StreamRepairer, noting each request and answering none."""

    def __init__(self):
        self.requests = []

    def submit(self, request, first_stream_id):
        self.requests.append(request)

    def done(self):
        return []


def test_connection_events_reach_only_their_connections_symbols(tmp_path):
    repairs = NoteRepairs()
    live = LiveCapture(
        LocalLake(tmp_path / "lake"),
        ["AAAUSDT", "BBBUSDT", "CCCUSDT"],
        repairer=repairs,
        clock=lambda: (T0 + 30_000) / 1000,  # nothing ends while the test looks
    )
    live.feed(Connected(T0, "ws://sim/1", ("AAAUSDT", "BBBUSDT")))
    live.feed(Connected(T0 + 1_000, "ws://sim/2", ("CCCUSDT",)))
    assert [r.symbol for r in repairs.requests] == ["AAAUSDT", "BBBUSDT", "CCCUSDT"]  # each joined on its own
    assert [r.connected_at for r in repairs.requests] == [T0, T0, T0 + 1_000]
    # the second connection drops and comes back: only its symbol is repaired
    trade = Trade("CCCUSDT", 100, "1", "1", T0 + 2_000, False, received_at=T0 + 2_000)
    heard = Trade("AAAUSDT", 7, "1", "1", T0 + 50_000, False, received_at=T0 + 50_000)
    for record in (trade, heard, Disconnected(T0 + 60_000, "connection lost", ("CCCUSDT",))):
        live.feed(record)
    live.feed(Connected(T0 + 61_000, "ws://sim/2", ("CCCUSDT",)))
    assert [r.symbol for r in repairs.requests[3:]] == ["CCCUSDT"]
    # the look-back is the connection's own: CCCUSDT was last heard at T0 + 2 s (AAAUSDT's later trade is another
    # connection's), so the repair covers from that minute on
    assert repairs.requests[3].from_minute_ms == T0 and repairs.requests[3].from_id == 101


def test_a_malformed_frame_or_drop_gives_up_minutes_of_its_connection_only(tmp_path):
    """Without repairs: a malformed frame without a readable symbol taints the current minute of its connection's
    symbols only, and a drop of one connection the minutes of that connection's symbols; the other connection's
    minutes are written as usual."""
    now = [T0 - 5_000]
    lake = LocalLake(tmp_path / "lake")
    live = LiveCapture(lake, ["AAAUSDT", "CCCUSDT"], clock=lambda: now[0] / 1000)
    live.feed(Connected(T0 - 5_000, "ws://sim/1", ("AAAUSDT",)))
    live.feed(Connected(T0 - 5_000, "ws://sim/2", ("CCCUSDT",)))
    a0, a0_kline = synthetic_minute("AAAUSDT", T0, 100, ["10", "11"])
    c0, c0_kline = synthetic_minute("CCCUSDT", T0, 500, ["20", "21"])
    a1, a1_kline = synthetic_minute("AAAUSDT", T0 + MINUTE_MS, 102, ["12", "13"])
    c1, c1_kline = synthetic_minute("CCCUSDT", T0 + MINUTE_MS, 502, ["22", "23"])
    unreadable = MalformedFrame(T0 + 1_500, None, "not JSON", "<html>502 Bad Gateway</html>", ("CCCUSDT",))
    drop = Disconnected(T0 + MINUTE_MS + 1_500, "connection lost", ("AAAUSDT",))
    back = Connected(T0 + MINUTE_MS + 1_600, "ws://sim/1", ("AAAUSDT",))
    decided = []
    for record in [a0[0], c0[0], unreadable, a0[1], c0[1], a0_kline, c0_kline, a1[0], c1[0], drop, back]:
        now[0] = max(now[0], getattr(record, "received_at", None) or record.at)
        decided += live.feed(record)
    for record in [a1[1], c1[1], a1_kline, c1_kline]:
        now[0] = max(now[0], record.received_at + 100)
        decided += live.feed(record)
    now[0] = T0 + 2 * MINUTE_MS + 20_000  # past the grace period: every minute decided
    decided += live.decide()
    outcome = {(s, r.minute_start_ms): r.outcome for s, r in decided if r.minute_start_ms >= T0}  # after the join
    assert outcome == {
        ("AAAUSDT", T0): Outcome.WRITTEN,
        ("CCCUSDT", T0): Outcome.UNPROVEN,  # the unreadable frame came on its connection
        ("AAAUSDT", T0 + MINUTE_MS): Outcome.UNPROVEN,  # its connection dropped during the minute
        ("CCCUSDT", T0 + MINUTE_MS): Outcome.WRITTEN,
    }
    reasons = {(s, r.minute_start_ms): " ".join(r.reasons) for s, r in decided}
    assert "malformed frame" in reasons[("CCCUSDT", T0)]
    assert "lost its connection" in reasons[("AAAUSDT", T0 + MINUTE_MS)]


def test_three_symbols_over_two_connections_and_a_drop_repairs_only_that_connections_symbols(tmp_path):
    """Against the simulator (twenty times real time): BTCUSDT and ETHUSDT on one connection, SOLUSDT on the other.
    Every minute is written equal to the exchange's, trade by trade; dropping BTCUSDT's connection repairs BTCUSDT
    and ETHUSDT over REST and leaves SOLUSDT streaming untouched."""
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    clock = FastClock(T0 - 5_000, SPEED)
    config = SimulatorConfig(symbols=[symbol_config(s) for s in symbols], history_minutes=2)
    sim = Simulator(config, clock=clock).start()
    lake = LocalLake(tmp_path / "lake")

    class NotingRepairer(StreamRepairer):
        def submit(self, request, first_stream_id):
            self.requests.append(request)
            super().submit(request, first_stream_id)

    repairer = NotingRepairer(BinanceRestClient(sim.rest_url, budget=WeightBudget(clock=clock, speed=SPEED)))
    repairer.requests = []
    live = LiveCapture(
        lake,
        symbols,
        repairer=repairer,
        clock=lambda: clock() / 1000,
        repair_wait_ms=30_000 * SPEED,
        blind_wait_ms=30_000 * SPEED,
        grace_ms=3_000 * SPEED,
    )
    stream = BinanceStream(
        sim.ws_url,
        symbols,
        symbols_per_connection=2,
        clock=clock,
        silence_timeout_s=2.0,
        max_attempts=300,  # attempts 1 s apart: 20 s of exchange time
        attempt_window_s=300.0,
    )
    last = T0 + 4 * MINUTE_MS
    dropped = threading.Event()

    def drop():
        while clock() < T0 + 2 * MINUTE_MS + 20_000:
            threading.Event().wait(0.05)
        assert sim.drop_connections("BTCUSDT") == 1
        dropped.set()

    threading.Thread(target=drop, daemon=True).start()
    decided, connections = {}, []
    try:
        for record in stream.records():
            if isinstance(record, (Connected, Disconnected)):
                connections.append(record)
            for symbol, result in live.feed(record):
                decided[(symbol, result.minute_start_ms)] = result
            if all((s, last) in decided for s in symbols):
                break
    finally:
        stream.close()
        repairer.close()
        sim.stop()

    assert dropped.is_set()
    connected = [c.symbols for c in connections if isinstance(c, Connected)]
    assert sorted(connected) == [("BTCUSDT", "ETHUSDT"), ("BTCUSDT", "ETHUSDT"), ("SOLUSDT",)]
    lost = [d for d in connections if isinstance(d, Disconnected)]
    assert [d.symbols for d in lost] == [("BTCUSDT", "ETHUSDT")] and lost[0].reason.startswith("connection lost")
    # the second connection opened 1 s (20 s of exchange time) after the first: SOLUSDT's join minute was repaired
    (sol_joined,) = [
        c.at // MINUTE_MS * MINUTE_MS for c in connections if isinstance(c, Connected) and c.symbols == ("SOLUSDT",)
    ]
    assert sol_joined < T0 + 2 * MINUTE_MS
    # one repair per symbol when it joined, then only the dropped connection's symbols
    requests = [r.symbol for r in repairer.requests]
    assert sorted(requests[:3]) == symbols and sorted(requests[3:]) == ["BTCUSDT", "ETHUSDT"]
    for symbol in symbols:
        for minute in range(T0, last + MINUTE_MS, MINUTE_MS):
            result = decided[(symbol, minute)]
            assert result.outcome == Outcome.WRITTEN and result.ok, (symbol, minute_key(minute), result.problems)
            assert_equals_truth(sim, lake, symbol, minute, all_streamed=False)
            if symbol == "SOLUSDT" and minute > sol_joined:  # untouched by the drop: every trade from the stream
                assert result.summary.source == "stream", minute_key(minute)
                assert_equals_truth(sim, lake, symbol, minute)
