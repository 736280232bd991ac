"""Binance's public data archive (``https://data.binance.vision``) for the simulator's own history.

Served on the simulator's port, beside REST, so the archive's base URL is the simulator's REST URL:

    /data/spot/daily/trades/<SYM>/<SYM>-trades-YYYY-MM-DD.zip          (+ .CHECKSUM)
    /data/spot/daily/aggTrades/<SYM>/<SYM>-aggTrades-YYYY-MM-DD.zip    (+ .CHECKSUM)
    /data/spot/daily/klines/<SYM>/1m/<SYM>-1m-YYYY-MM-DD.zip           (+ .CHECKSUM)

As on Binance: each zip holds one CSV of the same name (no header row; ``True`` / ``False``; times in microseconds
for days from 2025-01-01 on, milliseconds before); the ``.CHECKSUM`` sibling is the ``sha256sum`` line
``<64 hex>  <zip name>`` without a trailing newline; downloads cost no REST weight (Binance serves them from another
host) and no REST fault (errors, 429 storms, latency) touches them; GET and HEAD, with single byte ranges.

The files are the market's ground truth (``SymbolMarket.trades_between``, ``aggs_between``, ``kline``): the same
trades with the same exact prices and quantities as over REST, the same klines as REST ``klines`` (an injected bad
value stays on REST and the stream). A day of a symbol is published once it has ended and ``delay_ms`` more has
passed (``SimulatorConfig.archive_delay_minutes``, default 0: a day is published at the next midnight); until then,
for a day that ends before the symbol's history starts (``--listed``, the simulator's origin), for an unknown symbol
and for any other path the answer is 404 (S3's ``NoSuchKey`` XML). The day holding the start of a symbol's history
holds its trades from that start on, as a listing day does on Binance.

A file is built once per (symbol, kind, day, truncation) into a cache folder, streamed in ten-minute chunks (no day
held in memory), in a worker thread (the event loop keeps serving the streams); later downloads are file sends. The
trades (or aggTrades) of a whole day build the day's klines in the same pass, while the market still holds the
seconds they generated.
A cache folder given to the archive (``SimulatorConfig.archive_dir``, ``--archive-cache-dir``) persists: every file
is named by a fingerprint of everything its rows are a function of (``Archive.recipe``: the symbol's configuration,
the market seed, the symbol's start of history, the hostile windows up to the day's end, kind, day, truncation, and
the source of the modules that generate and render the rows with numpy's version), with a ``.json`` beside it
holding that recipe, the rows and the sha256. A later archive (another process) with the same recipe reuses the
file once its sha256 is verified again; any other recipe builds its own file.
Faults (the ``archive_*`` state of ``faults.Faults``): a truncated day whose checksum matches, a download that fails
its checksum (a corrupted zip, or a CHECKSUM of other bytes) before the file is right again, a broken zip whose
checksum matches (cut off, or a byte of its data changed), a day held back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from binance_simulator import wire
from binance_simulator.endpoints import MINUTE_MS
from binance_simulator.faults import ARCHIVE_KINDS, Faults
from binance_simulator.market import UNITS, AggTrades, Kline, Market, SymbolMarket, Trades

log = logging.getLogger(__name__)

PREFIX = "/data/"  # every path under it is the archive's
KINDS = ARCHIVE_KINDS
DAY_MS = 86_400_000
MICROSECONDS_FROM_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: spot archive times are in µs from this day on
CHUNK_MS = 10 * MINUTE_MS  # trades are read and written ten minutes at a time
SEND_CHUNK = 1 << 20

_PATH = re.compile(
    r"/data/spot/daily/(?:"
    r"(?P<kind>trades|aggTrades)/(?P<sym>[A-Z0-9]{1,20})/(?P=sym)-(?P=kind)"
    r"|klines/(?P<ksym>[A-Z0-9]{1,20})/1m/(?P=ksym)-1m"
    r")-(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})\.zip(?P<checksum>\.CHECKSUM)?"
)


def time_factor(day_start_ms: int) -> int:
    """What a millisecond time is multiplied by in the archive file of the day starting at ``day_start_ms``: 1000
    (microseconds, 16 digits) for days from 2025-01-01 on, 1 (milliseconds, 13 digits) before."""
    return 1000 if day_start_ms >= MICROSECONDS_FROM_MS else 1


def day_start_ms(day: str) -> int:
    """'2025-01-02' -> the day's first millisecond (UTC); ValueError for anything but a real YYYY-MM-DD date."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", day or ""):
        raise ValueError(f"day must be YYYY-MM-DD, got {day!r}")
    date = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    return int(date.timestamp()) * 1000


