"""The analytics Dagster tests share the dbt tests' session data (one simulator, one lake written once)."""

from crypto_assets_tests.dbt.conftest import _STATE, hours, local_lake, moto_endpoint  # noqa: F401
