"""Ingest of Binance spot trades per minute, each minute with its completeness proof. No Dagster imports.

``minutes``: minute partition keys <-> minute starts; ``completeness``: the proof for one minute;
``rest_backfill``: a range of whole minutes fetched over REST in one paging pass, every minute with its proof.
"""
