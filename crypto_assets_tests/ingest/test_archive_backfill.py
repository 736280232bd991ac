"""store_range with the daily archive, against the simulator: the lake read back equals the ground truth trade by
trade (ids, prices, quantities, times, is_buyer_maker) for days in microseconds (from 2025-01-01 on) and in
milliseconds (before), each minute records the verified files it came from, and every archive fault (a truncated day
whose checksum matches, a checksum failing once or twice, a day not published) ends with every minute exact, REST
filling what the archive lacks.

One simulator on a fixed clock (2025-01-02 06:00, moved on a minute before each test so that each test has a fresh
REST weight minute) holds two complete days of a slow SOLUSDT (2024-12-31 and 2025-01-01, no bursts) and NEWUSDT,
listed on 2025-01-01 at 20:00. Most tests store a few hours of a day: the archive serves a day whose wanted minutes
would cost more over REST (``fetch_cost``), and a few hours prove what a whole day would at a fraction of the minute
files."""

from __future__ import annotations

import collections
import zipfile
from decimal import Decimal

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange import endpoints
from crypto_assets.exchange.archive import BinanceArchive, archive_path, day_start_ms, read_klines
from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets.ingest.fetch_cost import archive_is_cheaper
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome, store_range
from crypto_assets.lake import LocalLake
from crypto_assets.minutes import MINUTE_MS, minute_key
from crypto_assets_tests.ground_truth import truth
from crypto_assets_tests.ports import free_port
from crypto_assets_tests.rest_calls import CountingClient
from crypto_assets_tests.simulator._support import ManualClock, http

pytestmark = pytest.mark.integration

HOUR, DAY = 3_600_000, 86_400_000
DAY0, DAY1, DAY2 = "2024-12-31", "2025-01-01", "2025-01-02"  # DAY0 in milliseconds, DAY1 in microseconds
D0, D1, D2 = day_start_ms(DAY0), day_start_ms(DAY1), day_start_ms(DAY2)
NOW = D2 + 6 * HOUR  # DAY2 (today) is not published
SYMBOL = "SOLUSDT"
NEW = "NEWUSDT"
LISTED_AT = D1 + 20 * HOUR
HOURS_OF_DAY1 = (D1 + 10 * HOUR, D1 + 13 * HOUR)  # ~10,800 trades: 11 REST pages cost more than the day's archive
SLOW = dict(trades_per_second=1.0, burst_probability=0.0)  # ~86,000 trades a day: a day builds in seconds