def day_of(ms: int) -> str:
    """The UTC day ('YYYY-MM-DD') holding the millisecond ``ms``."""
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class ArchiveFile:
    """One daily file of the archive (``checksum``: its ``.CHECKSUM`` sibling)."""

    kind: str  # trades, aggTrades or klines (1m)
    symbol: str
    day: str  # YYYY-MM-DD
    checksum: bool = False

    @property
    def stem(self) -> str:
        return f"{self.symbol}-{'1m' if self.kind == 'klines' else self.kind}-{self.day}"

    @property
    def zip_name(self) -> str:
        return self.stem + ".zip"

    @property
    def csv_name(self) -> str:
        return self.stem + ".csv"

    @property
    def path(self) -> str:
        folder = f"klines/{self.symbol}/1m" if self.kind == "klines" else f"{self.kind}/{self.symbol}"
        return f"/data/spot/daily/{folder}/{self.zip_name}" + (".CHECKSUM" if self.checksum else "")

    @property
    def start_ms(self) -> int:
        return day_start_ms(self.day)


def parse_path(path: str) -> ArchiveFile | None:
    """The archive file at ``path``, or None when the path is none of the archive's (or its date is no date)."""
    m = _PATH.fullmatch(path)
    if m is None:
        return None
    try:
        day_start_ms(m["day"])
    except ValueError:
        return None
    kind = m["kind"] or "klines"
    return ArchiveFile(kind, m["sym"] or m["ksym"], m["day"], bool(m["checksum"]))


@dataclass(frozen=True)
class BuiltFile:
    """A zip in the cache folder, and the sha256 its CHECKSUM line carries."""

    path: Path
    size: int
    sha256: str
    rows: int


# ---- the CSV rows ---------------------------------------------------------------------------------------------
_BOOL = {True: b"True", False: b"False"}
_TRADE_ROW = b"%d,%d.%08d,%d.%08d,%d.%08d,%d,%s,True\n"
_AGG_ROW = b"%d,%d.%08d,%d.%08d,%d,%d,%d,%s,True\n"
_KLINE_ROW = b"%d,%d.%08d,%d.%08d,%d.%08d,%d.%08d,%d.%08d,%d,%d.%08d,%d,%d.%08d,%d.%08d,0\n"


