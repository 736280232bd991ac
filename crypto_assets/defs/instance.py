"""The production instance's event log storage (deploy/dagster.yaml): dagster-postgres's, holding its connections.

dagster-postgres opens a new PostgreSQL connection for every statement group outside the webserver (SQLAlchemy's
NullPool; only the webserver pools, through ``optimize_for_webserver``), and a new connection costs more than the
write: a check evaluation takes three or four, ~20 ms per recorded minute on this machine, ~2.4 ms over held ones
(bench/event_recording.py). This storage keeps a small pool in every process that writes events (daemon, code
server, run workers), checked before use and renewed hourly, and never shares one with a forked child. Everything
else is dagster-postgres's own: same tables, same configuration (``postgres_db`` / ``postgres_url``), so an
instance can switch between the two classes at any time. Why: docs/adr/0002-pooled-postgres-event-log.md.
"""

import os
from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

POOL_SIZE = 1  # the op's thread writes events one after the other
MAX_OVERFLOW = 4  # a few more for other threads (the stream's heartbeat, a sensor's evaluation) while one is busy
POOL_RECYCLE_S = 3600  # a held connection is renewed hourly (PostgreSQL or a proxy may drop idle ones)


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` over a small connection pool instead of a new connection per write."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._engine = create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            pool_recycle=POOL_RECYCLE_S,
            pool_pre_ping=True,
        )
        # A forked child (a step process started by fork) opens its own connections: a socket is never shared.
        os.register_at_fork(after_in_child=lambda: self._engine.dispose(close=False))

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "PooledPostgresEventLogStorage":
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
