"""How assets downstream of the dbt models (and ``load_asset_value``) receive silver and gold tables: the IO manager
``warehouse_io_manager``, Dagster's own DuckDB integration (``dagster_duckdb.DuckDBIOManager``) with two changes:

- it only reads. dbt writes the tables; the dbt assets' outputs carry no value (None), which it accepts and ignores,
  and it opens the DuckDB file read-only, so it never holds the writer's lock dbt needs (DuckDB allows one writer or
  several readers per file; a read during a dbt build waits and retries, Dagster's backoff);
- its type handlers keep DuckDB's exact types: a ``pandas.DataFrame`` (the default) is Arrow-backed
  (``pd.ArrowDtype``), so ``decimal(38, 16)`` volumes and prices stay exact instead of becoming float64 as
  ``DuckDBPandasIOManager``'s ``fetchdf`` would make them; a ``pyarrow.Table`` comes straight from DuckDB's Arrow
  export.

An hourly model's input is the rows of the hours it depends on: the translator sets each model's ``partition_expr``
to its ``window_column`` (``hour_start``, ``minute_start``...), which the integration turns into a time-window
filter. ADR 0004 says why a subclass rather than ``DuckDBPandasIOManager`` as it is."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pandas as pd
import pyarrow as pa
from dagster import Failure, InputContext, OutputContext
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster._utils.backoff import backoff
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb.io_manager import DuckDbClient

WAREHOUSE_IO_MANAGER = "warehouse_io_manager"
WAREHOUSE_SCHEMA = "main"  # where dbt-duckdb builds the models


class _ReadOnlyClient(DuckDbClient):
    @staticmethod
    @contextmanager
    def connect(context, _) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = backoff(
            fn=duckdb.connect,
            retry_on=(RuntimeError, duckdb.IOException),
            kwargs={"database": context.resource_config["database"], "read_only": True},
            max_retries=10,
        )
        try:
            yield conn
        finally:
            conn.close()


class _ArrowTables(DbTypeHandler[pa.Table]):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pa.Table, connection) -> None:
        raise NotImplementedError  # never called: _DbtWrites refuses every value first

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pa.Table:
        return connection.execute(DuckDbClient.get_select_statement(table_slice)).to_arrow_table()

    @property
    def supported_types(self) -> Sequence[type]:
        return [pa.Table]


class _ExactDataFrames(DbTypeHandler[pd.DataFrame]):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection) -> None:
        raise NotImplementedError

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pd.DataFrame:
        table = connection.execute(DuckDbClient.get_select_statement(table_slice)).to_arrow_table()
        return table.to_pandas(types_mapper=pd.ArrowDtype)

    @property
    def supported_types(self) -> Sequence[type]:
        return [pd.DataFrame]


class _DbtWrites(DbIOManager):
    def handle_output(self, context: OutputContext, obj: object) -> None:
        if obj is not None:
            raise Failure(
                f"{context.asset_key.to_user_string()} is written by dbt, not through {WAREHOUSE_IO_MANAGER}: it "
                f"only reads the warehouse"
            )


class WarehouseIOManager(DuckDBIOManager):
    """Reads the dbt models' tables from the DuckDB warehouse (read-only) as Arrow-backed pandas DataFrames (the
    default) or pyarrow Tables, a partitioned model's input filtered to its partitions' time window."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_ExactDataFrames(), _ArrowTables()]

    @staticmethod
    def default_load_type() -> type:
        return pd.DataFrame

    def create_io_manager(self, context) -> DbIOManager:
        return _DbtWrites(
            db_client=_ReadOnlyClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="WarehouseIOManager",
        )
