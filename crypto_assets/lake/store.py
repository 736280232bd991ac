"""Where the lake's minute files are kept: ``LocalLake`` (a folder) and ``S3Lake`` (a bucket and prefix).

``Lake.write_minute`` is the only way in, and it is
- atomic: the new file appears whole or not at all (local: temp file in the same folder, fsync, ``os.replace``;
  S3: one ``put_object`` of the whole file). A failing write leaves the previous file as it was;
- idempotent: the trades already in the minute's file are merged with the new ones and de-duplicated by trade_id,
  so writing a minute twice (or overlapping parts of it) holds each trade once;
- strict: trades of another symbol, or with a trade_time outside the minute the file is named for, are refused
  with ValueError before anything is written (the lake's own invariant; whether a minute is complete is
  ``ingest.completeness``'s question, not the lake's).

It is not a lock: two processes writing the same minute at the same moment may lose one of the two merges (the
last ``replace``/``put`` wins). One writer per symbol and minute is the contract.

An unreachable lake (unwritable folder, bad endpoint, missing bucket, denied access) raises ``LakeError`` naming
the path or URL. Credentials for S3 come from boto3's usual chain (environment, ``~/.aws``, instance role).
"""

from __future__ import annotations

import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa

from crypto_assets.exchange.models import Trade
from crypto_assets.lake.paths import minute_file_path
from crypto_assets.lake.schema import normalize, parquet_to_table, table_to_parquet, trades_to_table
from crypto_assets.minutes import MINUTE_MS

STATE_FOLDER = "_state"  # the project's small state documents, beside raw_trades/


class LakeError(RuntimeError):
    """The lake could not be read or written (the message names the path or URL and the cause)."""


class CorruptMinuteFile(LakeError):
    """One minute's file is in the lake but is not a valid minute file: that minute is stuck until the file is
    repaired or removed, while the lake itself answers."""


@dataclass(frozen=True)
class WriteResult:
    path: str  # the file's full path or s3:// URL
    rows: int  # trades in the file after the merge
    bytes: int  # size of the file written
    first_trade_id: int | None  # None for a minute without trades
    last_trade_id: int | None


class Lake(ABC):
    """A lake of minute files. Subclasses only move whole files (bytes) by key; the rules live here."""

    url: str

    # ---- backend primitives ----
    @abstractmethod
    def location(self, key: str) -> str:
        """The full path or URL of ``key`` (for results and error messages)."""

    @abstractmethod
    def _read_bytes(self, key: str) -> bytes | None:
        """The file's bytes, None if there is no such file."""

    @abstractmethod
    def _write_bytes(self, key: str, data: bytes) -> None:
        """Replace the file atomically with ``data``."""

    @abstractmethod
    def _has(self, key: str) -> bool: ...

    # ---- public API ----
    def read_state(self, name: str) -> bytes | None:
        """A small state document the project keeps beside the trades (``_state/<name>``, e.g. the resolved symbol
        universe), None if there is none. Never read as trades: the minute files live under ``raw_trades/``."""
        return self._read_bytes(f"{STATE_FOLDER}/{name}")

    def write_state(self, name: str, data: bytes) -> str:
        """Replace the state document ``name`` atomically; returns its location."""
        self._write_bytes(f"{STATE_FOLDER}/{name}", data)
        return self.location(f"{STATE_FOLDER}/{name}")

    def path_of(self, symbol: str, minute_start_ms: int) -> str:
        return self.location(minute_file_path(symbol, minute_start_ms))

    def exists(self, symbol: str, minute_start_ms: int) -> bool:
        return self._has(minute_file_path(symbol, minute_start_ms))

    def read_minute(self, symbol: str, minute_start_ms: int) -> pa.Table | None:
        """The minute's trades (``TRADE_SCHEMA``, sorted by trade_id), None if the minute was never written."""
        key = minute_file_path(symbol, minute_start_ms)
        data = self._read_bytes(key)
        if data is None:
            return None
        try:
            return parquet_to_table(data)
        except (pa.ArrowException, OSError) as exc:
            raise CorruptMinuteFile(f"cannot read {self.location(key)}: not a valid minute file ({exc})") from exc

    def write_minute(self, symbol: str, minute_start_ms: int, trades: Sequence[Trade]) -> WriteResult:
        """Merge ``trades`` into the minute's file (creating it, even empty for a minute without trades)."""
        key = minute_file_path(symbol, minute_start_ms)  # validates symbol and minute
        for trade in trades:
            if trade.symbol != symbol:
                raise ValueError(
                    f"trade #{trade.trade_id} is for {trade.symbol!r}, not {symbol!r}: refusing to write "
                    f"{self.location(key)}"
                )
        return self.write_table(symbol, minute_start_ms, trades_to_table(trades))

    def write_table(self, symbol: str, minute_start_ms: int, new: pa.Table) -> WriteResult:
        """``write_minute`` for trades already in a ``TRADE_SCHEMA`` table (``schema.columns_to_table``): merged
        into the minute's file; a trade outside the minute is refused (ValueError)."""
        key = minute_file_path(symbol, minute_start_ms)  # validates symbol and minute
        if new.num_rows:
            times = new.column("trade_time").cast(pa.int64()).to_numpy()
            outside = np.nonzero((times < minute_start_ms) | (times >= minute_start_ms + MINUTE_MS))[0]
            if outside.size:
                i = int(outside[0])
                raise ValueError(
                    f"trade {symbol} #{new.column('trade_id')[i].as_py()} has trade_time {int(times[i])}, outside the "
                    f"minute [{minute_start_ms}, {minute_start_ms + MINUTE_MS}): refusing to write "
                    f"{self.location(key)}"
                )
        existing = self.read_minute(symbol, minute_start_ms)
        merged = new if existing is None else normalize(pa.concat_tables([existing, new]))
        data = table_to_parquet(merged, {"symbol": symbol, "minute_start_ms": str(minute_start_ms)})
        self._write_bytes(key, data)
        ids = merged.column("trade_id")
        return WriteResult(
            path=self.location(key),
            rows=merged.num_rows,
            bytes=len(data),
            first_trade_id=ids[0].as_py() if merged.num_rows else None,
            last_trade_id=ids[-1].as_py() if merged.num_rows else None,
        )


