"""A throw-away PostgreSQL server from this machine's packages, for the tests and benches that need a real one.

``initdb`` makes a cluster (in a folder of the caller's, or as root in one of the postgres user's), ``pg_ctl``
starts it on a free port of 127.0.0.1 (its socket in the same folder, trust authentication, superuser ``dagster``) and
stops it on exit. The binaries are taken from PATH, else from Debian's ``/usr/lib/postgresql/<version>/bin`` (package
``postgresql``; ``make test`` installs it where it is missing). PostgreSQL refuses to run as root: as root, every
server command runs as the ``postgres`` user the package creates.

    with postgres_server(tmp_path / "pg") as pg:
        pg.create_database("dagster")
        env = pg.dagster_env("dagster")  # DAGSTER_PG_* for deploy/dagster.yaml
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from crypto_assets_tests.ports import free_port

USER = "dagster"
DEPLOY_INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"


def server_binary(name: str) -> str | None:
    """The path of ``initdb`` / ``pg_ctl``, or None when PostgreSQL is not installed."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def missing_reason() -> str | None:
    """Why no server can be started here (None when one can): what a test skips with."""
    for name in ("initdb", "pg_ctl"):
        if server_binary(name) is None:
            return f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)"
    if shutil.which("psql") is None:
        return "psql is not installed (Debian: apt-get install postgresql-client)"
    return None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]


@dataclass(frozen=True)
class PostgresServer:
    port: int
    host: str = "127.0.0.1"

    def psql(self, database: str, sql: str) -> str:
        """``sql`` run by psql as ``dagster``: its unaligned output, stripped."""
        out = subprocess.run(
            ["psql", "-h", self.host, "-p", str(self.port), "-U", USER, "-d", database, "-v", "ON_ERROR_STOP=1"]
            + ["-tAc", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def create_database(self, name: str) -> None:
        self.psql("postgres", f'create database "{name}"')

    def database_bytes(self, name: str) -> int:
        return int(self.psql(name, f"select pg_database_size('{name}')"))

    def instance_yaml(self, database: str, deploy_storages: bool = True) -> str:
        """A dagster.yaml storing in ``database`` here: ``deploy/dagster.yaml``'s three storages (its event log
        holding its connections), or with ``deploy_storages=False`` dagster-postgres's plain ``storage: postgres``."""
        db = {
            "hostname": self.host,
            "port": self.port,
            "username": USER,
            "password": "",
            "db_name": database,
            "scheme": "postgresql+psycopg2",
        }
        if not deploy_storages:
            return yaml.safe_dump({"storage": {"postgres": {"postgres_db": db}}})
        deploy = yaml.safe_load(DEPLOY_INSTANCE.read_text())
        names = ("run_storage", "event_log_storage", "schedule_storage")
        return yaml.safe_dump({name: {**deploy[name], "config": {"postgres_db": db}} for name in names})

    def dagster_env(self, database: str) -> dict[str, str]:
        """The variables ``deploy/dagster.yaml`` reads its storage from, pointing at ``database`` here."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": USER,
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": database,
        }


@contextmanager
def postgres_server(folder: Path) -> Iterator[PostgresServer]:
    """A fresh cluster running until the block ends; its log is ``folder/postgres.log`` (``folder`` is created).

    As root the cluster lives in a folder of its own under the system's temporary folder, owned by the postgres user,
    and its log is copied to ``folder`` when it stops: under the caller's folder (pytest's) the server could be cut
    off its data directory mid-run, since pytest resets its base folder to mode 0700 whenever another pytest session
    starts on the machine."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    folder.mkdir(parents=True, exist_ok=True)
    as_root = os.geteuid() == 0
    home = Path(tempfile.mkdtemp(prefix="crypto-assets-postgres-")) if as_root else folder
    if as_root:
        shutil.chown(home, "postgres")
    data, log, port = home / "data", home / "postgres.log", free_port()
    pg_ctl = server_binary("pg_ctl")
    try:
        subprocess.run(
            _as_server_user([server_binary("initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8"]),
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"]),
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{port}: {started.stderr.strip()}\n{tail}")
        try:
            yield PostgresServer(port)
        finally:
            subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
    finally:
        if as_root:
            if log.exists():
                shutil.copyfile(log, folder / "postgres.log")
            shutil.rmtree(home, ignore_errors=True)
