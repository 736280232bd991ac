"""`WarehouseResource`: what the dbt runs read and write (the lake, the DuckDB file, the symbols), as dbt vars, and
read-only queries of the built tables for the assets' metadata and for what the schedules wait for (`table_exists`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
from dagster import ConfigurableResource

from crypto_assets.settings import Settings

WINDOW_FORMAT = "%Y-%m-%d %H:%M:%S"


class WarehouseBusyError(RuntimeError):
    """Another process (a dbt run) holds the DuckDB file's write lock, so it cannot be read now."""


class LakeMissingError(RuntimeError):
    """The configured lake does not exist (the message names the path)."""


class WarehouseResource(ConfigurableResource):
    """The DuckDB file dbt builds, the lake it reads, and the symbols that must be complete in every hour."""

    lake_url: str
    aws_endpoint_url: str | None = None
    symbols: list[str]
    duckdb_path: str

    @classmethod
    def from_settings(cls, settings: Settings) -> WarehouseResource:
        return cls(
            lake_url=settings.lake_url,
            aws_endpoint_url=settings.aws_endpoint_url,
            symbols=list(settings.symbols),
            duckdb_path=settings.duckdb_path,
        )

    @property
    def dbt_target(self) -> str:
        """The profiles.yml output: `endpoint` passes aws_endpoint_url to s3fs, `dev` leaves it to the AWS chain."""
        return "endpoint" if self.aws_endpoint_url else "dev"

    def dbt_vars(self, window_start: datetime | None = None, window_end: datetime | None = None) -> dict[str, str]:
        values = {"lake_url": self.lake_url, "symbols": ",".join(self.symbols), "duckdb_path": self.duckdb_path}
        if self.aws_endpoint_url:
            values["aws_endpoint_url"] = self.aws_endpoint_url
        if window_start is not None and window_end is not None:
            values["window_start"] = window_start.strftime(WINDOW_FORMAT)
            values["window_end"] = window_end.strftime(WINDOW_FORMAT)
        return values

    def prepare(self) -> None:
        """Fail early and clearly on a missing local lake; create the DuckDB file's folder (DuckDB will not)."""
        if not self.lake_url.startswith("s3://"):
            raw = Path(self.lake_url) / "raw_trades"
            if not raw.is_dir():
                raise LakeMissingError(
                    f"the trade lake {self.lake_url} has no raw_trades folder ({raw} does not exist): check "
                    "CRYPTO_LAKE_URL, or materialize raw_trades/<symbol> partitions first"
                )
        Path(self.duckdb_path).parent.mkdir(parents=True, exist_ok=True)

    def table_exists(self, name: str) -> bool:
        """Whether the DuckDB file has the table ``name`` (False when the file itself does not exist yet). Raises
        WarehouseBusyError while a dbt run holds the file (DuckDB allows no reader beside another process's writer)."""
        if not Path(self.duckdb_path).exists():
            return False
        try:
            rows = self.query("select 1 from information_schema.tables where table_name = ? limit 1", [name])
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            raise WarehouseBusyError(f"the warehouse {self.duckdb_path} is held by another process: {exc}") from exc
        return bool(rows)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Rows of a read-only query against the DuckDB file (only while no dbt run holds it)."""
        with duckdb.connect(self.duckdb_path, read_only=True) as con:
            con.execute("set TimeZone = 'UTC'")
            return con.execute(sql, params or []).fetchall()

    def query_columns(self, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
        with duckdb.connect(self.duckdb_path, read_only=True) as con:
            con.execute("set TimeZone = 'UTC'")
            cursor = con.execute(sql, params or [])
            names = [d[0] for d in cursor.description]
            return names, cursor.fetchall()
