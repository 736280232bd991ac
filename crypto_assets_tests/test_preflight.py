import os
import subprocess
import sys

from crypto_assets_tests.ports import free_port


def run_preflight(**overrides):
    env = dict(os.environ)
    # A developer's own settings must not leak in (a .env in the project root never beats these: the real
    # environment wins).
    env.update({"CRYPTO_SYMBOLS": "BTCUSDT", **overrides})
    return subprocess.run(
        [sys.executable, "-m", "crypto_assets.preflight"], env=env, capture_output=True, text=True, timeout=60
    )


def test_unreachable_exchange_exits_1_naming_the_url_without_traceback():
    port = free_port()
    rest_url = f"http://127.0.0.1:{port}"
    result = run_preflight(BINANCE_REST_URL=rest_url, BINANCE_WS_URL=f"ws://127.0.0.1:{port}")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert rest_url in output
    assert f"ws://127.0.0.1:{port}/ws/btcusdt@trade" in output
    assert "make demo" in output
    assert "Traceback" not in output


def test_bad_configuration_exits_2_naming_the_value():
    result = run_preflight(CRYPTO_SYMBOLS="BTCUSDT,BTC/USDT")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "'BTC/USDT'" in output
    assert "Traceback" not in output


def test_reachable_exchange_exits_0_with_one_ok_line(simulator):
    result = run_preflight(BINANCE_REST_URL=simulator.rest_url, BINANCE_WS_URL=simulator.ws_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().count("\n") == 0 and "OK" in result.stdout


def test_a_quote_selection_passes_preflight(simulator):
    """CRYPTO_SYMBOLS=quote:USDT names no symbol before exchangeInfo is read: preflight still checks both endpoints."""
    result = run_preflight(
        CRYPTO_SYMBOLS="quote:USDT", BINANCE_REST_URL=simulator.rest_url, BINANCE_WS_URL=simulator.ws_url
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "quote:USDT" in result.stdout
