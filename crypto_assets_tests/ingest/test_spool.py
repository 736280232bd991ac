"""The stream's spool on a real folder: order, bound, reopening, corrupt files, one process at a time."""

import logging

import pytest

from crypto_assets.exchange.models import Kline, Trade
from crypto_assets.ingest.spool import MinuteSpool, SpoolBusy, SpooledMinute
from crypto_assets.minutes import MINUTE_MS

T0 = 1_795_000_000_000 - 1_795_000_000_000 % MINUTE_MS


def minute(symbol: str, n: int, trades: int = 3) -> SpooledMinute:
    start = T0 + n * MINUTE_MS
    first_id = 1000 * n
    rows = [
        Trade(
            symbol,
            first_id + i,
            f"9674{i}.61000000",
            "0.00012000",
            start + i * 100,
            i % 2 == 0,
            received_at=start + i * 100 + 7,
        )
        for i in range(trades)
    ]
    kline = Kline(
        symbol,
        start,
        start + MINUTE_MS - 1,
        "1",
        "2",
        "0.5",
        "1.5",
        "0.00036",
        "34.8",
        trades,
        "0",
        "0",
        first_trade_id=first_id,
        last_trade_id=first_id + trades - 1,
        received_at=start + MINUTE_MS,
    )
    return SpooledMinute(symbol, start, rows, kline, decided_at_ms=start + MINUTE_MS + 200)


def drain(spool: MinuteSpool) -> list[SpooledMinute]:
    out = []
    while (entry := spool.oldest()) is not None:
        loaded = spool.load(entry)
        if loaded is not None:
            out.append(loaded)
            spool.remove(entry)
    return out


def test_minutes_leave_in_the_order_they_came_exactly_as_they_came(tmp_path):
    spool = MinuteSpool(tmp_path / "spool", 10 * 2**20)
    put = [minute("BTCUSDT", 0), minute("BTCUSDT", 1), minute("ETHUSDT", 0), minute("ETHUSDT", 1), minute("BTCUSDT", 2)]
    assert all(spool.put(m) for m in put)
    assert len(spool) == 5 and spool.bytes == sum(p.stat().st_size for p in (tmp_path / "spool").glob("*.minute"))
    assert drain(spool) == put
    assert len(spool) == 0 and spool.bytes == 0 and not list((tmp_path / "spool").glob("*.minute"))


def test_the_bound_refuses_what_does_not_fit_and_frees_as_it_drains(tmp_path):
    probe = MinuteSpool(tmp_path / "probe", 2**20)
    probe.put(minute("BTCUSDT", 0, trades=50))
    size = probe.bytes
    probe.close()
    spool = MinuteSpool(tmp_path / "spool", 2 * size + size // 2)  # room for two such minutes
    assert spool.put(minute("BTCUSDT", 0, trades=50)) and spool.put(minute("BTCUSDT", 1, trades=50))
    assert not spool.put(minute("BTCUSDT", 2, trades=50))  # full: refused, nothing written
    assert len(spool) == 2 and len(list((tmp_path / "spool").glob("*.minute"))) == 2
    spool.remove(spool.oldest())
    assert spool.put(minute("BTCUSDT", 2, trades=50))
    assert [m.minute_start_ms for m in drain(spool)] == [T0 + MINUTE_MS, T0 + 2 * MINUTE_MS]


def test_the_spool_survives_a_restart_and_a_symbols_minutes_stay_in_order(tmp_path):
    spool = MinuteSpool(tmp_path / "spool", 2**20)
    put = [minute("ETHUSDT", 1), minute("ETHUSDT", 2), minute("BTCUSDT", 1), minute("BTCUSDT", 2)]
    for m in put:
        spool.put(m)
    (tmp_path / "spool" / ".tmp-cut-short").write_bytes(b"half a minute")  # a write a crash interrupted
    spool.close()  # or the process is killed: the files are what counts

    reopened = MinuteSpool(tmp_path / "spool", 2**20)
    assert len(reopened) == 4 and not (tmp_path / "spool" / ".tmp-cut-short").exists()
    got = drain(reopened)
    assert sorted(got, key=lambda m: (m.symbol, m.minute_start_ms)) == sorted(
        put, key=lambda m: (m.symbol, m.minute_start_ms)
    )
    for symbol in ("BTCUSDT", "ETHUSDT"):
        starts = [m.minute_start_ms for m in got if m.symbol == symbol]
        assert starts == sorted(starts)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other-minute"])
def test_a_corrupt_file_is_set_aside_and_reported_and_the_rest_drains(tmp_path, caplog, damage):
    spool = MinuteSpool(tmp_path / "spool", 2**20)
    for n in range(3):
        spool.put(minute("BTCUSDT", n))
    victim = spool.oldest().path
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        victim.write_bytes(data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:])
    elif damage == "garbage":
        victim.write_bytes(b"not a minute at all")
    else:  # a whole, valid file under another minute's name
        victim.write_bytes(next(p for p in (tmp_path / "spool").glob("*.minute") if p != victim).read_bytes())
    with caplog.at_level(logging.WARNING, logger="crypto_assets.ingest.spool"):
        got = drain(spool)
    assert [m.minute_start_ms for m in got] == [T0 + MINUTE_MS, T0 + 2 * MINUTE_MS]
    assert (tmp_path / "spool" / "corrupt" / victim.name).exists() and not victim.exists()
    assert any(victim.name in r.getMessage() and "gap backfill" in r.getMessage() for r in caplog.records)
    assert len(spool) == 0 and spool.bytes == 0


def test_a_file_with_a_foreign_name_is_set_aside_at_opening(tmp_path, caplog):
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "whatever.minute").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="crypto_assets.ingest.spool"):
        spool = MinuteSpool(folder, 2**20)
    assert len(spool) == 0 and (folder / "corrupt" / "whatever.minute").exists()
    assert "whatever.minute" in caplog.text


def test_one_process_at_a_time(tmp_path):
    first = MinuteSpool(tmp_path / "spool", 2**20)
    with pytest.raises(SpoolBusy, match="in use"):
        MinuteSpool(tmp_path / "spool", 2**20, lock_wait_s=0.3)
    first.close()
    MinuteSpool(tmp_path / "spool", 2**20, lock_wait_s=0.3).close()
