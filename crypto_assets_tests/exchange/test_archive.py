"""The daily archive client (``crypto_assets.exchange.archive``) against the simulator's archive: verified downloads
equal the ground truth trade by trade and REST kline by kline, in microseconds from 2025-01-01 and milliseconds
before; each archive fault; the errors. Hand-made zips cover malformed rows and a time of the wrong unit; a stub
session covers the HTTP retries.

One simulator (a fixed clock at 2025-01-02 06:00) holds a complete day, 2025-01-01, of a slow PEPEUSDT and the last 2
hours of 2024-12-31."""

from __future__ import annotations

import socket
import zipfile

import pyarrow as pa
import pytest
import requests

from binance_simulator import Simulator, SimulatorConfig, symbol_config
from crypto_assets.exchange import endpoints
from crypto_assets.exchange.archive import (
    TRADE_SCHEMA,
    ArchiveChecksumMismatch,
    BinanceArchive,
    MalformedArchive,
    iter_trades,
    read_klines,
)
from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable
from crypto_assets.exchange.models import parse_rest_klines
from crypto_assets_tests.simulator._support import ManualClock, api, http

pytestmark = pytest.mark.integration

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
DAY1 = "2025-01-01"  # complete, in microseconds
DAY0 = "2024-12-31"  # from 22:00 on (the simulator's history starts there), in milliseconds
D1 = endpoints.ARCHIVE_MICROSECONDS_FROM_MS
ORIGIN = D1 - 2 * HOUR
NOW = D1 + DAY + 6 * HOUR  # 2025-01-02 06:00: today is not published
SYMBOL = "PEPEUSDT"
BUILD_TIMEOUT_S = 120  # a download that builds its day on a loaded machine


