"""The capture process as the Dagster op runs it: a child process reporting JSON lines, against the simulator."""

import os
import signal
import subprocess
import time
from decimal import Decimal

import pytest

from crypto_assets.exchange.models import Kline
from crypto_assets.ingest.capture_process import (
    ENVIRONMENT,
    Alive,
    CaptureConfig,
    LogLine,
    MinuteDecided,
    command,
    decode_message,
    encode_message,
)
from crypto_assets.ingest.minute_checks import CheckResult, MinuteSummary, Rule
from crypto_assets.ingest.spool import MinuteSpool, SpooledMinute
from crypto_assets.ingest.stored_minutes import MinuteResult, Outcome
from crypto_assets.lake import LocalLake, trades_to_table
from crypto_assets.minutes import MINUTE_MS
from crypto_assets_tests.ground_truth import past_minute, truth

pytestmark = pytest.mark.integration


def start(simulator, tmp_path, **config):
    """A capture process of BTCUSDT and ETHUSDT against ``simulator``, its lake, spool and budget under ``tmp_path``;
    ``config``: other CaptureConfig fields, or these replaced."""
    defaults = dict(
        ws_url=simulator.ws_url,
        rest_url=simulator.rest_url,
        budget_dir=str(tmp_path / "budget"),
        symbols=["BTCUSDT", "ETHUSDT"],
        lake_url=str(tmp_path / "lake"),
        endpoint_url=None,
        spool_dir=str(tmp_path / "spool"),
        spool_max_mb=64,
    )
    return subprocess.Popen(
        command(CaptureConfig(**{**defaults, **config})),
        env={**os.environ, **ENVIRONMENT},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_reports_connection_and_liveness_and_stops_on_sigterm_or_sigint(simulator, tmp_path, stop):
    """SIGINT as SIGTERM: Ctrl-C on `dagster dev` reaches the capture process with its whole process group; it exits
    0 (no KeyboardInterrupt traceback) once the stream is closed."""
    capture = start(simulator, tmp_path)
    try:
        messages = []
        deadline = time.time() + 30
        while time.time() < deadline and sum(isinstance(m, Alive) for m in messages) < 2:
            messages.append(decode_message(capture.stdout.readline()))
        logs = [m.message for m in messages if isinstance(m, LogLine)]
        assert any("stream connected" in line for line in logs), logs
        assert sum(isinstance(m, Alive) for m in messages) >= 2  # one every 5 s while records flow
    finally:
        capture.send_signal(stop)
    assert capture.wait(15) == 0
    assert b"Traceback" not in capture.stderr.read()


def test_streams_over_as_many_connections_as_symbols_per_connection_asks(simulator, tmp_path):
    """One symbol per connection: two connections, the second opened no sooner than the attempt pacing allows
    (5 s: 60 attempts per 5 minutes), each named in the log."""
    capture = start(simulator, tmp_path, symbols_per_connection=1)
    try:
        connected = []
        deadline = time.time() + 30
        while time.time() < deadline and len(connected) < 2:
            message = decode_message(capture.stdout.readline())
            if isinstance(message, LogLine) and "stream connected" in message.message:
                connected.append((time.monotonic(), message.message))
    finally:
        capture.terminate()
    assert capture.wait(15) == 0
    assert [line.rsplit("streams=", 1)[1] for _, line in connected] == [
        "btcusdt@trade/btcusdt@kline_1m",
        "ethusdt@trade/ethusdt@kline_1m",
    ]
    assert connected[1][0] - connected[0][0] >= 4.5


def test_stops_when_its_parent_stops_reading(simulator, tmp_path):
    capture = start(simulator, tmp_path)
    decode_message(capture.stdout.readline())
    capture.stdout.close()  # what a dead parent looks like from here: the next report breaks the pipe
    assert capture.wait(20) == 0


def test_bad_arguments_fail_with_a_message(tmp_path):
    args = command(
        CaptureConfig(
            ws_url="ws://127.0.0.1:1",
            rest_url="http://127.0.0.1:1",
            budget_dir=str(tmp_path / "budget"),
            symbols=["BTCUSDT"],
            lake_url="ftp://nowhere",
            endpoint_url=None,
            spool_dir=str(tmp_path / "spool"),
            spool_max_mb=64,
        )
    )
    result = subprocess.run(args, capture_output=True, timeout=60)
    assert result.returncode != 0
    assert b"CRYPTO_LAKE_URL" in result.stderr or b"ftp://nowhere" in result.stderr
    garbled = subprocess.run([*args[:-1], '{"ws_url": 1}'], capture_output=True, timeout=60)
    assert garbled.returncode == 2 and b"CaptureConfig" in garbled.stderr


def test_minutes_left_in_the_spool_are_written_first(simulator, tmp_path):
    """A capture process finds what an earlier one spooled (the lake was down when it died) and writes it first."""
    minute = past_minute(simulator, 3)
    trades = truth(simulator, "BTCUSDT", minute, minute + MINUTE_MS)
    assert trades
    kline = Kline(
        "BTCUSDT",
        minute,
        minute + MINUTE_MS - 1,
        "0",
        "0",
        "0",
        "0",
        str(sum(Decimal(t.qty) for t in trades)),
        "0",
        len(trades),
        "0",
        "0",
        first_trade_id=trades[0].trade_id,
        last_trade_id=trades[-1].trade_id,
    )
    spool = MinuteSpool(tmp_path / "spool", 2**20)
    spool.put(SpooledMinute("BTCUSDT", minute, trades, kline, minute + MINUTE_MS))
    spool.close()

    capture = start(simulator, tmp_path)
    try:
        messages = []
        deadline = time.time() + 30
        while time.time() < deadline and not any(isinstance(m, MinuteDecided) for m in messages):
            messages.append(decode_message(capture.stdout.readline()))
    finally:
        capture.terminate()
    assert capture.wait(15) == 0
    assert any(isinstance(m, LogLine) and "1 minute(s) found in the spool" in m.message for m in messages), messages
    first = next(m for m in messages if isinstance(m, MinuteDecided))
    assert (first.symbol, first.minute_start_ms, first.outcome) == ("BTCUSDT", minute, Outcome.WRITTEN)
    assert first.result().ok, first.result().problems
    assert LocalLake(tmp_path / "lake").read_minute("BTCUSDT", minute).equals(trades_to_table(trades))
    assert not list((tmp_path / "spool").glob("*.minute"))


# ---- the wire format ---------------------------------------------------------------------------------------------
WRITTEN = MinuteResult(
    1_700_000_040_000,
    Outcome.WRITTEN,
    "/lake/raw_trades/symbol=BTCUSDT/date=2023-11-14/22-14.parquet",
    MinuteSummary(1_700_000_040_000, 3, 11, 13, "0.3", "30.15", "stream"),
    (
        CheckResult(Rule.DENSE_IDS, True, "3 dense ids", {"rows": 3, "previous_last_id": 10, "next_first_id": None}),
        CheckResult(Rule.KLINE_AGREEMENT, True, "as the kline says", {"kline_trade_count": 3, "kline_volume": "0.3"}),
        CheckResult(Rule.SANE_VALUES, True, "sane"),
    ),
    written_at_ms=1_700_000_101_234,
)


@pytest.mark.parametrize(
    "result",
    [WRITTEN, MinuteResult(1_700_000_040_000, Outcome.UNPROVEN, reasons=("no closed kline", "a hole after 12"))],
    ids=["written", "unproven"],
)
def test_a_decided_minute_crosses_the_wire_unchanged(result):
    line = encode_message(MinuteDecided.of("BTCUSDT", result))
    message = decode_message(line)
    assert isinstance(message, MinuteDecided) and message.symbol == "BTCUSDT"
    assert message.result() == result


def test_the_wire_format_is_its_own_plain_json():
    """Outcome and rules as their values; the domain's types (MinuteResult, CheckResult, MinuteSummary) are not
    what is sent."""
    import json

    sent = json.loads(encode_message(MinuteDecided.of("BTCUSDT", WRITTEN)))
    assert sent["event"] == "minute" and sent["outcome"] == "written" and sent["minute_start_ms"] == 1_700_000_040_000
    assert [c["rule"] for c in sent["checks"]] == ["trade_ids_dense", "agrees_with_kline", "values_sane"]
    assert set(sent) == {
        "event",
        "symbol",
        "minute_start_ms",
        "outcome",
        "path",
        "summary",
        "checks",
        "reasons",
        "written_at_ms",
    }


def test_two_shards_stream_into_one_lake_and_every_minute_is_exact(tmp_path):
    """The universe split over two streaming runs (CRYPTO_STREAM_SHARDS=2): each run's capture process streams its
    shard's symbols with its own spool, into one lake; every minute either writes equals the exchange's trades."""
    from binance_simulator import Simulator, SimulatorConfig, symbol_config
    from crypto_assets.defs.raw.live_stream import spool_dir
    from crypto_assets.ingest.universe import shard_of

    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    shards = [shard_of(symbols, i, 2) for i in range(2)]
    assert all(shards)
    with Simulator(SimulatorConfig(symbols=[symbol_config(s) for s in symbols], history_minutes=2)) as sim:
        processes = [
            start(sim, tmp_path, symbols=shard, spool_dir=spool_dir(str(tmp_path / "spool"), f"{i}/2"))
            for i, shard in enumerate(shards)
        ]
        written: dict[str, list[int]] = {s: [] for s in symbols}
        try:
            for capture in processes:  # the minute after each shard joined: up to two minute ends away
                deadline = time.time() + 150
                mine = [s for s in symbols if s in capture_symbols(capture)]
                while time.time() < deadline and not all(written[s] for s in mine):
                    message = decode_message(capture.stdout.readline())
                    if isinstance(message, MinuteDecided) and message.result().outcome == Outcome.WRITTEN:
                        written[message.symbol].append(message.result().minute_start_ms)
        finally:
            for capture in processes:
                capture.terminate()
                capture.wait(15)
        lake = LocalLake(tmp_path / "lake")
        for symbol, minutes in written.items():
            assert minutes, f"{symbol}: no minute written"
            for minute in minutes:
                stored = lake.read_minute(symbol, minute).drop_columns("received_at")
                expected = trades_to_table(truth(sim, symbol, minute, minute + MINUTE_MS)).drop_columns("received_at")
                assert stored.equals(expected), (symbol, minute)


def capture_symbols(capture: subprocess.Popen) -> list[str]:
    """The symbols a capture process was started with (its one JSON argument)."""
    import json

    return json.loads(capture.args[-1])["symbols"]
