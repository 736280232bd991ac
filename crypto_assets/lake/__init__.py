"""The trade lake: minute Parquet files of raw trades, in a local folder or on S3. No Dagster imports.

- ``paths``: the partition layout and the validation of symbols and minutes;
- ``schema``: the Arrow/Parquet schema and ``trades_to_table`` (exact decimals, sorted, de-duplicated);
- ``store``: ``LocalLake`` / ``S3Lake`` with atomic, idempotent ``write_minute``, and ``lake_from_url``.
"""

from crypto_assets.lake.paths import minute_file_path, validate_minute, validate_symbol
from crypto_assets.lake.schema import TRADE_SCHEMA, trades_to_table
from crypto_assets.lake.store import CorruptMinuteFile, Lake, LakeError, LocalLake, S3Lake, WriteResult, lake_from_url

__all__ = ["TRADE_SCHEMA", "CorruptMinuteFile", "Lake", "LakeError", "LocalLake", "S3Lake", "WriteResult", "lake_from_url",
           "minute_file_path", "trades_to_table", "validate_minute", "validate_symbol"]
