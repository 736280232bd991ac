"""Ingest of Binance spot trades per minute, each minute with its completeness proof. No Dagster imports.

``completeness``: the proof for one minute;
``rest_backfill``: a range of whole minutes fetched over REST in one paging pass, every minute with its proof;
``archive_backfill``: the minutes of a complete day read from Binance's daily archive, every minute with its proof;
``stored_minutes``: a range stored (archive, then REST) and every stored minute verified.
"""
