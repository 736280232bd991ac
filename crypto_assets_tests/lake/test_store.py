"""The same behaviour for every lake: a local folder and S3 on a real moto server (fixture ``lake``)."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crypto_assets.lake import LakeError, LocalLake, S3Lake, lake_from_url
from crypto_assets.lake.schema import TRADE_SCHEMA
from crypto_assets_tests.lake.trades import MINUTE, MINUTE_MS, simulated_minute, trade
from crypto_assets_tests.ports import free_port


def ids(table: pa.Table) -> list[int]:
    return table.column("trade_id").to_pylist()


def test_write_then_read(lake):
    trades = simulated_minute()
    result = lake.write_minute("BTCUSDT", MINUTE, trades)
    assert result.path.endswith("raw_trades/symbol=BTCUSDT/date=2025-11-21/07-01.parquet")
    assert result.path.startswith(lake.url)
    assert (result.rows, result.first_trade_id, result.last_trade_id) == (
        len(trades),
        trades[0].trade_id,
        trades[-1].trade_id,
    )
    assert 0 < result.bytes <= 20 * len(trades)
    table = lake.read_minute("BTCUSDT", MINUTE)
    assert table.schema == TRADE_SCHEMA
    assert ids(table) == [t.trade_id for t in trades]
    assert [format(p, "f") for p in table.column("price").to_pylist()] == [t.price for t in trades]
    assert lake.exists("BTCUSDT", MINUTE)


def test_missing_minute_reads_none(lake):
    assert lake.read_minute("BTCUSDT", MINUTE) is None
    assert not lake.exists("BTCUSDT", MINUTE)
    lake.write_minute("BTCUSDT", MINUTE, [trade(1)])
    assert lake.read_minute("BTCUSDT", MINUTE + MINUTE_MS) is None
    assert lake.read_minute("ETHUSDT", MINUTE) is None


def test_double_write_is_idempotent(lake):
    trades = simulated_minute()
    first = lake.write_minute("BTCUSDT", MINUTE, trades)
    before = lake.read_minute("BTCUSDT", MINUTE)
    second = lake.write_minute("BTCUSDT", MINUTE, trades)
    assert second.rows == first.rows == len(trades)
    assert lake.read_minute("BTCUSDT", MINUTE).equals(before)


def test_overlapping_writes_merge(lake):
    trades = simulated_minute()
    third = len(trades) // 3
    lake.write_minute("BTCUSDT", MINUTE, trades[third:])  # the later part first
    result = lake.write_minute("BTCUSDT", MINUTE, trades[: 2 * third])  # overlaps the middle third
    assert result.rows == len(trades)
    assert ids(lake.read_minute("BTCUSDT", MINUTE)) == [t.trade_id for t in trades]
    assert (result.first_trade_id, result.last_trade_id) == (trades[0].trade_id, trades[-1].trade_id)


def test_stream_trade_already_there_wins_over_rest_repeat(lake):
    lake.write_minute("BTCUSDT", MINUTE, [trade(1, received_at=MINUTE + 5)])
    lake.write_minute("BTCUSDT", MINUTE, [trade(1, received_at=None), trade(2, offset_ms=10)])
    table = lake.read_minute("BTCUSDT", MINUTE)
    assert ids(table) == [1, 2]
    assert table.column("received_at").cast(pa.int64()).to_pylist() == [MINUTE + 5, None]


def test_empty_minute_is_written(lake):
    result = lake.write_minute("BTCUSDT", MINUTE, [])
    assert (result.rows, result.first_trade_id, result.last_trade_id) == (0, None, None)
    assert lake.exists("BTCUSDT", MINUTE)
    assert lake.read_minute("BTCUSDT", MINUTE).num_rows == 0


@pytest.mark.parametrize("offset_ms", [-1, MINUTE_MS, 5 * MINUTE_MS])
def test_trade_outside_the_minute_is_refused_and_previous_file_kept(lake, offset_ms):
    lake.write_minute("BTCUSDT", MINUTE, [trade(1), trade(2, offset_ms=MINUTE_MS - 1)])
    before = lake.read_minute("BTCUSDT", MINUTE)
    with pytest.raises(ValueError, match=r"#3 has trade_time .* outside the minute"):
        lake.write_minute("BTCUSDT", MINUTE, [trade(3, offset_ms=offset_ms)])
    assert lake.read_minute("BTCUSDT", MINUTE).equals(before)


def test_other_symbol_is_refused(lake):
    with pytest.raises(ValueError, match="'ETHUSDT', not 'BTCUSDT'"):
        lake.write_minute("BTCUSDT", MINUTE, [trade(1), trade(2, symbol="ETHUSDT")])
    assert not lake.exists("BTCUSDT", MINUTE)


def test_invalid_symbol_and_minute_are_refused(lake):
    with pytest.raises(ValueError, match="invalid symbol '../x'"):
        lake.write_minute("../x", MINUTE, [])
    with pytest.raises(ValueError, match="not minute-aligned"):
        lake.write_minute("BTCUSDT", MINUTE + 1, [trade(1, offset_ms=1)])
    with pytest.raises(ValueError, match="invalid symbol"):
        lake.read_minute("btcusdt", MINUTE)


def test_conflicting_rewrite_is_refused_and_previous_file_kept(lake):
    lake.write_minute("BTCUSDT", MINUTE, [trade(1, price="1.00")])
    with pytest.raises(ValueError, match="trade_id 1 appears twice with different price"):
        lake.write_minute("BTCUSDT", MINUTE, [trade(1, price="2.00")])
    assert [format(p, "f") for p in lake.read_minute("BTCUSDT", MINUTE).column("price").to_pylist()] == ["1.00000000"]


# ---- local only: atomic replace, file format, unwritable folder ---------------------------------------------------
def test_local_write_leaves_no_temp_files(tmp_path):
    lake = LocalLake(tmp_path)
    trades = simulated_minute()
    lake.write_minute("BTCUSDT", MINUTE, trades[:10])
    lake.write_minute("BTCUSDT", MINUTE, trades)
    with pytest.raises(ValueError):
        lake.write_minute("BTCUSDT", MINUTE, [trade(10**12, offset_ms=MINUTE_MS)])
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["raw_trades/symbol=BTCUSDT/date=2025-11-21/07-01.parquet"]


def test_local_failed_replace_keeps_previous_file_and_no_temp(tmp_path, monkeypatch):
    lake = LocalLake(tmp_path)
    lake.write_minute("BTCUSDT", MINUTE, [trade(1)])
    before = lake.read_minute("BTCUSDT", MINUTE)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(LakeError, match=r"cannot write .*07-01\.parquet.*No space left"):
        lake.write_minute("BTCUSDT", MINUTE, [trade(2)])
    monkeypatch.undo()
    assert lake.read_minute("BTCUSDT", MINUTE).equals(before)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["07-01.parquet"]


def test_local_file_is_zstd_parquet_with_exact_decimals(tmp_path):
    result = LocalLake(tmp_path).write_minute("BTCUSDT", MINUTE, simulated_minute())
    meta = pq.ParquetFile(result.path).metadata
    columns = {meta.schema.column(i).name: meta.schema.column(i) for i in range(meta.num_columns)}
    assert columns["price"].physical_type == "FIXED_LEN_BYTE_ARRAY"  # decimal(19, 8): beyond INT64's 18 digits
    assert (columns["price"].precision, columns["price"].scale) == (19, 8)
    assert "quote_qty" not in columns
    assert meta.row_group(0).column(1).compression == "ZSTD"
    assert pq.read_schema(result.path).metadata[b"symbol"] == b"BTCUSDT"


def test_local_unwritable_folder_names_the_path(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake should be")
    lake = LocalLake(blocker / "lake")
    with pytest.raises(LakeError, match=str(blocker)):
        lake.write_minute("BTCUSDT", MINUTE, [trade(1)])
    assert blocker.read_text() == "a file where the lake should be"


# ---- S3 only: unreachable endpoint, missing bucket -------------------------------------------------------------
def test_s3_unreachable_endpoint_names_it(aws_env):
    endpoint = f"http://127.0.0.1:{free_port()}"
    lake = S3Lake("lake", "p", endpoint_url=endpoint)
    with pytest.raises(LakeError, match=rf"s3://lake/p/raw_trades/.*07-01\.parquet \(endpoint {endpoint}\)"):
        lake.write_minute("BTCUSDT", MINUTE, [trade(1)])
    with pytest.raises(LakeError, match=endpoint):
        lake.read_minute("BTCUSDT", MINUTE)


def test_s3_missing_bucket_names_it(moto_endpoint, aws_env):
    lake = S3Lake("no-such-bucket", "p", endpoint_url=moto_endpoint)
    with pytest.raises(LakeError, match="s3://no-such-bucket/p/.*NoSuchBucket"):
        lake.write_minute("BTCUSDT", MINUTE, [trade(1)])
    with pytest.raises(LakeError, match="s3://no-such-bucket/"):
        lake.exists("BTCUSDT", MINUTE)


def test_s3_write_is_one_put_of_the_whole_file(s3_bucket, moto_endpoint):
    lake = S3Lake(s3_bucket, "", endpoint_url=moto_endpoint)
    calls = []
    real_put = lake.client.put_object
    lake.client.put_object = lambda **kw: calls.append(kw["Key"]) or real_put(**kw)
    result = lake.write_minute("BTCUSDT", MINUTE, simulated_minute())
    assert calls == ["raw_trades/symbol=BTCUSDT/date=2025-11-21/07-01.parquet"]
    assert result.path == f"s3://{s3_bucket}/{calls[0]}"
    keys = [o["Key"] for o in lake.client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == calls


# ---- factory ------------------------------------------------------------------------------------------------------
def test_lake_from_url(tmp_path, aws_env):
    local = lake_from_url(str(tmp_path / "lake"))
    assert isinstance(local, LocalLake) and local.url == str(tmp_path / "lake")
    assert isinstance(lake_from_url(f"file://{tmp_path}"), LocalLake)
    s3 = lake_from_url("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Lake)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bucket", "some/prefix", "http://127.0.0.1:9")
    assert (
        s3.path_of("BTCUSDT", MINUTE)
        == "s3://bucket/some/prefix/raw_trades/symbol=BTCUSDT/date=2025-11-21/07-01.parquet"
    )
    with pytest.raises(ValueError):
        lake_from_url("ftp://host/x")