class LocalLake(Lake):
    """Minute files under a local folder (created on first write)."""

    def __init__(self, root_path: str | os.PathLike[str]):
        self.root = Path(root_path).expanduser().absolute()
        self.url = str(self.root)

    def __repr__(self) -> str:
        return f"LocalLake({self.url!r})"

    def location(self, key: str) -> str:
        return str(self.root.joinpath(*key.split("/")))

    def _read_bytes(self, key: str) -> bytes | None:
        path = self.location(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LakeError(f"cannot read {path} in lake {self.url}: {exc}") from exc

    def _has(self, key: str) -> bool:
        return os.path.isfile(self.location(key))

    def _write_bytes(self, key: str, data: bytes) -> None:
        path = Path(self.location(key))
        tmp_name = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
            _fsync_dir(path.parent)
        except OSError as exc:
            raise LakeError(f"cannot write {path} in lake {self.url}: {exc}") from exc
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class S3Lake(Lake):
    """Minute files under ``s3://bucket/prefix``. ``client`` may be injected (any boto3 S3 client); otherwise one
    is created here for ``endpoint_url`` (None: AWS itself), with credentials from boto3's usual chain."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client=None):
        if not bucket:
            raise ValueError("S3Lake needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client if client is not None else s3_client(endpoint_url)

    def __repr__(self) -> str:
        return f"S3Lake({self.url!r}, endpoint_url={self.endpoint_url!r})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _where(self) -> str:
        return f" (endpoint {self.endpoint_url})" if self.endpoint_url else ""

    def _error(self, action: str, key: str, exc: Exception) -> LakeError:
        return LakeError(f"cannot {action} {self.location(key)}{self._where()}: {exc}")

    def _read_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error("read", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("read", key, exc) from exc

    def _has(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                # a missing bucket answers 404 too: tell the two apart
                self._check_bucket(key)
                return False
            raise self._error("check", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("check", key, exc) from exc

    def _check_bucket(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("check", key, exc) from exc

    def _write_bytes(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType="application/vnd.apache.parquet"
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("write", key, exc) from exc


def normalize_lake_url(value: str, relative_to: Path | None = None) -> str:
    """``s3://bucket[/prefix]`` -> ``s3://bucket/prefix`` without a trailing slash; a local path or ``file://`` URL ->
    an absolute path (a relative path is taken from ``relative_to``, else the working directory). Anything else
    raises ValueError saying what a lake URL looks like."""
    if value.lower().startswith("s3://"):
        parts = urlsplit(value)
        if not parts.netloc:
            raise ValueError(f"{value!r} has no bucket; expected s3://bucket/prefix")
        return f"s3://{parts.netloc}{parts.path}".rstrip("/")
    if value.lower().startswith("file://"):
        parts = urlsplit(value)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{value!r}: a file:// URL must hold an absolute path")
        return str(Path(parts.path))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        raise ValueError(f"{value!r} uses an unsupported scheme; expected a local path or s3://bucket/prefix")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else ((relative_to or Path.cwd()) / path).resolve())


def s3_client(endpoint_url: str | None = None):
    """The lake's one S3 client configuration (every process that writes or reads the lake uses it): boto3's usual
    credential chain, ``endpoint_url`` for S3-compatible stores (None: AWS itself), short connect timeout, three
    attempts."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}),
    )


def lake_from_url(url: str, endpoint_url: str | None = None) -> Lake:
    """The lake at ``url``: ``s3://bucket[/prefix]`` (with ``endpoint_url``, e.g. AWS_ENDPOINT_URL) or a local
    path / ``file://`` URL (as ``CRYPTO_LAKE_URL`` accepts them). The one way the capture process and the Dagster
    resource build their lake."""
    normalized = normalize_lake_url(url)
    if normalized.startswith("s3://"):
        bucket, _, prefix = normalized[len("s3://") :].partition("/")
        return S3Lake(bucket, prefix, endpoint_url=endpoint_url)
    return LocalLake(normalized)
