"""The simulator's command line as a child process on a free 127.0.0.1 port, for benchmarks that must not share
a Python interpreter (and its GIL) with what they measure."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


class SimulatorProcess:
    """``with SimulatorProcess("--symbols", "BTCUSDT", "--rate", "BTCUSDT=5000") as sim:`` starts
    ``python -m crypto_assets.simulator`` with those arguments, waits until ``/api/v3/ping`` answers,
    and terminates it on exit."""

    host = "127.0.0.1"

    def __init__(self, *cli_args: str, start_timeout_s: float = 30):
        self.cli_args = cli_args
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # its log: a pipe nobody reads would block it once full

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> "SimulatorProcess":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "crypto_assets.simulator", "--host", "127.0.0.1", "--port",
             str(self.port), *self.cli_args], stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                urllib.request.urlopen(self.rest_url + "/api/v3/ping", timeout=1).read()
                return self
            except OSError:
                if self._proc.poll() is not None:
                    self._log.seek(0)
                    raise RuntimeError(f"the simulator exited at start-up: {self._log.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"the simulator did not answer {self.rest_url} within {self.start_timeout_s} s")
                time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None
        self._log.close()
