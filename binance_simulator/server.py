"""The simulated exchange: one port serving Binance REST, Binance streams and a control path for tests.

    http://HOST:PORT/api/v3/...                 Binance REST (weights, 429/418, error bodies)
    ws://HOST:PORT/ws/<stream>                  raw stream
    ws://HOST:PORT/stream?streams=<a>/<b>       combined stream
    http://HOST:PORT/data/spot/daily/...        Binance's public daily archive (data.binance.vision; no weight)
    http://HOST:PORT/_sim/...                   control: faults, ground truth, state (no weight)

``Simulator`` runs its event loop in a background thread (``with Simulator(...) as sim:`` in tests) or in the
foreground (``python -m binance_simulator``). Every fault can be injected in process
(``sim.drop_connections()``) or over HTTP (``POST /_sim/faults/drop``); both call the same code.

Hostile mode (``SimulatorConfig.hostile``, ``--hostile``, ``sim.hostile()``, ``POST /_sim/faults/hostile``) is
``hostile.py``: connections cut after 40-100 s, bursts and empty minutes. A symbol of ``SimulatorConfig.listed``
was listed that many minutes before start-up: nothing of it exists before (see ``Market``). The archive of complete
days, its publication rule and its faults are ``archive.py``.

The universe (``universe.py``): ``SimulatorConfig.quiet_symbols`` adds generated quiet symbols; a symbol of
``SimulatorConfig.halted`` has been halted since that many minutes before start-up; while running, ``halt``,
``resume_trading``, ``delist`` and ``list_symbol`` (``POST /_sim/faults/<name>``, like the faults) change it from
the first second not generated yet, so the market stays one market.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from binance_simulator import archive, payloads, wire
from binance_simulator.endpoints import MINUTE_MS, ServedAt
from binance_simulator.faults import Faults, nine_decimals
from binance_simulator.market import (
    DEFAULT_SYMBOLS,
    Market,
    SymbolConfig,
    Trades,
    symbol_config,
    units_to_decimal,
)
from binance_simulator.rate_limits import ConnectionAttemptLimiter, RequestWeightLimiter
from binance_simulator.rest_api import RestApi
from binance_simulator.streams import MAX_STREAMS, StreamHub, StreamSettings, requested_streams
from binance_simulator.universe import quiet_symbols

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# Every fault, declared once: its name under POST /_sim/faults/<name> -> (the Simulator method that injects it, the
# key the HTTP answer puts its result under, if any). The method's keywords are the JSON body's fields.
FAULTS: dict[str, tuple[str, str | None]] = {}


def fault(name: str, result: str | None = None) -> Callable:
    def declare(method: Callable) -> Callable:
        FAULTS[name] = (method.__name__, result)
        return method

    return declare


@dataclass
class SimulatorConfig:
    symbols: list[SymbolConfig] = field(default_factory=lambda: [symbol_config(s) for s in DEFAULT_SYMBOLS])
    seed: int = 1
    history_minutes: int = 120  # the market has traded since this long before start-up
    origin_ms: int | None = None  # or an explicit start of history (overrides history_minutes)
    weight_per_minute: int = 6000
    tolerated_violations: int = 3
    ban_seconds: int = 120
    connection_attempts_per_5min: int = 300
    stream: StreamSettings = field(default_factory=StreamSettings)
    hostile: bool = False  # hostile mode from the start: the whole history has its bursts and empty minutes
    hostile_seed: int | None = None  # defaults to seed
    listed: dict[str, int] = field(default_factory=dict)  # symbol -> listed this many minutes before start-up
    archive_delay_minutes: int = 0  # a day's archive files are published this long after the day ends
    # cache of built archive files, kept and reused by later simulators with the same market (default: a temporary
    # folder, removed at stop)
    archive_dir: str | None = None
    quiet_symbols: int = 0  # this many generated quiet symbols besides ``symbols`` (see universe.py)
    halted: dict[str, int] = field(default_factory=dict)  # symbol -> halted since this many minutes before start-up

    def all_symbols(self) -> list[SymbolConfig]:
        """``symbols``, then the generated quiet symbols (a pure function of the seed)."""
        taken = {c.symbol for c in self.symbols}
        return self.symbols + [SymbolConfig(**q) for q in quiet_symbols(self.quiet_symbols, self.seed, taken)]


class Simulator(ServedAt):
    def __init__(
        self,
        config: SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], int] = wall_clock_ms,
    ):
        self.config = config or SimulatorConfig()
        self.host, self.port = host, port
        self.clock = clock
        origin = self.config.origin_ms
        if origin is None:
            origin = clock() - self.config.history_minutes * MINUTE_MS
        now = clock()
        for what, given in (("listed", self.config.listed), ("halted", self.config.halted)):
            for symbol, minutes in given.items():
                if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 0:
                    raise ValueError(f"{what} {symbol}: minutes must be an integer >= 0, got {minutes!r}")
        self.market = Market(
            self.config.all_symbols(),
            self.config.seed,
            origin,
            listings={s: now - m * MINUTE_MS for s, m in self.config.listed.items()},
        )
        for symbol, minutes in self.config.halted.items():
            if symbol not in self.market:
                raise ValueError(f"halted symbol not in the market: {symbol}")
            self.market[symbol].halt(now - minutes * MINUTE_MS)
        self.faults = Faults()
        self.limiter = RequestWeightLimiter(
            self.config.weight_per_minute, self.config.tolerated_violations, self.config.ban_seconds
        )
        self.connection_limiter = ConnectionAttemptLimiter(self.config.connection_attempts_per_5min)
        self.rest = RestApi(self.market, self.limiter, self.faults, clock)
        self.hub = StreamHub(self.market, self.faults, clock, self.config.stream)
        self.archive = archive.Archive(
            self.market, self.faults, clock, self.config.archive_delay_minutes * MINUTE_MS, self.config.archive_dir
        )
        self.hostile_seed: int | None = None  # hostile mode on (with this seed) or off (None)
        if self.config.hostile:
            self._set_hostile(True, self.config.hostile_seed, from_origin=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------------
    async def start_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, limit=wire.MAX_HEAD, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        await self.start_async()
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> Simulator:
        """Serve from a background thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._run_thread, name="binance-simulator", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._start_error is not None:
            raise RuntimeError(f"the simulator could not start on {self.host}:{self.port}") from self._start_error
        return self

    def _run_thread(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.start_async())
        except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:  # gather() of nothing looks for the thread's current loop, which this thread never set
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            self.archive.close()  # files built in process (archive_file) without a running server
            return

        async def _shutdown() -> None:
            self._server.close()
            self.hub.drop()
            await asyncio.sleep(0)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(_shutdown(), self._loop)
        self._thread.join(10)
        self._thread = None
        self.archive.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _call(self, fn, *args):
        """Run ``fn`` on the simulator's loop thread and return its result (fault state lives there)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        # Already on the loop (the control path, also in the foreground CLI where there is no thread): call directly;
        # waiting on a future the blocked loop would have to run would deadlock.
        if self._loop is None or not self._loop.is_running() or running is self._loop:
            return fn(*args)

        async def _run():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(_run(), self._loop).result(10)

    # ---- ground truth -------------------------------------------------------------------------------------------
    def trades_between(self, symbol: str, start_ms: int, end_ms: int) -> Trades:
        """Every trade of ``symbol`` with start_ms <= time < end_ms, straight from the market model."""
        return self.market[symbol].trades_between(start_ms, end_ms)

    # ---- faults (in process) ------------------------------------------------------------------------------------
    @fault("drop", result="dropped")
    def drop_connections(self, symbol: str | None = None) -> int:
        """Drop stream connections (all, or those carrying ``symbol``) without a close frame."""
        return self._call(self.hub.drop, symbol)

    @fault("half_open", result="silenced")
    def half_open(self, symbol: str | None = None, duration_s: float | None = None) -> int:
        """Go silent on stream connections without closing them: no data, no pings, no answers."""
        return self._call(self.hub.half_open, symbol, duration_s)

    @fault("server_shutdown", result="notified")
    def server_shutdown(self, grace_s: float = 5.0) -> int:
        """Send ``serverShutdown`` on every connection and close them ``grace_s`` later."""
        return self._call(self.hub.server_shutdown, grace_s)

    @fault("hostile")
    def hostile(self, enabled: bool = True, seed: int | None = None) -> dict:
        """Hostile mode on or off: every stream connection cut after 40-100 s (drop, half-open or serverShutdown),
        bursts of 10-50x a symbol's rate, empty minutes (see ``hostile.py``). The market changes only from the first
        second not generated yet, so the ground truth, REST, klines and the stream stay one market. ``seed``
        defaults to the simulator's seed. Returns ``{"enabled", "seed", "from_ms": {symbol: first ms concerned}}``."""
        return self._call(self._set_hostile, enabled, seed)

    def _set_hostile(self, enabled, seed=None, from_origin: bool = False) -> dict:
        if not isinstance(enabled, bool):
            raise ValueError(f"hostile: enabled must be true or false, got {enabled!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"hostile: seed must be an integer, got {seed!r}")
        seed = self.config.seed if seed is None else seed
        now = self.clock()
        if enabled and self.hostile_seed is not None and self.hostile_seed != seed:
            self.market.set_hostile(False, now)  # a new seed: end the old window, start a new one
        firsts = self.market.set_hostile(enabled, now, seed, from_origin)
        self.hostile_seed = seed if enabled else None
        self.hub.set_hostile(self.hostile_seed)
        return {"enabled": enabled, "seed": self.hostile_seed, "from_ms": {s: f * 1000 for s, f in firsts.items()}}

    @fault("malformed")
    def send_malformed(self, symbol: str, count: int = 1, kind: str | None = None) -> None:
        """Replace the next ``count`` trade frames of ``symbol`` with malformed ones (kinds cycle if not given)."""
        self._call(self.faults.add_malformed, symbol, count, kind)

    @fault("bad_value")
    def bad_value(
        self,
        symbol: str,
        trade_id: int | None = None,
        at_or_after_ms: int | None = None,
        field: str = "price",
        value: str | None = None,
    ) -> dict:
        """Make one trade of ``symbol`` carry a value no exchange sends, on the stream and over REST (``trades``,
        ``historicalTrades``), until cleared: the trade ``trade_id``, or the first one with time >= ``at_or_after_ms``.
        ``field`` is ``price`` or ``qty``; ``value`` defaults to the true value with a ninth decimal
        ('95000.01000000' -> '95000.010000007'), which the client still parses. aggTrades, klines and the ground
        truth keep the true value. Returns ``{"trade_id", "time_ms", "field", "value"}``."""
        if (trade_id is None) == (at_or_after_ms is None):
            raise ValueError("bad_value needs exactly one of trade_id and at_or_after_ms")
        if symbol not in self.market:
            raise KeyError(f"unknown symbol {symbol}")
        m = self.market[symbol]
        chosen = int(trade_id) if trade_id is not None else m.first_trade_id_from(int(at_or_after_ms))
        trade = m.trade_with_id(chosen)
        if value is None:
            true = int((trade.price if field == "price" else trade.qty)[0])
            value = nine_decimals(units_to_decimal(true))
        self._call(self.faults.add_bad_value, symbol, chosen, field, value)
        return {"trade_id": chosen, "time_ms": int(trade.time[0]), "field": field, "value": value}

    @fault("rest_errors")
    def fail_rest(self, count: int = 0, status: int = 503, duration_s: float = 0) -> None:
        """Answer the next ``count`` REST requests (or all for ``duration_s``) with a 5xx."""

        def apply():
            self.faults.rest_error_status = status
            self.faults.rest_errors_left = count
            self.faults.rest_errors_until_ms = self.clock() + int(duration_s * 1000) if duration_s else 0

        self._call(apply)

    @fault("latency")
    def set_latency(self, rest_ms: int | None = None, stream_ms: int | None = None) -> None:
        def apply():
            if rest_ms is not None:
                self.faults.rest_latency_ms = rest_ms
            if stream_ms is not None:
                self.faults.stream_latency_ms = stream_ms

        self._call(apply)

    @fault("rate_limit_storm")
    def rate_limit_storm(self, duration_s: float, retry_after_s: int = 1) -> None:
        """Answer every REST request with 429 (``Retry-After: retry_after_s``) for ``duration_s``."""

        def apply():
            self.faults.storm_until_ms = self.clock() + int(duration_s * 1000)
            self.faults.storm_retry_after_s = retry_after_s

        self._call(apply)

    @fault("pause")
    def pause_symbol(self, symbol: str, duration_s: float | None = None) -> None:
        """Stop streaming ``symbol`` (trades keep happening; the stream skips them) until resumed."""
        self._call(self.faults.pause, symbol, self.clock(), duration_s)

    @fault("resume")
    def resume_symbol(self, symbol: str) -> None:
        self._call(self.faults.resume, symbol)

    # ---- the universe (in process or POST /_sim/faults/<name>) ------------------------------------------------------
    @fault("halt")
    def halt(self, symbol: str) -> dict:
        """Halt ``symbol`` from the first second not generated yet: status HALT, no trade (the stream sends none, its
        klines have n = 0), until ``resume_trading``; ids continue where they stopped. Returns ``{"from_ms"}``."""
        return {"from_ms": self._call(lambda: self._known(symbol).halt(self.clock())) * 1000}

    @fault("resume_trading")
    def resume_trading(self, symbol: str) -> dict:
        """End the halt of ``symbol`` from the first second not generated yet. Returns ``{"from_ms"}``."""
        return {"from_ms": self._call(lambda: self._known(symbol).resume(self.clock())) * 1000}

    @fault("delist")
    def delist(self, symbol: str, remove: bool = False) -> dict:
        """Delist ``symbol``: no trade from the first second not generated yet, status BREAK. With ``remove`` (or on
        a second call) it also leaves exchangeInfo, and REST, the stream and the archive answer as for a symbol
        that never existed; the ground truth keeps it. Returns ``{"from_ms", "removed"}``."""

        def apply():
            m = self._known(symbol)
            current = m.lifecycle.current
            if current is not None and current.status == "BREAK":
                first, remove_now = current.start_s, True
            else:
                first, remove_now = m.delist(self.clock()), bool(remove)
            m.lifecycle.removed = remove_now
            return {"from_ms": first * 1000, "removed": remove_now}

        return self._call(apply)

    @fault("list_symbol")
    def list_symbol(self, symbol: str, **settings) -> dict:
        """List ``symbol`` (absent until now) from the next second: status TRADING, trade and aggregate ids from 0,
        its first second holds its first trade. ``settings`` are ``SymbolConfig`` fields (``trades_per_second``,
        ...) over ``symbol_config``'s defaults. Returns ``{"from_ms"}``, the listing time."""
        cfg = symbol_config(symbol, **settings)

        def apply():
            m = self.market.list_symbol(cfg, self.clock())
            if self.hostile_seed is not None:
                m.set_hostile(True, self.clock(), self.hostile_seed)
            return {"from_ms": m.origin_ms}

        return self._call(apply)

    def _known(self, symbol: str):
        if symbol not in self.market:
            raise KeyError(f"unknown symbol {symbol}")
        return self.market[symbol]

    def symbol_states(self) -> dict[str, dict]:
        """Each symbol's status now, listing time (None: listed before the history), stops and removal."""
        now = self.clock()
        return {
            name: {
                "status": m.status(now),
                "listed_ms": self.market.listings.get(name),
                "stops": [s.as_dict() for s in m.lifecycle.stops],
                "removed": m.lifecycle.removed,
            }
            for name, m in self.market.symbols.items()
        }

    # ---- the daily archive (in process; see archive.py) ------------------------------------------------------------
    @fault("archive_truncate")
    def archive_truncate(self, symbol: str, day: str, hours: float, kind: str = "trades") -> dict:
        """Publish ``kind`` of ``symbol`` on ``day`` holding only its first ``hours`` (0 <= hours < 24), with a
        CHECKSUM that matches the truncated file, until ``archive_reupload`` (the other kinds stay complete).
        Returns the file's path."""
        self._archive_day(symbol, day)
        self._call(self.faults.truncate_archive, symbol, kind, day, int(round(float(hours) * 3_600_000)))
        return {"path": archive.ArchiveFile(kind, symbol, day).path}

    @fault("archive_corrupt")
    def archive_corrupt(self, symbol: str, day: str, kind: str = "trades", part: str = "zip", count: int = 1) -> dict:
        """The next ``count`` downloads of the ``kind`` file of ``symbol`` on ``day`` fail their checksum: with
        ``part`` "zip" the zip comes with one byte changed (its CHECKSUM is right), with "checksum" the CHECKSUM
        carries the sha256 of other bytes (the zip is right); the download after them is right, as after a
        re-upload. HEAD requests do not count. Returns the file's path."""
        self._archive_day(symbol, day)
        self._call(self.faults.corrupt_archive, symbol, kind, day, part, int(count))
        return {"path": archive.ArchiveFile(kind, symbol, day).path}

    @fault("archive_broken")
    def archive_broken(self, symbol: str, day: str, kind: str = "trades", how: str = "cut") -> dict:
        """Publish ``kind`` of ``symbol`` on ``day`` as a broken zip whose CHECKSUM matches the broken bytes (Binance
        checksummed what it uploaded), until ``archive_reupload``: with ``how`` "cut" the zip breaks off halfway (no
        central directory: it does not open), with "flip" one byte of its deflated data is changed (it opens, and its
        CRC fails). Returns the file's path."""
        self._archive_day(symbol, day)
        self._call(self.faults.break_archive, symbol, kind, day, how)
        return {"path": archive.ArchiveFile(kind, symbol, day).path}

    @fault("archive_unpublished")
    def archive_unpublished(self, day: str, symbol: str | None = None) -> None:
        """Every file of ``day`` (of ``symbol``, or of every symbol) answers 404 until ``archive_reupload``, as a day
        Binance has not published yet."""
        self._archive_day(symbol, day)
        self._call(self.faults.hold_back_archive, symbol, day)

    @fault("archive_reupload")
    def archive_reupload(self, day: str, symbol: str | None = None) -> None:
        """End every archive fault of ``day`` (of ``symbol``, or of every symbol): the files at the same URLs are
        complete and right, as after Binance re-uploads them."""
        self._archive_day(symbol, day)
        self._call(self.faults.reupload_archive, symbol, day)

    def archive_file(self, symbol: str, day: str, kind: str = "trades") -> archive.BuiltFile:
        """The zip the archive serves now for ``kind`` of ``symbol`` on ``day`` (built on first use, whether the day
        is published or not): its path in the cache folder, size, sha256 and number of rows."""
        self._archive_day(symbol, day)
        return self.archive.build(symbol, kind, day)

    def _archive_day(self, symbol: str | None, day: str) -> None:
        archive.day_start_ms(day)  # ValueError unless YYYY-MM-DD
        if symbol is not None and symbol not in self.market:
            raise KeyError(f"unknown symbol {symbol}")

    @fault("clear")
    def clear_faults(self) -> None:
        """Clear the injected faults (the archive's too); hostile mode stays as it is (``hostile(False)`` ends it), and
        a connection it cut half-open stays silent."""

        def apply():
            fresh = Faults()
            self.faults.__dict__.update(fresh.__dict__)
            for s in self.hub.sessions.values():
                s.half_open = s.silenced_for_good

        self._call(apply)

    def state(self) -> dict:
        return self._call(
            lambda: {
                "rest_url": self.rest_url,
                "ws_url": self.ws_url,
                "origin_ms": self.market.origin_ms,
                "symbols": self.market.listed(),
                "connections": self.hub.describe(),
                "weights": self.limiter.stats(),
                "faults": self.faults.as_dict(),
                "malformed_sent": self.hub.malformed_sent,
                "hostile": {
                    "enabled": self.hostile_seed is not None,
                    "seed": self.hostile_seed,
                    "cuts": list(self.hub.cuts),
                },
                "listings": dict(self.market.listings),
                "symbol_states": self.symbol_states(),
                "archive": {
                    "url": self.archive_url,
                    "delay_minutes": self.config.archive_delay_minutes,
                    "builds": self.archive.builds,
                    "reused": self.archive.reused,
                    "downloads": self.archive.downloads,
                },
            }
        )

    # ---- connections --------------------------------------------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ip = (writer.get_extra_info("peername") or ("?",))[0]
        try:
            while True:
                try:
                    request = await wire.read_request(reader)
                except wire.BadRequest as exc:
                    writer.write(wire.http_response(400, payloads.error_body(-1102, str(exc)), keep_alive=False))
                    break
                if request is None:
                    break
                if request.is_websocket:
                    await self._websocket(request, reader, writer, ip)
                    return
                if request.path.startswith(archive.PREFIX):
                    await self.archive.serve(request, writer)  # another host on Binance: no weight, no REST fault
                else:
                    writer.write(await self._http(request, ip))
                if not request.keep_alive:
                    break
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # shutdown: on 3.11, re-raising here makes asyncio's stream callback log a spurious error
        finally:
            if not writer.transport.is_closing():
                writer.transport.close()

    async def _websocket(self, request: wire.Request, reader, writer, ip: str) -> None:
        if not self.connection_limiter.allow(ip, self.clock()):
            writer.write(
                wire.http_response(
                    429,
                    payloads.error_body(-1003, "Too many connection attempts: at most 300 per 5 minutes per IP."),
                    keep_alive=False,
                )
            )
            return
        requested = requested_streams(request)
        if requested is not None and len(set(requested[0])) > MAX_STREAMS:
            writer.write(
                wire.http_response(
                    400,
                    payloads.error_body(-1102, f"Too many streams: a connection can listen to at most {MAX_STREAMS}."),
                    keep_alive=False,
                )
            )
            return
        try:
            writer.write(wire.websocket_accept(request))
        except wire.BadRequest as exc:
            writer.write(wire.http_response(400, payloads.error_body(-1102, str(exc)), keep_alive=False))
            return
        await self.hub.serve(request, reader, writer, ip)

    async def _http(self, request: wire.Request, ip: str) -> bytes:
        if request.path.startswith("/_sim/"):
            status, body = self._control(request)
            return wire.http_response(status, body, keep_alive=request.keep_alive)
        if self.faults.rest_latency_ms:
            await asyncio.sleep(self.faults.rest_latency_ms / 1000)
        r = self.rest.handle(request.method, request.path, request.params, ip)
        return wire.http_response(r.status, r.body, r.headers, keep_alive=request.keep_alive)

    # ---- the control path ---------------------------------------------------------------------------------------
    def _control(self, request: wire.Request) -> tuple[int, bytes]:
        try:
            args = json.loads(request.body) if request.body else {}
            if not isinstance(args, dict):
                raise ValueError("the body must be a JSON object")
            result = self._control_route(request.method, request.path, request.params, args)
        except (ValueError, TypeError, KeyError) as exc:
            return 400, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
        if result is None:
            return 404, json.dumps({"error": f"unknown control path {request.method} {request.path}"}).encode()
        return 200, result if isinstance(result, bytes) else json.dumps(result).encode()

    def _control_route(self, method: str, path: str, params: dict, args: dict):
        if method == "GET" and path == "/_sim/state":
            return self.state()
        if method == "GET" and path == "/_sim/trades":
            symbol = params["symbol"]
            if symbol not in self.market.symbols:  # a symbol removed after its delisting keeps its ground truth
                raise KeyError(f"unknown symbol {symbol}")
            return payloads.rest_trades(self.trades_between(symbol, int(params["startTime"]), int(params["endTime"])))
        if method != "POST" or not path.startswith("/_sim/faults/"):
            return None
        name = path.removeprefix("/_sim/faults/")
        if name not in FAULTS:
            return None
        method, result_key = FAULTS[name]
        try:
            result = getattr(self, method)(**args)
        except TypeError as exc:  # an argument the fault does not take, or one it needs missing
            raise ValueError(f"fault {name}: {exc}") from None
        return {result_key: result} if result_key else (result or {"ok": True})
