"""The simulator's command line as a child process on a free 127.0.0.1 port, for benchmarks and tests that must not
share a Python interpreter (and its GIL) with what they measure, or that test the command line itself."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from binance_simulator.endpoints import ServedAt


class SimulatorProcess(ServedAt):
    """``with SimulatorProcess("--symbols", "BTCUSDT", "--rate", "BTCUSDT=5000") as sim:`` starts
    ``python -m binance_simulator`` with those arguments, waits until ``/api/v3/ping`` answers,
    and terminates it on exit (or at ``stop()``). ``output()`` is what it has printed so far."""

    host = "127.0.0.1"

    def __init__(self, *cli_args: str, start_timeout_s: float = 30):
        self.cli_args = cli_args
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._proc: subprocess.Popen | None = None
        # Its output and its log go to files: a pipe nobody reads would block it once full.
        self._out = tempfile.TemporaryFile()
        self._log = tempfile.TemporaryFile()

    def output(self) -> str:
        """What the simulator has printed on stdout so far (its listening line first)."""
        self._out.seek(0)
        return self._out.read().decode()

    def __enter__(self) -> SimulatorProcess:
        with socket.socket() as s:
            s.bind((self.host, 0))
            self.port = s.getsockname()[1]
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "binance_simulator",
                "--host",
                self.host,
                "--port",
                str(self.port),
                *self.cli_args,
            ],
            stdout=self._out,
            stderr=self._log,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                urllib.request.urlopen(self.rest_url + "/api/v3/ping", timeout=1).read()
                return self
            except OSError:
                if self._proc.poll() is not None:
                    self._log.seek(0)
                    problem = f"the simulator exited at start-up: {self._log.read().decode()[-2000:]}"
                elif time.monotonic() > deadline:
                    problem = f"the simulator did not answer {self.rest_url} within {self.start_timeout_s} s"
                else:
                    time.sleep(0.1)
                    continue
                self.__exit__()
                raise RuntimeError(problem) from None

    def stop(self) -> None:
        """Terminate the simulator (killed if it has not exited 10 s later) and wait for it."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def __exit__(self, *exc) -> None:
        self.stop()
        self._out.close()
        self._log.close()