class CountingArchive(BinanceArchive):
    """Records each file asked for, as (kind, day)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, str]] = []

    def download(self, symbol, day, kind, folder):
        self.asked.append((kind, str(day)))
        return super().download(symbol, day, kind, folder)


class DoctoredArchive(CountingArchive):
    """Changes the lines of each trades file it downloads with ``doctor`` (list of CSV lines -> list), after the
    checksum was verified: a file Binance published with a matching checksum and a flaw in it."""

    def __init__(self, *args, doctor, **kwargs):
        super().__init__(*args, **kwargs)
        self.doctor = doctor

    def download(self, symbol, day, kind, folder):
        file = super().download(symbol, day, kind, folder)
        if file is not None and kind == "trades":
            with zipfile.ZipFile(file.path) as zf:
                (name,) = zf.namelist()
                lines = zf.read(name).decode().splitlines(keepends=True)
            with zipfile.ZipFile(file.path, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(name, "".join(self.doctor(lines)))
        return file


@pytest.fixture(scope="module")
def shared_sim():
    config = SimulatorConfig(
        symbols=[symbol_config(SYMBOL, **SLOW), symbol_config(NEW, **SLOW)],
        origin_ms=D0,
        listed={NEW: (NOW - LISTED_AT) // MINUTE_MS},
    )
    with Simulator(config, clock=ManualClock(NOW)) as s:
        for day in (DAY0, DAY1):  # built here rather than inside a request
            s.archive_file(SYMBOL, day)
        s.archive_file(NEW, DAY1)
        yield s


@pytest.fixture
def sim(shared_sim):
    """The shared simulator a minute later (a fresh weight minute), its faults cleared afterwards."""
    shared_sim.clock.advance(MINUTE_MS)
    yield shared_sim
    shared_sim.clear_faults()


@pytest.fixture
def client(sim):
    with CountingClient(sim.rest_url, budget=WeightBudget(), backoff_base_s=0.01, backoff_max_s=0.05) as c:
        yield c


@pytest.fixture
def archive(sim):
    with CountingArchive(sim.archive_url, backoff_s=0.01) as a:
        yield a


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


def rows_of_truth(sim, symbol: str, start: int, end: int) -> list[tuple]:
    return [
        (t.trade_id, Decimal(t.price), Decimal(t.qty), t.trade_time, t.is_buyer_maker)
        for t in truth(sim, symbol, start, end)
    ]


def rows_of_lake(lake, symbol: str, minute: int) -> list[tuple]:
    table = lake.read_minute(symbol, minute)
    assert table is not None, f"{minute_key(minute)} is not in the lake"
    return list(
        zip(
            table.column("trade_id").to_pylist(),
            table.column("price").to_pylist(),
            table.column("qty").to_pylist(),
            table.column("trade_time").cast("int64").to_pylist(),
            table.column("is_buyer_maker").to_pylist(),
        )
    )


def assert_exact(sim, lake, symbol: str, out: list[MinuteResult], start: int, end: int) -> None:
    """Every minute of [start, end) is ok and its file holds exactly the ground truth's trades of that minute."""
    assert [m.minute_start_ms for m in out] == list(range(start, end, MINUTE_MS))
    bad = [(minute_key(m.minute_start_ms), m.outcome, m.problems[:2]) for m in out if not m.ok]
    assert not bad, bad[:5]
    stored, by_minute = [], collections.Counter()
    for m in out:
        rows = rows_of_lake(lake, symbol, m.minute_start_ms)
        assert all(m.minute_start_ms <= r[3] < m.minute_start_ms + MINUTE_MS for r in rows), minute_key(
            m.minute_start_ms
        )
        by_minute[m.minute_start_ms] = len(rows)
        stored += rows
    expected = rows_of_truth(sim, symbol, start, end)
    assert len(stored) == len(expected)
    assert stored == expected
    assert sum(by_minute.values()) == len(expected) > 0


def archive_minutes(out: list[MinuteResult]) -> set[int]:
    return {m.minute_start_ms for m in out if m.archive is not None}


def assert_from_archive(sim, out: list[MinuteResult], symbol: str, day: str, minutes) -> None:
    """The ``minutes`` were WRITTEN from the day's files as the simulator serves them (URL and sha256)."""
    trades, klines = sim.archive_file(symbol, day), sim.archive_file(symbol, day, "klines")
    by_start = {m.minute_start_ms: m for m in out}
    for minute in minutes:
        m = by_start[minute]
        assert m.outcome == Outcome.WRITTEN and m.archive is not None, (minute_key(minute), m.outcome)
        assert m.archive.trades_url == sim.archive_url.rstrip("/") + archive_path(symbol, day, "trades")
        assert m.archive.klines_url == sim.archive_url.rstrip("/") + archive_path(symbol, day, "klines")
        assert (m.archive.trades_sha256, m.archive.klines_sha256) == (trades.sha256, klines.sha256)


# ---- complete days ---------------------------------------------------------------------------------------------
def test_a_complete_day_in_microseconds_equals_the_ground_truth(sim, client, archive, lake):
    out = store_range(client, lake, SYMBOL, D1, D1 + DAY, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, D1, D1 + DAY)
    assert {m.outcome for m in out} == {Outcome.WRITTEN}
    assert_from_archive(sim, out, SYMBOL, DAY1, range(D1, D1 + DAY, MINUTE_MS))
    for kind in ("trades", "klines"):  # the sha256 each CHECKSUM file carries
        line = http(sim, archive_path(SYMBOL, DAY1, kind) + ".CHECKSUM").body.decode()
        assert line.split("  ")[0] == getattr(out[0].archive, f"{kind}_sha256"), kind
    assert sorted(archive.asked) == [("klines", DAY1), ("trades", DAY1)]
    # REST: the day's two boundaries (aggTrades) and the server's time; not one page of trades, nor klines
    assert endpoints.HISTORICAL_TRADES not in client.calls and endpoints.KLINES not in client.calls, client.calls
    assert client.weight_spent <= 40, (client.weight_spent, client.calls)


