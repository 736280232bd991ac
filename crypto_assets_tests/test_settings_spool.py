"""CRYPTO_SPOOL_DIR and CRYPTO_SPOOL_MAX_MB: where the live stream's minutes wait while the lake fails, how much."""

import pytest

from crypto_assets.settings import PROJECT_ROOT, Settings, SettingsError


def settings(**environ):
    return Settings.from_env(environ, dotenv_path=None)


def test_the_spool_lives_under_dagster_home_by_default(tmp_path):
    assert settings().spool_dir == str(PROJECT_ROOT / ".dagster_home" / "lake_spool")
    assert settings(DAGSTER_HOME=str(tmp_path)).spool_dir == str(tmp_path / "lake_spool")
    assert settings().spool_max_mb == 1024


def test_the_spool_folder_and_bound_can_be_set(tmp_path):
    s = settings(CRYPTO_SPOOL_DIR=str(tmp_path / "spool"), CRYPTO_SPOOL_MAX_MB=" 64 ", DAGSTER_HOME="/elsewhere")
    assert (s.spool_dir, s.spool_max_mb) == (str(tmp_path / "spool"), 64)
    assert settings(CRYPTO_SPOOL_DIR="var/spool").spool_dir == str(PROJECT_ROOT / "var" / "spool")


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("CRYPTO_SPOOL_DIR", "s3://bucket/spool", "must be a local path"),
        ("CRYPTO_SPOOL_MAX_MB", "0", "between 1 and"),
        ("CRYPTO_SPOOL_MAX_MB", "lots", "whole number of MB"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(name, value, message):
    with pytest.raises(SettingsError, match=message) as excinfo:
        settings(**{name: value})
    assert name in str(excinfo.value)
