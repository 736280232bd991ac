"""The daily archive (``/data/spot/daily/...``, Binance's data.binance.vision) served by the simulator: the files equal
the ground truth and REST trade by trade and kline by kline, in Binance's format (no header, ``True``/``False``, µs
from 2025-01-01 on and ms before, the CHECKSUM line without a newline), the publication rule, the faults, no weight.

One simulator (a fixed clock at 2025-01-02 06:00) holds a complete day, 2025-01-01, of a slow PEPEUSDT (8-decimal
prices, quote amounts beyond int64) and the last 2 hours of 2024-12-31; NEWUSDT was listed on 2025-01-01 at 20:00."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from binance_simulator.__main__ import build_config, parse_args
from binance_simulator.archive import MICROSECONDS_FROM_MS, day_of, day_start_ms, parse_path, time_factor
from crypto_assets_tests.simulator._support import ManualClock, api, weight
from crypto_assets_tests.simulator._support import http as _http

pytestmark = pytest.mark.integration

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
DAY1 = "2025-01-01"  # complete, in microseconds
DAY0 = "2024-12-31"  # from 22:00 on (the simulator's history starts there), in milliseconds
D1 = day_start_ms(DAY1)
ORIGIN = D1 - 2 * HOUR
NOW = D1 + DAY + 6 * HOUR  # 2025-01-02 06:00: today is not published
LISTED_AT = D1 + 20 * HOUR
SLOW = dict(burst_probability=0.0)
BUILD_TIMEOUT_S = 120  # no sweeps of hundreds of trades: a day of a few thousand trades


def http(sim, path: str, *args, **kwargs):
    """``_support.http`` with time for a download that builds its file (a day of the market's seconds) on a loaded
    machine."""
    return _http(sim, path, *args, **{"timeout": BUILD_TIMEOUT_S, **kwargs})


@pytest.fixture(scope="module")
def sim():
    symbols = [
        symbol_config("PEPEUSDT", trades_per_second=0.1, **SLOW),
        symbol_config("NEWUSDT", trades_per_second=0.05, **SLOW),
    ]
    config = SimulatorConfig(symbols=symbols, origin_ms=ORIGIN, listed={"NEWUSDT": (NOW - LISTED_AT) // MINUTE})
    with Simulator(config, clock=ManualClock(NOW)) as s:
        s.archive_file("PEPEUSDT", DAY1)  # the day's trades and klines, built here rather than inside a request
        yield s


@pytest.fixture
def clean(sim):
    """The shared simulator, its archive faults cleared afterwards."""
    yield sim
    sim.clear_faults()


def url(kind: str, symbol: str, day: str) -> str:
    if kind == "klines":
        return f"/data/spot/daily/klines/{symbol}/1m/{symbol}-1m-{day}.zip"
    return f"/data/spot/daily/{kind}/{symbol}/{symbol}-{kind}-{day}.zip"


def download(sim, kind: str, symbol: str, day: str) -> tuple[bytes, str]:
    """(zip bytes, CHECKSUM text) of one daily file."""
    z, c = http(sim, url(kind, symbol, day)), http(sim, url(kind, symbol, day) + ".CHECKSUM")
    assert (z.status, c.status) == (200, 200), (z.body[:300], c.body[:300])
    return z.body, c.body.decode()


def rows_of(data: bytes, name: str) -> list[list[str]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == [name]
        text = zf.read(name).decode()
    assert text == "" or text.endswith("\n")
    return list(csv.reader(io.StringIO(text)))


def verified_rows(sim, kind: str, symbol: str, day: str) -> list[list[str]]:
    data, line = download(sim, kind, symbol, day)
    name = url(kind, symbol, day).rsplit("/", 1)[1]
    assert line == f"{hashlib.sha256(data).hexdigest()}  {name}"
    return rows_of(data, name.removesuffix(".zip") + ".csv")


def rest_trades(sim, symbol: str, start_ms: int, end_ms: int) -> list[dict]:
    return http(sim, "/_sim/trades", {"symbol": symbol, "startTime": start_ms, "endTime": end_ms}).json()


def as_archive(trade: dict, factor: int) -> list[str]:
    """A REST trade as its archive row."""
    return [
        str(trade["id"]),
        trade["price"],
        trade["qty"],
        trade["quoteQty"],
        str(trade["time"] * factor),
        str(trade["isBuyerMaker"]),
        "True",
    ]


def rest_klines(sim, symbol: str, start_ms: int, end_ms: int) -> list[list]:
    rows = []
    while start_ms < end_ms:
        page = api(sim, "klines", symbol=symbol, interval="1m", startTime=start_ms, endTime=end_ms - 1, limit=1000)
        assert page.status == 200
        rows += page.json()
        if not page.json():
            break
        start_ms = rows[-1][0] + MINUTE
    return rows


def kline_as_archive(k: list, factor: int) -> list[str]:
    return [str(k[0] * factor), *k[1:6], str((k[6] + 1) * factor - 1), k[7], str(k[8]), *k[9:]]


# ---- format --------------------------------------------------------------------------------------------------------
def test_the_time_unit_is_microseconds_from_2025_and_milliseconds_before():
    assert MICROSECONDS_FROM_MS == day_start_ms("2025-01-01") == 1_735_689_600_000
    assert time_factor(day_start_ms("2024-12-31")) == 1
    assert time_factor(day_start_ms("2025-01-01")) == 1000
    assert time_factor(day_start_ms("2026-11-30")) == 1000
    assert time_factor(day_start_ms("2017-08-17")) == 1
    assert day_of(D1 - 1) == "2024-12-31" and day_of(D1) == DAY1


def test_paths():
    f = parse_path("/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-01.zip")
    assert (f.kind, f.symbol, f.day, f.checksum) == ("trades", "BTCUSDT", DAY1, False)
    assert parse_path("/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-01-01.zip.CHECKSUM").checksum
    assert parse_path("/data/spot/daily/aggTrades/X1/X1-aggTrades-2024-02-29.zip").kind == "aggTrades"
    for bad in (
        "/data/spot/daily/trades/BTCUSDT/ETHUSDT-trades-2025-01-01.zip",  # another symbol's name
        "/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-02-30.zip",  # no such date
        "/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-01.zip",  # only 1m klines
        "/data/spot/daily/trades/btcusdt/btcusdt-trades-2025-01-01.zip",
        "/data/spot/monthly/trades/BTCUSDT/BTCUSDT-trades-2025-01.zip",
        "/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-01.csv",
    ):
        assert parse_path(bad) is None, bad
    for kind in ("trades", "aggTrades", "klines"):
        assert parse_path(url(kind, "PEPEUSDT", DAY1)).path == url(kind, "PEPEUSDT", DAY1)


def test_checksum_line_head_and_ranges(sim):
    data, line = download(sim, "trades", "PEPEUSDT", DAY1)
    assert re.fullmatch(r"[0-9a-f]{64}  PEPEUSDT-trades-2025-01-01\.zip", line)  # two spaces, no newline
    assert line[:64] == hashlib.sha256(data).hexdigest()
    head = http(sim, url("trades", "PEPEUSDT", DAY1), method="HEAD")
    assert (head.status, head.body, int(head.headers["content-length"])) == (200, b"", len(data))
    assert head.headers["accept-ranges"] == "bytes"
    part = http(sim, url("trades", "PEPEUSDT", DAY1), headers={"Range": "bytes=100-199"})
    assert (part.status, part.body, part.headers["content-range"]) == (206, data[100:200], f"bytes 100-199/{len(data)}")
    tail = http(sim, url("trades", "PEPEUSDT", DAY1), headers={"Range": "bytes=-10"})
    assert (tail.status, tail.body) == (206, data[-10:])
    assert http(sim, url("trades", "PEPEUSDT", DAY1), headers={"Range": f"bytes={len(data)}-"}).status == 416
    # The same bytes again, from the cache: a day is built once.
    builds = http(sim, "/_sim/state").json()["archive"]["builds"]
    assert download(sim, "trades", "PEPEUSDT", DAY1) == (data, line)
    assert http(sim, "/_sim/state").json()["archive"]["builds"] == builds


# ---- the files equal the ground truth and REST ----------------------------------------------------------------------
def test_a_complete_day_of_trades_equals_rest_trade_by_trade(sim):
    rows = verified_rows(sim, "trades", "PEPEUSDT", DAY1)
    truth = sim.trades_between("PEPEUSDT", D1, D1 + DAY)
    assert len(rows) == len(truth) > 3000
    ids = [int(r[0]) for r in rows]
    assert ids == list(range(ids[0], ids[0] + len(ids))) == truth.id.tolist()  # dense, and the ground truth's
    assert rows == [as_archive(t, 1000) for t in rest_trades(sim, "PEPEUSDT", D1, D1 + DAY)]
    assert all(len(r[4]) == 16 for r in rows)  # microseconds
    assert {r[5] for r in rows} == {"True", "False"} and {r[6] for r in rows} == {"True"}
    # ... and a real historicalTrades page: the same exact decimals.
    page = api(sim, "historicalTrades", symbol="PEPEUSDT", fromId=ids[0], limit=1000).json()
    assert rows[:1000] == [as_archive(t, 1000) for t in page]
    # The day before the first is the previous day's; the day after the last is the next day's.
    assert int(sim.market["PEPEUSDT"].last_trade_id_at(D1 - 1)) == ids[0] - 1
    assert sim.market["PEPEUSDT"].first_trade_id_from(D1 + DAY) == ids[-1] + 1


def test_a_complete_day_of_klines_equals_rest_klines(sim):
    rows = verified_rows(sim, "klines", "PEPEUSDT", DAY1)
    rest = rest_klines(sim, "PEPEUSDT", D1, D1 + DAY)
    assert len(rows) == len(rest) == 1440
    assert rows == [kline_as_archive(k, 1000) for k in rest]
    assert rows[0][0] == "1735689600000000" and rows[0][6] == "1735689659999999"
    assert "0" in {r[8] for r in rows}, "quiet minutes are in the file, with count 0"
    trades = verified_rows(sim, "trades", "PEPEUSDT", DAY1)
    assert sum(int(r[8]) for r in rows) == len(trades)
    for k in rows[:120]:  # count and volume of each minute agree with the trades file
        inside = [t for t in trades if int(k[0]) <= int(t[4]) <= int(k[6])]
        assert int(k[8]) == len(inside)
        assert sum(int(t[2].replace(".", "")) for t in inside) == int(k[5].replace(".", ""))


def test_aggregate_trades_cover_the_trades(sim):
    rows = verified_rows(sim, "aggTrades", "PEPEUSDT", DAY1)
    trades = verified_rows(sim, "trades", "PEPEUSDT", DAY1)
    assert int(rows[0][3]) == int(trades[0][0]) and int(rows[-1][4]) == int(trades[-1][0])
    assert all(int(a[3]) == int(b[4]) + 1 for a, b in zip(rows[1:], rows))  # first id follows the last
    aggs = api(sim, "aggTrades", symbol="PEPEUSDT", fromId=int(rows[0][0]), limit=1000).json()
    assert rows[: len(aggs)] == [
        [str(a["a"]), a["p"], a["q"], str(a["f"]), str(a["l"]), str(a["T"] * 1000), str(a["m"]), "True"] for a in aggs
    ]


def test_days_before_2025_are_in_milliseconds(sim):
    """2024-12-31 holds the history from its start (22:00) on: times of 13 digits, close times ending in 999."""
    trades = verified_rows(sim, "trades", "PEPEUSDT", DAY0)
    assert trades == [as_archive(t, 1) for t in rest_trades(sim, "PEPEUSDT", ORIGIN, D1)]
    assert trades and all(len(r[4]) == 13 and ORIGIN <= int(r[4]) < D1 for r in trades)
    klines = verified_rows(sim, "klines", "PEPEUSDT", DAY0)
    assert klines == [kline_as_archive(k, 1) for k in rest_klines(sim, "PEPEUSDT", ORIGIN, D1)]
    assert len(klines) == 2 * 60 and klines[0][0] == str(ORIGIN) and klines[0][6] == str(ORIGIN + MINUTE - 1)


def test_a_listing_day_starts_at_the_listing(sim):
    trades = verified_rows(sim, "trades", "NEWUSDT", DAY1)
    assert trades[0][0] == "0" and int(trades[0][4]) // 1000 >= LISTED_AT
    assert trades == [as_archive(t, 1000) for t in rest_trades(sim, "NEWUSDT", D1, D1 + DAY)]
    klines = verified_rows(sim, "klines", "NEWUSDT", DAY1)
    assert len(klines) == 4 * 60 and int(klines[0][0]) == LISTED_AT * 1000
    assert http(sim, url("trades", "NEWUSDT", DAY0)).status == 404


# ---- publication ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        url("trades", "PEPEUSDT", "2025-01-02"),  # today
        url("klines", "PEPEUSDT", "2025-01-02") + ".CHECKSUM",
        url("trades", "PEPEUSDT", "2025-03-01"),  # the future
        url("trades", "PEPEUSDT", "2024-12-30"),  # before the history
        url("aggTrades", "NEWUSDT", DAY0),  # before the listing
        url("trades", "BTCUSDT", DAY1),  # not a symbol of this simulator
        url("trades", "PEPEUSDT", DAY1).replace("daily", "monthly"),
        "/data/",
    ],
)
def test_unpublished_days_unknown_symbols_and_other_paths_answer_404(sim, path):
    for method in ("GET", "HEAD"):
        r = http(sim, path, method=method)
        assert r.status == 404, path
    assert b"<Code>NoSuchKey</Code>" in http(sim, path).body


def test_only_get_and_head(sim):
    assert http(sim, url("trades", "PEPEUSDT", DAY1), method="POST", body={}).status == 405


def test_a_day_is_published_after_the_configured_delay():
    clock = ManualClock(D1 + DAY + 2 * HOUR - 1)  # 2025-01-02 01:59:59.999
    config = SimulatorConfig(
        symbols=[symbol_config("FOOUSDT", trades_per_second=0.2, **SLOW)],
        origin_ms=D1 + 23 * HOUR,
        archive_delay_minutes=120,
    )
    with Simulator(config, clock=clock) as s:
        assert http(s, url("trades", "FOOUSDT", DAY1)).status == 404
        assert http(s, url("trades", "FOOUSDT", DAY1) + ".CHECKSUM").status == 404
        clock.advance(1)
        rows = verified_rows(s, "trades", "FOOUSDT", DAY1)
        assert rows == [as_archive(t, 1000) for t in rest_trades(s, "FOOUSDT", D1, D1 + DAY)] and rows
        # The trades' pass built the day's klines too: downloading them builds nothing more.
        assert http(s, "/_sim/state").json()["archive"]["builds"] == 2
        klines = verified_rows(s, "klines", "FOOUSDT", DAY1)
        assert klines == [kline_as_archive(k, 1000) for k in rest_klines(s, "FOOUSDT", D1, D1 + DAY)]
        assert http(s, "/_sim/state").json()["archive"]["builds"] == 2


def test_simultaneous_downloads_build_a_day_once():
    config = SimulatorConfig(
        symbols=[symbol_config("FOOUSDT", trades_per_second=0.5, **SLOW)], origin_ms=D1 + 22 * HOUR
    )
    with Simulator(config, clock=ManualClock(NOW)) as s:
        paths = [url(kind, "FOOUSDT", DAY1) + suffix for kind in ("trades", "klines") for suffix in ("", ".CHECKSUM")]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda p: http(s, p), paths * 2))
        assert [a.status for a in answers] == [200] * 8
        assert [a.body for a in answers[:4]] == [a.body for a in answers[4:]]
        assert http(s, "/_sim/state").json()["archive"]["builds"] == 2  # the trades' pass brought the klines


def test_downloads_cost_no_rest_weight_and_no_rest_fault_touches_them(clean):
    sim, ip = clean, "127.0.0.41"
    clean.fail_rest(count=1000)
    for kind in ("trades", "aggTrades", "klines"):
        for suffix in ("", ".CHECKSUM"):
            assert http(sim, url(kind, "PEPEUSDT", DAY1) + suffix, source_ip=ip).status == 200
    assert http(sim, url("trades", "PEPEUSDT", "2025-01-02"), source_ip=ip).status == 404
    clean.clear_faults()
    assert weight(api(sim, "ping", source_ip=ip)) == 1


def test_the_command_line_sets_the_delay():
    assert build_config(parse_args(["--archive-delay-minutes", "240"])).archive_delay_minutes == 240
    assert build_config(parse_args([])).archive_delay_minutes == 0
    with pytest.raises(SystemExit, match="archive-delay-minutes"):
        build_config(parse_args(["--archive-delay-minutes", "-1"]))


# ---- the persistent cache folder ---------------------------------------------------------------------------------
def cached_market(folder, **changes) -> SimulatorConfig:
    """A small market whose archive keeps its files in ``folder``; ``changes`` to the symbol (``rate``) or the
    simulator's configuration."""
    rate = changes.pop("rate", 0.5)
    config = dict(origin_ms=D1 + 22 * HOUR, archive_dir=str(folder)) | changes
    return SimulatorConfig(symbols=[symbol_config("FOOUSDT", trades_per_second=rate, **SLOW)], **config)


def test_a_later_simulator_with_the_same_market_reuses_the_cache_folder(tmp_path):
    first = Simulator(cached_market(tmp_path), clock=ManualClock(NOW))
    built = first.archive_file("FOOUSDT", DAY1)
    first.stop()
    assert first.archive.builds == 2 and built.rows > 0  # the trades, and the klines in the same pass
    with Simulator(cached_market(tmp_path), clock=ManualClock(NOW)) as again:
        trades = verified_rows(again, "trades", "FOOUSDT", DAY1)
        klines = verified_rows(again, "klines", "FOOUSDT", DAY1)
        assert trades == [as_archive(t, 1000) for t in rest_trades(again, "FOOUSDT", D1, D1 + DAY)]
        assert len(klines) == 2 * 60
        state = http(again, "/_sim/state").json()["archive"]
        assert (state["builds"], state["reused"]) == (0, 2)
        assert again.archive_file("FOOUSDT", DAY1) == built
    assert built.path.exists()  # a given folder stays when the simulator stops


@pytest.mark.parametrize(
    "change",
    [
        {"rate": 0.6},
        {"seed": 2},
        {"origin_ms": D1 + 21 * HOUR},
        {"hostile": True},
        {"listed": {"FOOUSDT": 30 * 60}},
    ],
    ids=["rate", "seed", "origin", "hostile", "listing"],
)
def test_another_market_builds_its_own_files(tmp_path, change):
    first = Simulator(cached_market(tmp_path), clock=ManualClock(NOW))
    built = first.archive_file("FOOUSDT", DAY1)
    first.stop()
    other = Simulator(cached_market(tmp_path, **change), clock=ManualClock(NOW))
    try:
        rebuilt = other.archive_file("FOOUSDT", DAY1)
        assert (other.archive.builds, other.archive.reused) == (2, 0)
        assert rebuilt.path != built.path and rebuilt.sha256 != built.sha256
    finally:
        other.stop()


def test_a_truncated_file_and_a_damaged_file_are_not_taken_for_the_day(tmp_path):
    first = Simulator(cached_market(tmp_path), clock=ManualClock(NOW))
    built = first.archive_file("FOOUSDT", DAY1)
    first.stop()
    truncated = Simulator(cached_market(tmp_path), clock=ManualClock(NOW))
    truncated.archive_truncate("FOOUSDT", DAY1, 23)  # the first hour of the market's two
    short = truncated.archive_file("FOOUSDT", DAY1)
    truncated.stop()
    assert truncated.archive.builds == 1 and short.rows < built.rows  # the day's klines came from the folder
    data = bytearray(built.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    built.path.write_bytes(bytes(data))  # same size, other bytes
    damaged = Simulator(cached_market(tmp_path), clock=ManualClock(NOW))
    assert damaged.archive_file("FOOUSDT", DAY1) == built  # built again, to the same bytes
    damaged.stop()
    assert (damaged.archive.builds, damaged.archive.reused) == (1, 1)  # the intact klines are reused


def test_the_command_line_sets_the_cache_folder_and_the_start_of_history():
    config = build_config(parse_args(["--archive-cache-dir", "/tmp/x", "--history-from", "2025-01-01"]))
    assert (config.archive_dir, config.origin_ms) == ("/tmp/x", D1)
    assert build_config(parse_args(["--history-from", "2025-01-01T06:30"])).origin_ms == D1 + 6 * HOUR + 30 * MINUTE
    assert build_config(parse_args([])).archive_dir is None and build_config(parse_args([])).origin_ms is None
    for bad in ("yesterday", "2025-01-01T00:00+02:00", "2999-01-01"):
        with pytest.raises(SystemExit, match="history-from"):
            build_config(parse_args(["--history-from", bad]))


# ---- faults (in process and over the control path) --------------------------------------------------------------
@pytest.fixture(params=["in_process", "http"])
def inject(request, clean):
    def _inject(name: str, **args):
        if request.param == "http":
            r = http(clean, f"/_sim/faults/{name}", method="POST", body=args)
            assert r.status == 200, r.body
            return r.json()
        return getattr(clean, name)(**args)

    return _inject


def test_a_truncated_day_with_a_matching_checksum(clean, inject):
    full = verified_rows(clean, "trades", "PEPEUSDT", DAY1)
    result = inject("archive_truncate", symbol="PEPEUSDT", day=DAY1, hours=7)
    assert result["path"] == url("trades", "PEPEUSDT", DAY1)
    short = verified_rows(clean, "trades", "PEPEUSDT", DAY1)  # its checksum matches
    assert 0 < len(short) < len(full) and short == full[: len(short)]
    assert all(int(r[4]) < (D1 + 7 * HOUR) * 1000 for r in short)
    assert int(full[len(short)][4]) >= (D1 + 7 * HOUR) * 1000
    klines = verified_rows(clean, "klines", "PEPEUSDT", DAY1)
    assert len(klines) == 1440 and sum(int(k[8]) for k in klines) == len(full)  # the klines file is complete
    assert len(verified_rows(clean, "aggTrades", "PEPEUSDT", DAY1)) > 0
    inject("archive_reupload", symbol="PEPEUSDT", day=DAY1)
    assert verified_rows(clean, "trades", "PEPEUSDT", DAY1) == full


@pytest.mark.parametrize("part", ["zip", "checksum"])
def test_a_checksum_that_fails_then_succeeds(clean, inject, part):
    good, line = download(clean, "klines", "PEPEUSDT", DAY1)
    inject("archive_corrupt", symbol="PEPEUSDT", day=DAY1, kind="klines", part=part)
    assert http(clean, url("klines", "PEPEUSDT", DAY1), method="HEAD").status == 200  # a HEAD is no download
    bad, bad_line = download(clean, "klines", "PEPEUSDT", DAY1)
    assert bad_line[:64] != hashlib.sha256(bad).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}  PEPEUSDT-1m-2025-01-01\.zip", bad_line)
    assert (bad == good) == (part == "checksum") and len(bad) == len(good)
    if part == "zip":
        with pytest.raises((zipfile.BadZipFile, zlib.error, EOFError)):  # a broken deflate stream, or a bad CRC
            rows_of(bad, "PEPEUSDT-1m-2025-01-01.csv")
    assert download(clean, "klines", "PEPEUSDT", DAY1) == (good, line)  # "re-uploaded": right from now on
    other, other_line = download(clean, "trades", "PEPEUSDT", DAY1)  # other files were never concerned
    assert other_line[:64] == hashlib.sha256(other).hexdigest()


@pytest.mark.parametrize("how", ["cut", "flip"])
def test_a_broken_zip_whose_checksum_matches(clean, inject, how):
    good, line = download(clean, "trades", "PEPEUSDT", DAY1)
    result = inject("archive_broken", symbol="PEPEUSDT", day=DAY1, kind="trades", how=how)
    assert result["path"] == url("trades", "PEPEUSDT", DAY1)
    for _ in range(2):  # published so: every download is the same broken file, its CHECKSUM matching it
        bad, bad_line = download(clean, "trades", "PEPEUSDT", DAY1)
        assert bad_line == f"{hashlib.sha256(bad).hexdigest()}  PEPEUSDT-trades-2025-01-01.zip"
        assert bad != good and len(bad) == (len(good) // 2 if how == "cut" else len(good))
        with pytest.raises((zipfile.BadZipFile, zlib.error, EOFError)):  # no central directory, or a bad CRC
            rows_of(bad, "PEPEUSDT-trades-2025-01-01.csv")
    head = http(clean, url("trades", "PEPEUSDT", DAY1), method="HEAD")
    assert int(head.headers["content-length"]) == len(bad)
    assert (
        download(clean, "klines", "PEPEUSDT", DAY1)[1][:64]
        == hashlib.sha256(download(clean, "klines", "PEPEUSDT", DAY1)[0]).hexdigest()
    )  # the other kinds are whole
    inject("archive_reupload", symbol="PEPEUSDT", day=DAY1)
    assert download(clean, "trades", "PEPEUSDT", DAY1) == (good, line)


def test_a_day_held_back_answers_404_until_published(clean, inject):
    inject("archive_unpublished", symbol="PEPEUSDT", day=DAY1)
    for kind in ("trades", "klines", "aggTrades"):
        assert http(clean, url(kind, "PEPEUSDT", DAY1)).status == 404
    assert http(clean, url("trades", "NEWUSDT", DAY1)).status == 200  # another symbol's day
    assert http(clean, url("trades", "PEPEUSDT", DAY0)).status == 200  # another day
    inject("archive_reupload", symbol="PEPEUSDT", day=DAY1)
    assert http(clean, url("trades", "PEPEUSDT", DAY1)).status == 200
    inject("archive_unpublished", day=DAY1)  # every symbol
    assert http(clean, url("trades", "NEWUSDT", DAY1)).status == 404
    assert http(clean, url("trades", "PEPEUSDT", DAY1)).status == 404


def test_clear_faults_ends_the_archive_faults(clean):
    clean.archive_unpublished(DAY1)
    clean.archive_truncate("PEPEUSDT", DAY1, 1)
    clean.archive_corrupt("PEPEUSDT", DAY1, part="checksum", count=3)
    state = http(clean, "/_sim/state").json()["faults"]
    assert state["archive_unpublished"] == [f"*/{DAY1}"]
    assert state["archive_truncated"] == {f"PEPEUSDT/trades/{DAY1}": HOUR}
    clean.clear_faults()
    verified_rows(clean, "trades", "PEPEUSDT", DAY1)


def test_fault_arguments_are_checked(sim):
    for name, body in (
        ("archive_truncate", {"symbol": "PEPEUSDT", "day": DAY1, "hours": 24}),
        ("archive_truncate", {"symbol": "NOPEUSDT", "day": DAY1, "hours": 1}),
        ("archive_truncate", {"symbol": "PEPEUSDT", "day": "2025-1-1", "hours": 1}),
        ("archive_corrupt", {"symbol": "PEPEUSDT", "day": DAY1, "part": "csv"}),
        ("archive_corrupt", {"symbol": "PEPEUSDT", "day": DAY1, "kind": "bookTicker"}),
        ("archive_broken", {"symbol": "PEPEUSDT", "day": DAY1, "how": "shred"}),
        ("archive_unpublished", {"day": "yesterday"}),
    ):
        r = http(sim, f"/_sim/faults/{name}", method="POST", body=body)
        assert r.status == 400, (name, body, r.body)