def test_a_complete_day_in_milliseconds_equals_the_ground_truth(sim, client, archive, lake):
    out = store_range(client, lake, SYMBOL, D0, D0 + DAY, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, D0, D0 + DAY)
    assert_from_archive(sim, out, SYMBOL, DAY0, range(D0, D0 + DAY, MINUTE_MS))
    assert endpoints.HISTORICAL_TRADES not in client.calls, client.calls
    assert client.weight_spent <= 40, (client.weight_spent, client.calls)


def test_a_range_across_the_switch_to_microseconds(sim, client, archive, lake):
    start, end = D1 - 2 * HOUR, D1 + 2 * HOUR  # the end of a day in ms, the start of one in µs
    out = store_range(client, lake, SYMBOL, start, end, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, start, end)
    assert_from_archive(sim, out, SYMBOL, DAY0, range(start, D1, MINUTE_MS))
    assert_from_archive(sim, out, SYMBOL, DAY1, range(D1, end, MINUTE_MS))
    assert endpoints.HISTORICAL_TRADES not in client.calls, client.calls


# ---- faults ----------------------------------------------------------------------------------------------------
def test_a_truncated_day_whose_checksum_matches(sim, client, archive, lake):
    cut, end = D1 + 2 * HOUR, D1 + 3 * HOUR
    sim.archive_truncate(SYMBOL, DAY1, 2)
    out = store_range(client, lake, SYMBOL, D1, end, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, D1, end)
    from_archive = archive_minutes(out)
    assert from_archive and max(from_archive) < cut  # the minutes after the cut came over REST
    # Before the cut, the archive proves every minute up to the last one holding a trade (that one's end boundary,
    # the next trade, is not in the file).
    last_minute = truth(sim, SYMBOL, D1, cut)[-1].trade_time // MINUTE_MS * MINUTE_MS
    assert from_archive == set(range(D1, last_minute, MINUTE_MS))
    assert_from_archive(sim, out, SYMBOL, DAY1, from_archive)  # the truncated file's sha256: it is what was verified
    assert all(m.archive is None and m.outcome == Outcome.WRITTEN for m in out if m.minute_start_ms >= cut)


def test_a_truncated_klines_file_leaves_the_minutes_without_a_kline_to_rest(sim, client, archive, lake):
    cut, end = D1 + 2 * HOUR, D1 + 3 * HOUR
    sim.archive_truncate(SYMBOL, DAY1, 2, kind="klines")
    out = store_range(client, lake, SYMBOL, D1 + HOUR, end, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, D1 + HOUR, end)
    assert set(range(D1 + HOUR, cut, MINUTE_MS)) <= archive_minutes(out)  # every minute with its kline
    # Past the cut, a minute whose neighbouring trades are known is proven by the ids alone (ids are dense per symbol:
    # completeness.kline_needed); those that need their kline came over REST.
    assert any(m.archive is None for m in out if m.minute_start_ms >= cut)


def test_a_checksum_that_fails_once_is_downloaded_again(sim, client, archive, lake):
    sim.archive_corrupt(SYMBOL, DAY1, kind="trades", part="zip", count=1)
    downloads = sim.archive.downloads
    out = store_range(client, lake, SYMBOL, *HOURS_OF_DAY1, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, *HOURS_OF_DAY1)
    assert_from_archive(sim, out, SYMBOL, DAY1, range(*HOURS_OF_DAY1, MINUTE_MS))
    assert sim.archive.downloads - downloads == 6  # klines (zip + CHECKSUM), trades twice
    assert endpoints.HISTORICAL_TRADES not in client.calls, client.calls


@pytest.mark.parametrize(("kind", "part"), [("trades", "zip"), ("klines", "checksum")])
def test_a_checksum_that_fails_twice_leaves_the_day_to_rest(sim, client, archive, lake, kind, part):
    sim.archive_corrupt(SYMBOL, DAY1, kind=kind, part=part, count=2)
    out = store_range(client, lake, SYMBOL, *HOURS_OF_DAY1, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, *HOURS_OF_DAY1)
    assert archive_minutes(out) == set() and {m.outcome for m in out} == {Outcome.WRITTEN}
    assert client.calls[endpoints.HISTORICAL_TRADES] > 0


