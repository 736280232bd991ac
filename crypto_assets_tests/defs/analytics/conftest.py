import pytest

from crypto_assets_tests.defs.analytics.dev_instance import dev_instance


@pytest.fixture
def instance(tmp_path):
    """A fresh instance configured as `make dev` configures it (dev_instance.py)."""
    with dev_instance(tmp_path / "dagster_home") as instance:
        yield instance
