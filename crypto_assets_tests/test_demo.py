"""`make demo` end to end: the simulator and `dagster dev` start, and trades show up in Dagster with no click.

Runs `scripts/demo.sh` (what `make demo` runs) on free ports with a throw-away DAGSTER_HOME, waits for the
every-minute schedule to materialize `market_snapshot`, reads its metadata through the webserver's GraphQL API and
checks the last trade it shows against the simulator's own REST answer for that trade id.
"""

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from crypto_assets_tests.ports import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT_QUERY = """
{ assetOrError(assetKey: {path: ["market_snapshot"]}) {
    ... on Asset { assetMaterializations(limit: 1) { runId metadataEntries { label
        ... on IntMetadataEntry { intRepr } ... on FloatMetadataEntry { floatValue }
        ... on TextMetadataEntry { text } ... on MarkdownMetadataEntry { mdStr } } } } } }
"""


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_make_demo_shows_trades_in_dagster(tmp_path):
    sim_port, dagster_port = free_port(), free_port()
    env = {**os.environ, "SIM_PORT": str(sim_port), "DAGSTER_PORT": str(dagster_port),
           "DAGSTER_HOME": str(tmp_path / "dagster_home"), "CRYPTO_LAKE_URL": str(tmp_path / "lake")}
    env.pop("BINANCE_REST_URL", None)
    env.pop("BINANCE_WS_URL", None)
    log = open(tmp_path / "demo.log", "wb")
    demo = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=PROJECT_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        entries = None
        deadline = time.time() + 240  # start-up, then up to a minute until the schedule's next tick, then the run
        while time.time() < deadline and entries is None:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(3)
            try:
                materializations = graphql(dagster_port, SNAPSHOT_QUERY)["assetOrError"]["assetMaterializations"]
            except OSError:
                continue  # the webserver is not up yet
            if materializations:
                entries = {e["label"]: e for e in materializations[0]["metadataEntries"]}
        assert entries is not None, "no market_snapshot materialization within 240 s:\n" + \
            (tmp_path / "demo.log").read_text()[-3000:]

        last_id = int(entries["BTCUSDT_last_trade_id"]["intRepr"])  # ids exceed GraphQL's 32-bit Int
        last_price = entries["BTCUSDT_last_price"]["floatValue"]
        url = f"http://127.0.0.1:{sim_port}/api/v3/historicalTrades?symbol=BTCUSDT&fromId={last_id}&limit=1"
        with urllib.request.urlopen(url, timeout=10) as response:
            (trade,) = json.loads(response.read())
        assert trade["id"] == last_id
        assert float(trade["price"]) == last_price
        rows = entries["latest_trades"]["mdStr"].splitlines()[2:]
        assert len(rows) == 20
        for row in rows:  # every row of the UI's table is a real trade of the exchange
            _, symbol, trade_id, price, qty, _ = [cell.strip() for cell in row.strip("|").split("|")]
            url = (f"http://127.0.0.1:{sim_port}/api/v3/historicalTrades?symbol={symbol}&fromId={trade_id}"
                   "&limit=1")
            with urllib.request.urlopen(url, timeout=10) as response:
                (trade,) = json.loads(response.read())
            assert (trade["id"], trade["price"], trade["qty"]) == (int(trade_id), price, qty)
        for symbol in ("ETHUSDT", "SOLUSDT"):
            assert int(entries[f"{symbol}_trades_fetched"]["intRepr"]) > 0
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
        log.close()
    with pytest.raises(OSError):  # the demo stopped its simulator when dagster dev exited
        urllib.request.urlopen(f"http://127.0.0.1:{sim_port}/api/v3/ping", timeout=2)