@pytest.mark.parametrize(("kind", "how"), [("trades", "cut"), ("trades", "flip"), ("klines", "cut")])
def test_a_broken_zip_whose_checksum_matches_leaves_the_day_to_rest(sim, client, archive, lake, kind, how):
    sim.archive_broken(SYMBOL, DAY1, kind=kind, how=how)
    out = store_range(client, lake, SYMBOL, *HOURS_OF_DAY1, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, *HOURS_OF_DAY1)
    assert archive_minutes(out) == set() and {m.outcome for m in out} == {Outcome.WRITTEN}
    assert client.calls[endpoints.HISTORICAL_TRADES] > 0
    assert ("trades", DAY1) in archive.asked or kind == "klines"  # a broken klines file: the trades are not fetched


def test_a_day_not_published_is_served_by_rest(sim, client, archive, lake):
    sim.archive_unpublished(DAY1, SYMBOL)
    downloads = sim.archive.downloads
    out = store_range(client, lake, SYMBOL, *HOURS_OF_DAY1, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, *HOURS_OF_DAY1)
    assert archive_minutes(out) == set() and sim.archive.downloads == downloads


def test_today_is_served_by_rest_without_asking_the_archive(sim, client, archive, lake):
    start, end = D2 + 3 * HOUR, D2 + 5 * HOUR
    out = store_range(client, lake, SYMBOL, start, end, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, start, end)
    assert archive_minutes(out) == set() and archive.asked == []


def test_yesterday_before_its_publication_is_served_by_rest(tmp_path):
    clock = ManualClock(D2 + HOUR)  # 01:00: yesterday is published at 04:00
    config = SimulatorConfig(
        symbols=[symbol_config(SYMBOL, **SLOW)], origin_ms=D1 + 21 * HOUR, archive_delay_minutes=240
    )
    with (
        Simulator(config, clock=clock) as s,
        CountingClient(s.rest_url, budget=WeightBudget()) as c,
        CountingArchive(s.archive_url, backoff_s=0.01) as a,
    ):
        lake = LocalLake(tmp_path)
        out = store_range(c, lake, SYMBOL, D1 + 21 * HOUR, D2, archive=a)
        assert_exact(s, lake, SYMBOL, out, D1 + 21 * HOUR, D2)
        assert archive_minutes(out) == set() and s.archive.downloads == 0
        assert a.asked and all(day == DAY1 for _, day in a.asked)  # asked, and answered 404


def busy_minutes(sim, start: int, end: int) -> tuple[int, int]:
    """Two consecutive minutes of [start, end) each holding at least two trades."""
    counts = collections.Counter(t.trade_time // MINUTE_MS * MINUTE_MS for t in truth(sim, SYMBOL, start, end))
    return next((m, m + MINUTE_MS) for m in sorted(counts) if counts[m] >= 2 and counts[m + MINUTE_MS] >= 2)


def line_of(lines: list[str], trade_id: int) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(f"{trade_id},"))


def drop_a_trade(lines, m, m2, trades):
    return [line for line in lines if not line.startswith(f"{trades[m][1]},")]


def change_a_qty(lines, m, m2, trades):
    i = line_of(lines, trades[m][0])
    fields = lines[i].split(",")
    fields[2] = str(Decimal(fields[2]) + Decimal("0.00000001"))
    return [*lines[:i], ",".join(fields), *lines[i + 1 :]]


def swap_across_minutes(lines, m, m2, trades):
    i, j = line_of(lines, trades[m][-1]), line_of(lines, trades[m2][0])
    assert j == i + 1
    return [*lines[:i], lines[j], lines[i], *lines[j + 1 :]]


def break_a_line(lines, m, m2, trades):
    i = line_of(lines, trades[m][0])
    return [*lines[:i], "not,a,trades,row\n", *lines[i + 1 :]]


@pytest.mark.parametrize(
    ("doctor", "spoiled"),
    [
        (drop_a_trade, "m"),  # a hole: the ids of the minute are not dense
        (change_a_qty, "m"),  # the minute's volume disagrees with its kline
        (swap_across_minutes, "m m2"),  # a row among the next minute's rows
        (break_a_line, "m on"),  # the file breaks off: nothing from there on is proven
    ],
)
def test_a_flawed_file_whose_checksum_matches(sim, client, lake, doctor, spoiled):
    start, end = HOURS_OF_DAY1
    m, m2 = busy_minutes(sim, start + HOUR, end)
    trades = {x: [t.trade_id for t in truth(sim, SYMBOL, x, x + MINUTE_MS)] for x in (m, m2)}
    with DoctoredArchive(sim.archive_url, backoff_s=0.01, doctor=lambda lines: doctor(lines, m, m2, trades)) as a:
        out = store_range(client, lake, SYMBOL, start, end, archive=a)
    assert_exact(sim, lake, SYMBOL, out, start, end)
    over_rest = {x.minute_start_ms for x in out if x.archive is None}
    if spoiled == "m on":
        assert over_rest >= set(range(m, end, MINUTE_MS))
    else:
        assert over_rest == {"m": {m}, "m m2": {m, m2}}[spoiled]
    assert {x.outcome for x in out} == {Outcome.WRITTEN}


