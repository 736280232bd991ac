"""The trade lake: minute Parquet files of raw trades, in a local folder or on S3. No Dagster imports.

- ``paths``: the partition layout and the validation of symbols and minutes;
- ``schema``: the Arrow/Parquet schema and ``trades_to_table`` (exact decimals, sorted, de-duplicated);
- ``store``: ``LocalLake`` / ``S3Lake`` with atomic, idempotent ``write_minute``; ``lake_from_url``, the one way to
  build a lake from ``CRYPTO_LAKE_URL`` (with ``s3_client``, the one S3 client configuration).
"""

from crypto_assets.lake.paths import minute_file_path, validate_minute, validate_symbol
from crypto_assets.lake.schema import TRADE_SCHEMA, trades_to_table
from crypto_assets.lake.store import (
    CorruptMinuteFile,
    Lake,
    LakeError,
    LocalLake,
    S3Lake,
    WriteResult,
    lake_from_url,
    normalize_lake_url,
    s3_client,
)

__all__ = [
    "TRADE_SCHEMA",
    "CorruptMinuteFile",
    "Lake",
    "LakeError",
    "LocalLake",
    "S3Lake",
    "WriteResult",
    "lake_from_url",
    "minute_file_path",
    "normalize_lake_url",
    "s3_client",
    "trades_to_table",
    "validate_minute",
    "validate_symbol",
]
