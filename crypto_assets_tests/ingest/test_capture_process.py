"""The capture process as the Dagster op runs it: a child process reporting JSON lines, against the simulator."""

import os
import subprocess
import time

import pytest

from crypto_assets.ingest.capture_process import ENVIRONMENT, Alive, LogLine, command, decode_message

pytestmark = pytest.mark.integration


def start(simulator, tmp_path):
    return subprocess.Popen(command(simulator.ws_url, ["BTCUSDT", "ETHUSDT"], str(tmp_path / "lake"), None,
                                    str(tmp_path / "spool"), 64),
                            env={**os.environ, **ENVIRONMENT}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_reports_connection_and_liveness_and_stops_on_sigterm(simulator, tmp_path):
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
        capture.terminate()
    assert capture.wait(15) == 0


def test_stops_when_its_parent_stops_reading(simulator, tmp_path):
    capture = start(simulator, tmp_path)
    decode_message(capture.stdout.readline())
    capture.stdout.close()  # what a dead parent looks like from here: the next report breaks the pipe
    assert capture.wait(20) == 0


def test_bad_arguments_fail_with_a_message(tmp_path):
    result = subprocess.run(command("ws://127.0.0.1:1", ["BTCUSDT"], "ftp://nowhere", None, str(tmp_path / "spool"), 64), capture_output=True,
                            timeout=60)
    assert result.returncode != 0
    assert b"CRYPTO_LAKE_URL" in result.stderr or b"ftp://nowhere" in result.stderr