def trade_rows(t: Trades, factor: int) -> bytes:
    """Archive rows ``id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch``; quoteQty as REST renders it."""
    u = UNITS
    return b"".join(
        _TRADE_ROW % (i, p // u, p % u, q // u, q % u, x // u, x % u, ts * factor, _BOOL[m])
        for i, p, q, x, ts, m in zip(
            t.id.tolist(), t.price.tolist(), t.qty.tolist(), t.quote_qty(), t.time.tolist(), t.is_buyer_maker.tolist()
        )
    )


def agg_rows(a: AggTrades, factor: int) -> bytes:
    """Archive rows ``aggTradeId,price,qty,firstTradeId,lastTradeId,time,isBuyerMaker,isBestMatch``."""
    u = UNITS
    return b"".join(
        _AGG_ROW % (i, p // u, p % u, q // u, q % u, f, last, ts * factor, _BOOL[m])
        for i, p, q, f, last, ts, m in zip(
            a.agg_id.tolist(),
            a.price.tolist(),
            a.qty.tolist(),
            a.first_id.tolist(),
            a.last_id.tolist(),
            a.time.tolist(),
            a.is_buyer_maker.tolist(),
        )
    )


def kline_row(k: Kline, factor: int) -> bytes:
    """The 12 REST kline columns; open and close time in the day's unit (a µs close time ends in 999999)."""
    u = UNITS
    return _KLINE_ROW % (
        k.open_time * factor,
        *divmod(k.open, u),
        *divmod(k.high, u),
        *divmod(k.low, u),
        *divmod(k.close, u),
        *divmod(k.volume, u),
        (k.close_time + 1) * factor - 1,
        *divmod(k.quote_volume, u),
        k.count,
        *divmod(k.taker_buy_volume, u),
        *divmod(k.taker_buy_quote_volume, u),
    )


def csv_chunks(
    market: SymbolMarket, kind: str, day_start: int, end_ms: int, factor: int
) -> Iterator[tuple[bytes, int]]:
    """(CSV bytes, rows) of ``kind`` for [day_start, end_ms) (nothing before the symbol's history), one chunk per
    ten minutes from ``day_start`` (empty chunks included, so that the chunks of two kinds go in step): only one
    chunk of trades is held as arrays at once."""
    origin = market.origin_ms
    for chunk in range(day_start, end_ms, CHUNK_MS):
        start, stop = max(chunk, origin), min(chunk + CHUNK_MS, end_ms)
        if kind == "klines":
            opens = range(-(-start // MINUTE_MS) * MINUTE_MS, stop, MINUTE_MS)  # REST's first: the origin minute
            # The day's per-second statistics are not kept: a process serving weeks of days would hoard them.
            rows = b"".join(kline_row(market.kline(o, MINUTE_MS, keep_stats=False), factor) for o in opens)
            yield rows, len(opens)
        elif stop <= start:
            yield b"", 0
        elif kind == "trades":
            t = market.trades_between(start, stop)
            yield trade_rows(t, factor), len(t)
        else:
            a = market.aggs_between(start, stop, 2**62)
            yield agg_rows(a, factor), len(a)


def write_zips(
    targets: list[tuple[Path, ArchiveFile, Iterator[tuple[bytes, int]]]], stop: threading.Event, zip64: bool = False
) -> list[int]:
    """Write the zip of each ``(dest, file, chunks)`` (one deflated CSV member) in one pass, a chunk of each in
    turn (the market's cache of recent seconds then serves the second file); returns the rows of each. The bytes
    are a function of the rows alone (a fixed member date: the day after), so a rebuilt file has the same checksum.
    ``zip64``: a CSV that may pass 2 GiB (a fast symbol's day) needs the ZIP64 extension, written before its size is
    known."""
    with ExitStack() as stack:
        outs = []
        for dest, file, _ in targets:
            publish = dt.datetime.strptime(file.day, "%Y-%m-%d") + dt.timedelta(days=1)
            info = zipfile.ZipInfo(file.csv_name, date_time=publish.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf = stack.enter_context(zipfile.ZipFile(dest, "w"))
            outs.append(stack.enter_context(zf.open(info, "w", force_zip64=zip64 and file.kind != "klines")))
        rows = [0] * len(targets)
        for parts in zip(*(chunks for _, _, chunks in targets), strict=True):
            if stop.is_set():
                raise RuntimeError("the simulator stopped while building " + targets[0][1].zip_name)
            for i, (data, n) in enumerate(parts):
                outs[i].write(data)
                rows[i] += n
    return rows


@functools.cache
def code_digest() -> str:
    """sha256 of what, besides the market's state, decides a file's rows: the source of the modules that generate
    and render them, and numpy's version (its generators draw the market)."""
    from binance_simulator import hostile, market

    h = hashlib.sha256(np.__version__.encode())
    for module in (market, hostile):
        h.update(Path(module.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(SEND_CHUNK):
            h.update(block)
    return h.hexdigest()


class Archive:
    """The daily archive of a ``Market``: publication, the cache of built files, the faults, the HTTP answers."""

    def __init__(
        self,
        market: Market,
        faults: Faults,
        clock: Callable[[], int],
        delay_ms: int = 0,
        cache_dir: str | Path | None = None,
    ):
        if delay_ms < 0:
            raise ValueError(f"the archive's publication delay must be >= 0, got {delay_ms} ms")
        self.market = market
        self.faults = faults
        self.clock = clock
        self.delay_ms = delay_ms
        self._given_dir = Path(cache_dir) if cache_dir else None
        self._own_dir: str | None = None
        self._lock = threading.Lock()
        self._built: dict[tuple, BuiltFile] = {}
        self._building: dict[tuple, asyncio.Future] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self.builds = 0  # files built (a download of a cached file builds nothing)
        self.reused = 0  # files found in the cache folder, built by an earlier archive with the same recipe
        self.downloads = 0  # GETs answered with a file (zip or CHECKSUM)

    # ---- the cache folder -----------------------------------------------------------------------------------------
    @property
    def cache_dir(self) -> Path:
        with self._lock:
            if self._given_dir is not None:
                self._given_dir.mkdir(parents=True, exist_ok=True)
                return self._given_dir
            if self._own_dir is None:
                self._own_dir = tempfile.mkdtemp(prefix="binance-sim-archive-")
            return Path(self._own_dir)

    def close(self) -> None:
        """Stop building, and remove the cache folder if the archive made it."""
        self._stop.set()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    # ---- what is published ----------------------------------------------------------------------------------------
    def why_not_published(self, file: ArchiveFile, now_ms: int) -> str | None:
        """None when ``file`` is published at ``now_ms``; else why it answers 404."""
        if file.symbol not in self.market:
            return f"unknown symbol {file.symbol}"
        start = file.start_ms
        if start + DAY_MS <= self.market[file.symbol].origin_ms:
            return f"{file.symbol} has no history on {file.day}"
        if now_ms < start + DAY_MS + self.delay_ms:
            return f"{file.day} is not published yet"
        if self.faults.archive_held_back(file.symbol, file.day):
            return f"{file.day} of {file.symbol} is held back (archive_unpublished)"
        return None

    def _key(self, file: ArchiveFile) -> tuple:
        held = self.faults.archive_truncated_ms(file.symbol, file.kind, file.day)  # ms of the day the file holds
        return (file.symbol, file.kind, file.day, file.start_ms + min(held, DAY_MS))

    # ---- building -------------------------------------------------------------------------------------------------
    def build(self, symbol: str, kind: str, day: str) -> BuiltFile:
        """The zip of ``kind`` for ``symbol`` and ``day`` as it is served now (with a truncation fault applied),
        built on first use. Works with or without a running server; publication is not checked."""
        file = ArchiveFile(kind, symbol, day)
        if kind not in KINDS:
            raise ValueError(f"unknown archive kind {kind!r}; expected one of {KINDS}")
        if symbol not in self.market:
            raise KeyError(f"unknown symbol {symbol}")
        return self._build_key(self._key(file))

    def _build_key(self, key: tuple) -> BuiltFile:
        built = self._built.get(key)
        if built is not None and built.path.exists():
            return built
        return self._build_keys(self._companions(key))[key]

    # ---- the persistent cache -------------------------------------------------------------------------------------
    def recipe(self, key: tuple) -> dict:
        """Everything the rows of the file of ``key`` are a function of. The hostile windows count up to the day's
        end (they change only seconds not generated yet, so those of a day already built stay as they were)."""
        symbol, kind, day, end_ms = key
        m = self.market[symbol]
        day_end_s = (day_start_ms(day) + DAY_MS) // 1000
        windows = [[w.start_s, min(w.end_s, day_end_s), w.seed] for w in m.hostile.windows if w.start_s < day_end_s]
        return {
            "kind": kind,
            "symbol": symbol,
            "day": day,
            "end_ms": end_ms,
            "config": dataclasses.asdict(m.cfg),
            "seed": m.seed,
            "origin_ms": m.origin_ms,
            "hostile_windows": windows,
            "code": code_digest(),
        }

    def _cache_path(self, key: tuple, recipe: dict) -> tuple[Path, str]:
        """(zip path, fingerprint) of ``key`` built from ``recipe``."""
        symbol, kind, day, _ = key
        fingerprint = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        stem = ArchiveFile(kind, symbol, day).stem
        return self.cache_dir / symbol / kind / f"{stem}.{fingerprint[:20]}.zip", fingerprint

    def _from_disk(self, key: tuple) -> BuiltFile | None:
        """The file of ``key`` an earlier archive built with the same recipe, if it is there whole (its size and
        sha256 as recorded); else None."""
        path, fingerprint = self._cache_path(key, self.recipe(key))
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            size = path.stat().st_size
        except (OSError, ValueError):
            return None
        if meta.get("fingerprint") != fingerprint or meta.get("size") != size or sha256_of(path) != meta.get("sha256"):
            log.warning("archive cache: %s does not match its record; building it again", path)
            return None
        return BuiltFile(path, size, meta["sha256"], int(meta["rows"]))

    def _companions(self, key: tuple) -> list[tuple]:
        """``key``, and with the trades (or aggTrades) of a whole day the day's klines when not built yet: a client
        reads both, and the second costs little while the market still holds the seconds the first generated."""
        symbol, kind, day, end_ms = key
        klines = (symbol, "klines", day, end_ms)
        if (
            kind != "klines"
            and end_ms == day_start_ms(day) + DAY_MS
            and self._key(ArchiveFile("klines", symbol, day)) == klines
        ):
            if klines not in self._built and klines not in self._building:
                return [key, klines]
        return [key]

    def _build_keys(self, keys: list[tuple]) -> dict[tuple, BuiltFile]:
        """The files of ``keys`` (one symbol and day): those an earlier archive left in the cache folder as they are,
        the others built in one pass."""
        done = {}
        for key in keys:
            found = self._from_disk(key)
            if found is not None:
                done[key] = self._built[key] = found
                self.reused += 1
        keys = [k for k in keys if k not in done]
        if not keys:
            return done
        symbol, _, day, _ = keys[0]
        start = day_start_ms(day)
        market = self.market[symbol]
        targets = []
        for _, kind, _, end_ms in keys:
            file = ArchiveFile(kind, symbol, day)
            folder = self.cache_dir / symbol / kind
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f"{file.stem}.{os.getpid()}.{threading.get_ident()}.part"
            targets.append((partial, file, csv_chunks(market, kind, start, end_ms, time_factor(start))))
        try:
            rows = write_zips(targets, self._stop, zip64=market.cfg.trades_per_second >= 50)
            for key, (partial, _, _), n in zip(keys, targets, rows, strict=True):
                recipe = self.recipe(key)  # taken after the build: the hostile windows that made the file
                final, fingerprint = self._cache_path(key, recipe)
                built = BuiltFile(final, partial.stat().st_size, sha256_of(partial), n)
                os.replace(partial, final)
                record = {"fingerprint": fingerprint, "size": built.size, "sha256": built.sha256, "rows": n}
                note = partial.with_name(partial.name + ".json")
                note.write_text(json.dumps({**record, "recipe": recipe}, indent=1, sort_keys=True))
                os.replace(note, final.with_suffix(".json"))
                done[key] = self._built[key] = built
                self.builds += 1
        finally:
            for partial, _, _ in targets:
                partial.unlink(missing_ok=True)
                partial.with_name(partial.name + ".json").unlink(missing_ok=True)
        return done

    async def _ensure_built(self, key: tuple) -> BuiltFile:
        """The built file of ``key``, built in a worker thread once however many downloads wait for it."""
        built = self._built.get(key)
        if built is not None:
            return built
        pending = self._building.get(key)
        if pending is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="archive-build")
            keys = self._companions(key)
            pending = asyncio.get_running_loop().run_in_executor(self._executor, self._build_keys, keys)
            for k in keys:
                self._building[k] = pending
            pending.add_done_callback(lambda _: [self._building.pop(k, None) for k in keys])
        return (await asyncio.shield(pending))[key]

    # ---- HTTP -----------------------------------------------------------------------------------------------------
    async def serve(self, request: wire.Request, writer: asyncio.StreamWriter) -> None:
        """Answer one request for a path under ``/data/``."""
        keep_alive = request.keep_alive
        head_only = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
            body = _s3_error("MethodNotAllowed", "The specified method is not allowed against this resource.")
            writer.write(wire.http_response(405, body, {"Allow": "GET, HEAD"}, _XML, keep_alive))
            return
        file = parse_path(request.path)
        if file is None or self.why_not_published(file, self.clock()) is not None:
            body = _s3_error("NoSuchKey", "The specified key does not exist.", request.path.lstrip("/"))
            writer.write(_head_or_full(404, body, {}, _XML, keep_alive, head_only))
            return
        try:
            built = await self._ensure_built(self._key(file))
        except Exception as exc:  # noqa: BLE001 - any failed build answers 500 and is logged; the server goes on
            log.exception("building %s failed", file.zip_name)
            body = _s3_error("InternalError", f"{type(exc).__name__}: {exc}")
            writer.write(_head_or_full(500, body, {}, _XML, keep_alive, head_only))
            return
        # A broken publication (archive_broken): the zip cut off halfway, or one byte of its data changed; its
        # CHECKSUM is that of the broken bytes.
        broken = self.faults.archive_break(file.symbol, file.kind, file.day)
        size = built.size // 2 if broken == "cut" else built.size
        flip_at = built.size // 2 if broken == "flip" else -1
        if file.checksum:
            digest = built.sha256 if broken is None else _sha256_of(built.path, size, flip_at)
            if not head_only and self.faults.take_archive_corruption(file.symbol, file.kind, file.day, "checksum"):
                digest = hashlib.sha256(b"other bytes:" + digest.encode()).hexdigest()
            content = f"{digest}  {file.zip_name}".encode()
            await self._send(request, writer, len(content), "binary/octet-stream", lambda a, b: [content[a:b]])
            return
        corrupt_at = -1
        if not head_only and self.faults.take_archive_corruption(file.symbol, file.kind, file.day, "zip"):
            # one byte flipped in the deflated data: the sha256 and the CRC both fail (the byte after a "flip"
            # break's, so that the two faults together do not flip one byte back)
            corrupt_at = built.size // 2 + 1

        def parts(start: int, end: int) -> Iterator[bytes]:
            return _read_flipped(built.path, start, end, (flip_at, corrupt_at))

        await self._send(request, writer, size, "application/zip", parts)

    async def _send(self, request: wire.Request, writer: asyncio.StreamWriter, size: int, content_type: str, parts):
        """The whole body, or the one byte range asked for (206), or 416; HEAD gets the head alone."""
        keep_alive = request.keep_alive
        headers = {"Accept-Ranges": "bytes"}
        status, start, end = 200, 0, size
        asked = request.headers.get("range")
        if asked:
            span = byte_range(asked, size)
            if span is None:
                headers["Content-Range"] = f"bytes */{size}"
                writer.write(wire.http_response(416, b"", headers, content_type, keep_alive))
                return
            status, (start, end) = 206, span
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        writer.write(wire.http_head(status, end - start, headers, content_type, keep_alive))
        if request.method == "HEAD":
            return
        self.downloads += 1
        for block in parts(start, end):
            writer.write(block)
            await writer.drain()


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range as [start, end), or None when unsatisfiable."""
    m = re.fullmatch(r"\s*bytes=([0-9]*)-([0-9]*)\s*", header)
    if m is None or not (m[1] or m[2]):
        return None
    if not m[1]:
        n = int(m[2])
        return (max(size - n, 0), size) if n > 0 and size > 0 else None
    start = int(m[1])
    end = min(int(m[2]) + 1, size) if m[2] else size
    return (start, end) if start < end else None


_XML = "application/xml"


def _s3_error(code: str, message: str, key: str | None = None) -> bytes:
    key_part = f"<Key>{key}</Key>" if key is not None else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>{key_part}'
        "</Error>"
    ).encode()


def _head_or_full(status, body, headers, content_type, keep_alive, head_only) -> bytes:
    if head_only:
        return wire.http_head(status, len(body), headers, content_type, keep_alive)
    return wire.http_response(status, body, headers, content_type, keep_alive)


def _read_flipped(path: Path, start: int, end: int, flips: tuple[int, ...]) -> Iterator[bytes]:
    """Bytes [start, end) of the file at ``path`` in blocks, each byte at an offset of ``flips`` inverted."""
    with open(path, "rb") as f:
        f.seek(start)
        at = start
        while at < end:
            block = f.read(min(SEND_CHUNK, end - at))
            if not block:
                return
            for offset in flips:
                if at <= offset < at + len(block):
                    i = offset - at
                    block = block[:i] + bytes((block[i] ^ 0xFF,)) + block[i + 1 :]
            yield block
            at += len(block)


def _sha256_of(path: Path, size: int, flip_at: int) -> str:
    """The sha256 of the first ``size`` bytes of the file at ``path``, the byte at ``flip_at`` inverted."""
    digest = hashlib.sha256()
    for block in _read_flipped(path, 0, size, (flip_at,)):
        digest.update(block)
    return digest.hexdigest()