def test_an_archive_host_that_does_not_answer_leaves_the_days_to_rest(sim, client, lake):
    start, end = HOURS_OF_DAY1
    with CountingArchive(f"http://127.0.0.1:{free_port()}", timeout=2, backoff_s=0.01) as unreachable:
        out = store_range(client, lake, SYMBOL, start, end, archive=unreachable)
    assert_exact(sim, lake, SYMBOL, out, start, end)
    assert archive_minutes(out) == set() and unreachable.asked


# ---- what is not worth the archive, or already stored ----------------------------------------------------------
@pytest.mark.parametrize("minutes", [10, 60])
def test_each_day_takes_its_cheaper_way(sim, client, archive, lake, minutes, tmp_path):
    """Ten minutes (~600 trades, one REST page) come over REST, with only the day's klines file asked of the archive;
    an hour (~3,600 trades, four pages: 1 s of weight budget against 0.9 s for the day's zip) from the archive."""
    start = D1 + 9 * HOUR
    end = start + minutes * MINUTE_MS
    with BinanceArchive(sim.archive_url) as plain:
        day = {k.open_time: k for k in read_klines(plain.download(SYMBOL, DAY1, "klines", tmp_path), SYMBOL)}
    cheaper = archive_is_cheaper(day, range(start, end, MINUTE_MS))
    assert cheaper == (minutes == 60)
    out = store_range(client, lake, SYMBOL, start, end, archive=archive)
    assert_exact(sim, lake, SYMBOL, out, start, end)
    if cheaper:
        assert_from_archive(sim, out, SYMBOL, DAY1, range(start, end, MINUTE_MS))
        assert endpoints.HISTORICAL_TRADES not in client.calls, client.calls
    else:
        assert archive_minutes(out) == set() and archive.asked == [("klines", DAY1)]
        assert client.calls[endpoints.HISTORICAL_TRADES] > 0


def test_a_day_stored_before_is_not_written_again(sim, client, archive, lake):
    first = store_range(client, lake, SYMBOL, *HOURS_OF_DAY1, archive=archive)
    assert_from_archive(sim, first, SYMBOL, DAY1, range(*HOURS_OF_DAY1, MINUTE_MS))
    archive.asked.clear()
    again = store_range(client, lake, SYMBOL, *HOURS_OF_DAY1, archive=archive)
    assert_exact(sim, lake, SYMBOL, again, *HOURS_OF_DAY1)
    assert {m.outcome for m in again} == {Outcome.ALREADY_STORED}
    assert all(m.archive is None and m.written_at_ms is None for m in again)
    assert ("trades", DAY1) not in archive.asked


# ---- a listing day ---------------------------------------------------------------------------------------------
def test_a_listing_day(sim, client, archive, lake):
    start, end = LISTED_AT - 2 * HOUR, LISTED_AT + 2 * HOUR
    out = store_range(client, lake, NEW, start, end, archive=archive)
    first = truth(sim, NEW, D1, D1 + DAY)[0]
    first_minute = first.trade_time // MINUTE_MS * MINUTE_MS
    assert first.trade_id == 0 and LISTED_AT <= first_minute < end
    before = [m for m in out if m.minute_start_ms < first_minute]
    assert len(before) == (first_minute - start) // MINUTE_MS >= 2 * 60
    assert all(m.outcome == Outcome.BEFORE_FIRST_TRADE and m.ok for m in before), {m.outcome for m in before}
    assert all(rows_of_lake(lake, NEW, m.minute_start_ms) == [] for m in before)
    assert_exact(sim, lake, NEW, out[len(before) :], first_minute, end)
    assert_from_archive(sim, out, NEW, DAY1, range(first_minute, end, MINUTE_MS))
