"""The capture process's metrics (crypto_assets/ingest/metrics.py): what the families hold after the calls the capture
code makes, read back from the text Prometheus scrapes (generate_latest), and the endpoint on a taken port."""

import logging
import socket
from dataclasses import dataclass

import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crypto_assets.exchange.stream import reconnect_cause
from crypto_assets.ingest.metrics import METRIC_NAMES, CaptureMetrics
from crypto_assets_tests.ports import free_port


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Sample name and sorted labels -> value, from the exposition text."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def samples(metrics: CaptureMetrics):
    return scraped(generate_latest(metrics.registry).decode())


@dataclass
class View:
    used: int = 0
    limit: int = 6000
    paused_until_ms: int = 0
    banned_until_ms: int = 0


@dataclass
class Spool:
    minutes: int = 0
    bytes: int = 0

    def __len__(self) -> int:
        return self.minutes


def test_every_contract_family_is_exposed_with_its_labels():
    metrics = CaptureMetrics()
    metrics.info("1/4", 3)
    metrics.trade("BTCUSDT", "67000.5", 1_700_000_000_123)
    metrics.kline("BTCUSDT")
    metrics.malformed()
    metrics.connected()
    metrics.reconnected("silent")
    metrics.minute_recorded("stream", 1_700_000_040_000, 1_700_000_100_400)
    metrics.minute_given_up("spool_full")
    metrics.repaired(7)
    metrics.lake_written(0.02)
    metrics.lake_failed()
    metrics.watch(budget=lambda: View(used=120), spool=Spool(2, 4096))
    text = generate_latest(metrics.registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # the parser names a counter family without its _total; the contract names the samples
    exposed = {
        f.name + ("_total" if f.type == "counter" else "") for f in families.values() if not f.name.endswith("_created")
    }
    assert exposed == set(METRIC_NAMES)
    got = scraped(text)
    assert got[("crypto_capture_info", (("shard", "1/4"), ("symbols", "3")))] == 1
    assert got[("crypto_capture_trades_received_total", (("symbol", "BTCUSDT"),))] == 1
    assert got[("crypto_capture_messages_received_total", (("kind", "trade"), ("symbol", "BTCUSDT")))] == 1
    assert got[("crypto_capture_messages_received_total", (("kind", "kline"), ("symbol", "BTCUSDT")))] == 1
    assert got[("crypto_capture_last_price", (("symbol", "BTCUSDT"),))] == 67000.5
    assert got[("crypto_capture_last_trade_timestamp_seconds", (("symbol", "BTCUSDT"),))] == 1_700_000_000.123
    assert got[("crypto_capture_malformed_frames_total", ())] == 1
    assert got[("crypto_capture_connections", ())] == 1
    assert got[("crypto_capture_reconnects_total", (("cause", "silent"),))] == 1
    assert got[("crypto_capture_reconnects_total", (("cause", "error"),))] == 0  # every cause there from the start
    assert got[("crypto_capture_minutes_recorded_total", (("source", "stream"),))] == 1
    assert got[("crypto_capture_minutes_recorded_total", (("source", "rest"),))] == 0
    # minute end 1_700_000_100_000 -> 0.4 s: in the 0.5 bucket, not the 0.25 one
    assert got[("crypto_capture_minute_latency_seconds_bucket", (("le", "0.25"),))] == 0
    assert got[("crypto_capture_minute_latency_seconds_bucket", (("le", "0.5"),))] == 1
    assert got[("crypto_capture_minute_latency_seconds_bucket", (("le", "120.0"),))] == 1
    assert got[("crypto_capture_minutes_given_up_total", (("reason", "spool_full"),))] == 1
    assert got[("crypto_capture_repairs_total", ())] == 1
    assert got[("crypto_capture_repaired_trades_total", ())] == 7
    assert got[("crypto_lake_write_seconds_count", ())] == 1
    assert got[("crypto_lake_write_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("crypto_lake_write_errors_total", ())] == 1
    assert got[("crypto_capture_spool_minutes", ())] == 2
    assert got[("crypto_capture_spool_bytes", ())] == 4096
    assert got[("crypto_rest_weight_used", ())] == 120
    assert got[("crypto_rest_weight_limit", ())] == 6000
    assert got[("crypto_rest_rate_limited_total", (("status", "429"),))] == 0


def test_trades_are_tallied_and_reach_the_families_at_each_scrape():
    """Per trade only a tally moves; a scrape adds what came since the last one, and the last price wins."""
    metrics = CaptureMetrics()
    for n in range(5):
        metrics.trade("ETHUSDT", f"{3000 + n}.25", 1_700_000_000_000 + n)
    assert samples(metrics)[("crypto_capture_trades_received_total", (("symbol", "ETHUSDT"),))] == 5
    metrics.trade("ETHUSDT", "2999.5", 1_700_000_001_000)
    metrics.trade("SOLUSDT", "150", 1_700_000_001_001)
    got = samples(metrics)
    assert got[("crypto_capture_trades_received_total", (("symbol", "ETHUSDT"),))] == 6
    assert got[("crypto_capture_trades_received_total", (("symbol", "SOLUSDT"),))] == 1
    assert got[("crypto_capture_last_price", (("symbol", "ETHUSDT"),))] == 2999.5
    assert samples(metrics)[("crypto_capture_trades_received_total", (("symbol", "ETHUSDT"),))] == 6  # not again


def test_new_pauses_and_bans_of_the_shared_budget_are_counted_once_each():
    """The pause and ban standing when watching starts are the baseline; each later end is one 429 / 418."""
    view = View(used=10, paused_until_ms=1_000, banned_until_ms=500)
    metrics = CaptureMetrics()
    metrics.watch(budget=lambda: view)
    assert samples(metrics)[("crypto_rest_rate_limited_total", (("status", "429"),))] == 0
    view.paused_until_ms = 5_000
    samples(metrics)
    view.paused_until_ms, view.banned_until_ms, view.used, view.limit = 9_000, 90_000, 5_900, 1200
    got = samples(metrics)
    assert got[("crypto_rest_rate_limited_total", (("status", "429"),))] == 2
    assert got[("crypto_rest_rate_limited_total", (("status", "418"),))] == 1
    assert (got[("crypto_rest_weight_used", ())], got[("crypto_rest_weight_limit", ())]) == (5_900, 1200)
    assert samples(metrics)[("crypto_rest_rate_limited_total", (("status", "418"),))] == 1


def test_a_budget_that_cannot_be_read_does_not_break_the_scrape():
    def broken():
        raise OSError("cannot open the shared weight budget file")

    metrics = CaptureMetrics()
    metrics.watch(budget=broken)
    assert ("crypto_rest_weight_used", ()) in samples(metrics)


def test_unknown_label_values_fall_into_the_bounded_sets():
    metrics = CaptureMetrics()
    metrics.reconnected("something new")
    metrics.minute_given_up("whatever")
    metrics.minute_recorded("archive", 0, 60_000)
    got = samples(metrics)
    assert got[("crypto_capture_reconnects_total", (("cause", "error"),))] == 1
    assert got[("crypto_capture_minutes_given_up_total", (("reason", "unproven"),))] == 1
    assert got[("crypto_capture_minutes_recorded_total", (("source", "stream"),))] == 1
    assert {name for name, labels in got if ("cause", "something new") in labels} == set()


def test_the_stream_s_disconnect_reasons_map_to_the_contract_causes():
    assert reconnect_cause("silent for 6.1s (no data, no ping): half-open connection") == "silent"
    assert reconnect_cause("server shutdown") == "server_shutdown"
    assert reconnect_cause("renewal") == "renewal"
    assert reconnect_cause("closed by the server (code 1000)") == "closed"
    assert reconnect_cause("connection lost: WebSocketConnectionClosedException: gone") == "error"


def test_serves_over_http_and_a_taken_port_is_a_warning_naming_it(caplog):
    metrics = CaptureMetrics()
    metrics.trade("BTCUSDT", "1", 1)
    port = free_port()
    server = metrics.serve("127.0.0.1", port)
    assert server is not None
    try:
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert scraped(body)[("crypto_capture_trades_received_total", (("symbol", "BTCUSDT"),))] == 1
        with caplog.at_level(logging.WARNING, logger="crypto_assets.ingest.metrics"):
            assert CaptureMetrics().serve("127.0.0.1", port) is None
        assert f"127.0.0.1:{port}" in caplog.text and "metrics are off" in caplog.text
    finally:
        server.shutdown()
        server.server_close()


def test_serve_on_a_port_taken_by_another_socket():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert CaptureMetrics().serve("127.0.0.1", taken.getsockname()[1]) is None


def test_shards_sharing_a_host_take_the_next_free_port():
    """Under `dagster dev` every shard's capture process shares the host: the second takes the port after the first;
    in its own container each takes the configured port itself."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = CaptureMetrics().serve("127.0.0.1", port, tries=3)
        try:
            assert server is not None and server.server_port in (port + 1, port + 2)
        finally:
            if server is not None:
                server.shutdown()
