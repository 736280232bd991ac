"""How many trades a second ``BinanceRestClient.trades_between`` fetches under Binance's default weight limit.

The simulator runs as its own process with one symbol trading at 5000 trades/s and 30 minutes of history, so data
is never the limit: the weight budget is. One client calls ``trades_between`` over consecutive windows (10 s each
by default, ~50,000 trades) from the start of the history for ``--seconds`` of wall time. historicalTrades moves
1000 trades per 25 weight, so 6000 weight a minute caps one IP at 4,000 trades/s; the client spends at most 95 %
of the limit. Goal: >= 90 % of 4,000/s, and no 418.

The weight is spent in a burst at the start of each exchange minute, so over a short run the wall-clock rate
depends on where in the minute the run started (a 150 s run spans two or three minutes' budgets). The headline
figure therefore counts the trades of the exchange minutes that lie entirely within the run; the wall-clock rate
is printed too.

    .venv/bin/python bench/rest_trades_between.py [--seconds 150] [--window-seconds 10] [--rate 5000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections import Counter

from binance_simulator.process import SimulatorProcess
from crypto_assets.exchange.rest import BinanceRestClient

SYMBOL = "BTCUSDT"
MINUTE_MS = 60_000
CEILING_TRADES_PER_S = 4000  # 6000 weight / 25 per 1000 trades / 60 s


class CountingClient(BinanceRestClient):
    """Logs every historicalTrades page: (exchange time when it was sent, trades in it)."""

    pages: list[tuple[int, int]]

    def historical_trades(self, symbol, from_id, limit=1000):
        sent = self.budget.now_ms()
        page = super().historical_trades(symbol, from_id, limit)
        self.pages.append((sent, len(page)))
        return page


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=150.0, help="wall time to run (default 150)")
    p.add_argument("--window-seconds", type=int, default=10, help="length of each trades_between window")
    p.add_argument("--rate", type=float, default=5000.0, help="the symbol's trades per second in the simulator")
    p.add_argument("--history-minutes", type=int, default=30)
    args = p.parse_args(argv)

    with (
        SimulatorProcess(
            "--symbols", SYMBOL, "--rate", f"{SYMBOL}={args.rate:g}", "--history-minutes", str(args.history_minutes)
        ) as sim,
        CountingClient(sim.rest_url) as client,
    ):
        url = sim.rest_url
        client.pages = []
        state = json.loads(urllib.request.urlopen(f"{url}/_sim/state", timeout=5).read())
        start = (state["origin_ms"] // MINUTE_MS + 1) * MINUTE_MS
        window = args.window_seconds * 1000
        returned = windows = 0
        began = time.monotonic()
        began_ms = client.budget.now_ms()
        while time.monotonic() - began < args.seconds:
            returned += len(client.trades_between(SYMBOL, start, start + window))
            start += window
            windows += 1
        elapsed = time.monotonic() - began
        ended_ms = client.budget.now_ms()
        budget = client.budget.stats()
        pages = list(client.pages)
        state = json.loads(urllib.request.urlopen(f"{url}/_sim/state", timeout=5).read())

    statuses: Counter = Counter()
    for ip in state["weights"].values():
        statuses.update({int(k): v for k, v in ip["responses"].items()})
    fetched = sum(n for _, n in pages)
    useful = returned / fetched if fetched else 0.0  # the last page of each window reaches past it
    full = range(began_ms // MINUTE_MS + 1, ended_ms // MINUTE_MS)  # exchange minutes entirely inside the run
    per_minute = Counter(sent // MINUTE_MS for sent, _ in pages)
    in_full = sum(n for sent, n in pages if sent // MINUTE_MS in full)
    wall_rate = returned / elapsed
    if len(full):
        full_rate = in_full * useful / (60 * len(full))
        full_text = (
            f"{full_rate:,.0f} trades/s = {full_rate / CEILING_TRADES_PER_S:.1%} of the "
            f"{CEILING_TRADES_PER_S:,}/s weight ceiling over {len(full)} full exchange minute(s)"
        )
    else:
        full_text = "no full exchange minute in the run (use --seconds >= 120)"
    print(
        f"rest_trades_between: {full_text}; wall clock {wall_rate:,.0f} trades/s "
        f"({wall_rate / CEILING_TRADES_PER_S:.1%}): {returned:,} trades in {windows} windows of "
        f"{args.window_seconds} s over {elapsed:.1f} s ({fetched:,} fetched in {len(pages)} historicalTrades "
        f"pages, {useful:.1%} inside windows); responses 429: {statuses.get(429, 0)}, "
        f"418: {statuses.get(418, 0)}; limit {budget['limit']}/min, client ceiling {budget['ceiling']}, "
        f"highest used weight reported {budget['max_reported_used']}, {budget['waits']} budget waits "
        f"({len(per_minute)} minutes touched)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