class CountingSession(requests.Session):
    """A session that records the URL of every GET."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def get(self, url, **kwargs):
        self.urls.append(url)
        return super().get(url, **kwargs)


@pytest.fixture(scope="module")
def sim():
    symbols = [symbol_config(SYMBOL, trades_per_second=0.1, burst_probability=0.0)]
    with Simulator(SimulatorConfig(symbols=symbols, origin_ms=ORIGIN), clock=ManualClock(NOW)) as s:
        s.archive_file(SYMBOL, DAY1)  # the day's trades and klines, built here rather than inside a request
        yield s


@pytest.fixture
def clean(sim):
    yield sim
    sim.clear_faults()


@pytest.fixture
def client(sim):
    session = CountingSession()
    with BinanceArchive(sim.archive_url, timeout=BUILD_TIMEOUT_S, session=session, backoff_s=0) as archive:
        yield archive
    session.close()


def rest_trades(sim, start_ms: int, end_ms: int) -> list[dict]:
    return http(sim, "/_sim/trades", {"symbol": SYMBOL, "startTime": start_ms, "endTime": end_ms}).json()


def rest_klines(sim, start_ms: int, end_ms: int):
    klines = []
    while start_ms < end_ms:
        page = api(sim, "klines", symbol=SYMBOL, interval="1m", startTime=start_ms, endTime=end_ms - 1, limit=1000)
        assert page.status == 200
        klines += parse_rest_klines(SYMBOL, page.body)
        if not page.json():
            break
        start_ms = klines[-1].open_time + MINUTE
    return klines


def trades_of(file, batch_rows: int = 1_000_000) -> list[dict]:
    batches = list(iter_trades(file, SYMBOL, batch_rows=batch_rows))
    assert all(b.schema == TRADE_SCHEMA and b.num_rows <= batch_rows for b in batches)
    return pa.Table.from_batches(batches, TRADE_SCHEMA).to_pylist()


def as_rest(row: dict) -> dict:
    return {
        "id": row["trade_id"],
        "price": row["price"],
        "qty": row["qty"],
        "quoteQty": row["quote_qty"],
        "time": row["trade_time"],
        "isBuyerMaker": row["is_buyer_maker"],
        "isBestMatch": row["is_best_match"],
    }


# ---- a complete day -------------------------------------------------------------------------------------------------
def test_a_day_of_trades_equals_the_ground_truth_trade_by_trade(client, sim, tmp_path):
    file = client.download(SYMBOL, DAY1, "trades", tmp_path)
    built = sim.archive_file(SYMBOL, DAY1)
    assert file.url == f"{sim.archive_url}/data/spot/daily/trades/{SYMBOL}/{SYMBOL}-trades-{DAY1}.zip"
    assert file.path == tmp_path / f"{SYMBOL}-trades-{DAY1}.zip" and file.path.stat().st_size == file.size
    assert (file.sha256, file.size) == (built.sha256, built.size)  # the checksum that was verified
    assert list(tmp_path.iterdir()) == [file.path]  # no partial file left behind
    rows = trades_of(file, batch_rows=1000)  # several batches
    truth = sim.trades_between(SYMBOL, D1, D1 + DAY)
    assert len(rows) == len(truth) == built.rows > 3000
    assert [r["trade_id"] for r in rows] == truth.id.tolist()
    assert [r["trade_time"] for r in rows] == truth.time.tolist()  # milliseconds, from microseconds
    assert [as_rest(r) for r in rows] == rest_trades(sim, D1, D1 + DAY)  # exact decimal strings
    assert [r["price"] for r in rows[:5]] == [f"{p // 10**8}.{p % 10**8:08d}" for p in truth.price[:5].tolist()]


def test_a_day_of_klines_equals_rest_klines(client, sim, tmp_path):
    file = client.download(SYMBOL, DAY1, "klines", tmp_path)
    assert file.sha256 == sim.archive_file(SYMBOL, DAY1, "klines").sha256
    klines = read_klines(file, SYMBOL)
    assert len(klines) == 1440 and klines == rest_klines(sim, D1, D1 + DAY)
    assert (klines[0].open_time, klines[0].close_time) == (D1, D1 + MINUTE - 1)
    assert all(k.first_trade_id is None and k.last_trade_id is None for k in klines)
    assert sum(k.trade_count for k in klines) == len(sim.trades_between(SYMBOL, D1, D1 + DAY))


def test_a_day_before_2025_is_read_in_milliseconds(client, sim, tmp_path):
    trades = client.download(SYMBOL, DAY0, "trades", tmp_path)
    rows = trades_of(trades)
    assert rows and [as_rest(r) for r in rows] == rest_trades(sim, ORIGIN, D1)
    klines = read_klines(client.download(SYMBOL, DAY0, "klines", tmp_path), SYMBOL)
    assert len(klines) == 120 and klines == rest_klines(sim, ORIGIN, D1)
    assert (klines[0].open_time, klines[-1].close_time) == (ORIGIN, D1 - 1)


# ---- faults ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("part", ["zip", "checksum"])
def test_a_checksum_that_fails_once_is_downloaded_again(clean, client, tmp_path, part):
    good = clean.archive_file(SYMBOL, DAY1, "klines")
    clean.archive_corrupt(SYMBOL, DAY1, kind="klines", part=part)
    file = client.download(SYMBOL, DAY1, "klines", tmp_path)
    assert file.sha256 == good.sha256 and len(read_klines(file, SYMBOL)) == 1440
    assert client._session.urls == [file.url + ".CHECKSUM", file.url] * 2
    assert list(tmp_path.iterdir()) == [file.path]


def test_a_checksum_that_fails_twice_raises_after_two_downloads(clean, client, tmp_path):
    good = clean.archive_file(SYMBOL, DAY1)
    clean.archive_corrupt(SYMBOL, DAY1, kind="trades", part="zip", count=2)
    with pytest.raises(ArchiveChecksumMismatch) as excinfo:
        client.download(SYMBOL, DAY1, "trades", tmp_path)
    url = client.url(SYMBOL, DAY1, "trades")
    assert client._session.urls == [url + ".CHECKSUM", url] * 2  # exactly 2 downloads, no storm
    error = excinfo.value
    assert (error.url, error.expected, error.attempts) == (url, good.sha256, 2) and error.actual != good.sha256
    assert url in str(error) and good.sha256 in str(error) and error.actual in str(error)
    assert list(tmp_path.iterdir()) == []  # nothing unverified is left
    assert client.download(SYMBOL, DAY1, "trades", tmp_path).sha256 == good.sha256  # right again afterwards


def test_an_unpublished_day_is_none(clean, client, tmp_path):
    clean.archive_unpublished(DAY1, SYMBOL)
    assert client.download(SYMBOL, DAY1, "trades", tmp_path) is None
    assert client.download(SYMBOL, DAY1, "klines", tmp_path) is None
    assert client.download(SYMBOL, "2025-01-02", "trades", tmp_path) is None  # today
    assert client.download(SYMBOL, "2024-12-30", "trades", tmp_path) is None  # before the history
    assert client._session.urls == [
        client.url(SYMBOL, d, k) + ".CHECKSUM"
        for d, k in [(DAY1, "trades"), (DAY1, "klines"), ("2025-01-02", "trades"), ("2024-12-30", "trades")]
    ]  # one request each: a 404 is not tried again
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_day_verifies_but_holds_fewer_trades(clean, client, tmp_path):
    """The checksum proves the file is the one published, not that it is complete: the minutes are proven by the
    caller (a day's klines, dense ids), not by this client."""
    full = clean.archive_file(SYMBOL, DAY1)
    clean.archive_truncate(SYMBOL, DAY1, hours=7)
    file = client.download(SYMBOL, DAY1, "trades", tmp_path)
    assert file is not None and file.sha256 != full.sha256  # verified: the CHECKSUM matches the short file
    rows = trades_of(file)
    truth = clean.trades_between(SYMBOL, D1, D1 + DAY)
    assert 0 < len(rows) < len(truth)
    assert [r["trade_id"] for r in rows] == truth.id[: len(rows)].tolist()
    assert max(r["trade_time"] for r in rows) < D1 + 7 * HOUR
    klines = read_klines(client.download(SYMBOL, DAY1, "klines", tmp_path), SYMBOL)
    assert sum(k.trade_count for k in klines) == len(truth) > len(rows)  # what shows the file short


# ---- errors ---------------------------------------------------------------------------------------------------------
def test_an_unreachable_archive_raises_naming_the_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    base = f"http://127.0.0.1:{port}"
    with BinanceArchive(base, timeout=2, backoff_s=0) as archive, pytest.raises(ExchangeUnreachable) as excinfo:
        archive.download(SYMBOL, DAY1, "trades", tmp_path)
    url = f"{base}/data/spot/daily/trades/{SYMBOL}/{SYMBOL}-trades-{DAY1}.zip.CHECKSUM"
    assert excinfo.value.url == url and url in str(excinfo.value)


def test_arguments_are_checked(tmp_path):
    archive = BinanceArchive("http://127.0.0.1:1")
    for symbol, day, kind in ((SYMBOL, "2025-02-30", "trades"), (SYMBOL, DAY1, "aggTrades"), ("pepe", DAY1, "trades")):
        with pytest.raises(ValueError):
            archive.download(symbol, day, kind, tmp_path)


class StubResponse:
    def __init__(self, status: int, body: bytes, url: str):
        self.status_code, self.content, self.url = status, body, url
        self.text = body.decode(errors="replace")

    def iter_content(self, size):
        for i in range(0, len(self.content), size):
            yield self.content[i : i + size]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class StubSession:
    """Answers GETs from a list of (status, body) per URL suffix ('.zip' or '.CHECKSUM'), recording them."""

    def __init__(self, answers: dict[str, list[tuple[int, bytes]]]):
        self.answers = answers
        self.urls: list[str] = []

    def get(self, url, **kwargs):
        self.urls.append(url)
        status, body = self.answers[url.rsplit(".", 1)[1]].pop(0)
        return StubResponse(status, body, url)


def stub_archive(answers) -> BinanceArchive:
    return BinanceArchive("https://archive.test", session=StubSession(answers), backoff_s=0)


def test_a_5xx_is_tried_once_more_and_a_4xx_not_at_all(tmp_path):
    import hashlib

    data, name = b"zip bytes", f"{SYMBOL}-trades-{DAY1}.zip"
    line = f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()  # a trailing newline is tolerated
    archive = stub_archive({"CHECKSUM": [(503, b"busy"), (200, line)], "zip": [(500, b"oops"), (200, data)]})
    file = archive.download(SYMBOL, DAY1, "trades", tmp_path)
    assert file.path.read_bytes() == data and len(archive._session.urls) == 4
    archive = stub_archive({"CHECKSUM": [(503, b"busy"), (502, b"still busy")]})
    with pytest.raises(ExchangeError, match="502") as excinfo:
        archive.download(SYMBOL, DAY1, "trades", tmp_path)
    assert excinfo.value.url.endswith(".CHECKSUM") and len(archive._session.urls) == 2
    archive = stub_archive({"CHECKSUM": [(403, b"<Error><Code>AccessDenied</Code></Error>")]})
    with pytest.raises(ExchangeError, match="403.*AccessDenied") as excinfo:
        archive.download(SYMBOL, DAY1, "trades", tmp_path)
    assert len(archive._session.urls) == 1 and "https://archive.test/data/spot/daily/trades/" in str(excinfo.value)


@pytest.mark.parametrize(
    "line",
    [
        "0" * 63 + f"  {SYMBOL}-trades-{DAY1}.zip",  # 63 hex digits
        "g" * 64 + f"  {SYMBOL}-trades-{DAY1}.zip",
        "0" * 64 + f" {SYMBOL}-trades-{DAY1}.zip",  # one space
        "0" * 64 + f"  {SYMBOL}-trades-2025-01-02.zip",  # another file's
        "0" * 64,
        "",
    ],
)
def test_a_malformed_checksum_line_is_an_error(tmp_path, line):
    archive = stub_archive({"CHECKSUM": [(200, line.encode())]})
    with pytest.raises(ExchangeError, match="CHECKSUM line"):
        archive.download(SYMBOL, DAY1, "trades", tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---- hand-made files: the time unit and malformed rows ---------------------------------------------------------------
def make_zip(folder, day: str, text: str, kind: str = "trades"):
    label = "1m" if kind == "klines" else "trades"
    path = folder / f"{SYMBOL}-{label}-{day}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{SYMBOL}-{label}-{day}.csv", text)
    return path


def test_the_time_unit_is_the_days_on_both_sides_of_2025(tmp_path):
    before, after = D1 - 1, D1 + 1  # 2024-12-31 23:59:59.999 and 2025-01-01 00:00:00.001
    old = make_zip(tmp_path, DAY0, f"7,1.5,2,3.0,{before},True,True\n")
    new = make_zip(tmp_path, DAY1, f"8,1.5,2,3.0,{after * 1000 + 999},False,True\n")
    assert [r["trade_time"] for r in trades_of(old)] == [before]
    assert [r["trade_time"] for r in trades_of(new)] == [after]  # the millisecond holding the microsecond
    # A row in the other unit contradicts its file's day.
    for day, time_value in ((DAY0, before * 1000), (DAY1, after), (DAY1, (D1 + DAY) * 1000)):
        path = make_zip(
            tmp_path,
            day,
            f"7,1.5,2,3.0,{D1 * 1000 if day == DAY1 else D1 - DAY},True,True\n8,1.5,2,3.0,{time_value},True,True\n",
        )
        with pytest.raises(MalformedArchive, match=rf"line 2: time {time_value} is not a time of {day}") as excinfo:
            trades_of(path)
        assert str(path) in str(excinfo.value) and excinfo.value.line == 2
    kline = "{o},1.0,1.0,1.0,1.0,0.0,{c},0.0,0,0.0,0.0,0\n"
    old = make_zip(tmp_path, DAY0, kline.format(o=D1 - MINUTE, c=D1 - 1), "klines")
    new = make_zip(tmp_path, DAY1, kline.format(o=D1 * 1000, c=(D1 + MINUTE) * 1000 - 1), "klines")
    assert [(k.open_time, k.close_time) for k in read_klines(old, SYMBOL)] == [(D1 - MINUTE, D1 - 1)]
    assert [(k.open_time, k.close_time) for k in read_klines(new, SYMBOL)] == [(D1, D1 + MINUTE - 1)]
    wrong = make_zip(tmp_path, DAY1, kline.format(o=D1, c=D1 + MINUTE - 1), "klines")  # milliseconds in 2025
    with pytest.raises(MalformedArchive, match="line 1: .*not a 1m kline of the file's day in microseconds"):
        read_klines(wrong, SYMBOL)


@pytest.mark.parametrize(
    "bad",
    [
        "9,1.5,2,3.0\n",  # too few columns
        "9,1.5,2,3.0,{t},True,True,x\n",  # too many
        "9,1.5x,2,3.0,{t},True,True\n",
        "9,,2,3.0,{t},True,True\n",
        "9,1.5,-2,3.0,{t},True,True\n",
        "nine,1.5,2,3.0,{t},True,True\n",
        "9,1.5,2,3.0,{t},true,True\n",
        "9,1.5,2,3.0,,True,True\n",
    ],
)
def test_a_malformed_trades_row_names_the_file_and_the_line(tmp_path, bad):
    good = "".join(f"{i},1.5,2,3.0,{(D1 + i) * 1000},True,True\n" for i in range(5))
    path = make_zip(tmp_path, DAY1, good + bad.format(t=(D1 + 5) * 1000) + good)
    with pytest.raises(MalformedArchive, match="line 6") as excinfo:
        trades_of(path, batch_rows=2)
    assert excinfo.value.line == 6 and str(path) in str(excinfo.value)


def test_a_file_of_another_symbol_or_with_another_member_is_refused(tmp_path):
    path = make_zip(tmp_path, DAY1, "")
    assert trades_of(path) == []  # a day without trades
    with pytest.raises(MalformedArchive, match="expected one member ETHUSDT-trades-YYYY-MM-DD.csv"):
        list(iter_trades(path, "ETHUSDT"))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("extra.csv", "")
    with pytest.raises(MalformedArchive, match="expected one member"):
        trades_of(path)


def test_a_header_row_is_skipped_and_lines_still_counted_from_the_top(tmp_path):
    """Binance's spot files have no header; its futures files do, and a re-upload might: one is skipped."""
    rows = "".join(f"{i},1.5,2,3.0,{(D1 + i) * 1000},True,True\n" for i in range(3))
    header = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n"
    assert [r["trade_id"] for r in trades_of(make_zip(tmp_path, DAY1, header + rows))] == [0, 1, 2]
    with pytest.raises(MalformedArchive, match="line 5") as excinfo:
        trades_of(make_zip(tmp_path, DAY1, header + rows + "3,1.5x,2,3.0,0,True,True\n"))
    assert excinfo.value.line == 5
    kline_header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,tbbv,tbqv,ignore\n"
    kline = f"{D1 * 1000},1.0,1.0,1.0,1.0,0.0,{(D1 + MINUTE) * 1000 - 1},0.0,0,0.0,0.0,0\n"
    assert [k.open_time for k in read_klines(make_zip(tmp_path, DAY1, kline_header + kline, "klines"), SYMBOL)] == [D1]


def damaged(path, how: str):
    """The zip at ``path`` broken in place: "cut" off halfway, a byte of its data "flip"ped, or "html" instead."""
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(
        {
            "cut": data[:middle],
            "flip": data[:middle] + bytes((data[middle] ^ 0xFF,)) + data[middle + 1 :],
            "html": b"<html><body>503 Service Unavailable</body></html>",
        }[how]
    )
    return path


@pytest.mark.parametrize("how", ["cut", "flip", "html"])
def test_a_broken_zip_is_malformed_and_yields_no_row(tmp_path, how):
    """A checksum matches whatever was published, a broken zip too. A damaged deflate stream can inflate to rows that
    look right before its CRC fails at the end: the CRC is checked before the first row is read."""
    rows = "".join(f"{i},1.{i % 97},2,3.0,{(D1 + i) * 1000},True,True\n" for i in range(100_000))
    path = damaged(make_zip(tmp_path, DAY1, rows), how)
    yielded = []
    with pytest.raises(MalformedArchive, match="not a readable zip|fails its CRC") as excinfo:
        for batch in iter_trades(path, SYMBOL):
            yielded.append(batch.num_rows)
    assert str(path) in str(excinfo.value) and yielded == []
    kline = "".join(
        f"{(D1 + m * MINUTE) * 1000},1.0,1.0,1.0,1.0,0.0,{(D1 + (m + 1) * MINUTE) * 1000 - 1},0.0,0,0.0,0.0,0\n"
        for m in range(1440)
    )
    path = damaged(make_zip(tmp_path, DAY1, kline, "klines"), how)
    with pytest.raises(MalformedArchive, match="not a readable zip|fails its CRC") as excinfo:
        read_klines(path, SYMBOL)
    assert str(path) in str(excinfo.value)
