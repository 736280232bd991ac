#!/usr/bin/env bash
# `make demo`: start the bundled exchange simulator, wait until it answers, run `dagster dev` against it, and stop
# the simulator when dagster dev exits (Ctrl-C included).
set -euo pipefail
cd "$(dirname "$0")/.."

SIM_PORT="${SIM_PORT:-8765}"
DAGSTER_PORT="${DAGSTER_PORT:-3000}"
SIM_START_TIMEOUT="${SIM_START_TIMEOUT:-30}"
SIM_ARGS="${SIM_ARGS:-}"  # extra simulator options, e.g. "--history-minutes 70 --rate BTCUSDT=400"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
PY=.venv/bin/python
SIM_URL="http://127.0.0.1:${SIM_PORT}"

answers_ping() {
    "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "$SIM_URL/api/v3/ping" >/dev/null 2>&1
}

if answers_ping; then
    echo "demo: something already answers on $SIM_URL (a simulator left running?)." >&2
    echo "demo: stop it, or pick another port: make demo SIM_PORT=8766" >&2
    exit 1
fi

# The simulator lists the symbols the project will capture: CRYPTO_SYMBOLS as the settings read it (environment,
# then .env, then the default), so `make demo CRYPTO_SYMBOLS=PEPEUSDT,ETHBTC` works for any symbol.
SIM_SYMBOLS="$("$PY" -c '
import sys
from crypto_assets.settings import Settings, SettingsError
try:
    print(",".join(Settings.from_env().symbols))
except SettingsError as exc:
    sys.exit(f"demo: invalid configuration: {exc}")
')" || exit 2
echo "demo: the simulator lists $SIM_SYMBOLS"

# shellcheck disable=SC2086  # SIM_ARGS is a list of options (a --symbols in it wins: it comes last)
"$PY" -m crypto_assets.exchange.simulator --host 127.0.0.1 --port "$SIM_PORT" --symbols "$SIM_SYMBOLS" $SIM_ARGS &
sim_pid=$!

stop_simulator() {
    kill -0 "$sim_pid" 2>/dev/null || return 0
    kill "$sim_pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$sim_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$sim_pid" 2>/dev/null; then
        echo "demo: the simulator (pid $sim_pid) ignored SIGTERM for 5 s; killing it." >&2
        kill -KILL "$sim_pid" 2>/dev/null || true
    fi
    wait "$sim_pid" 2>/dev/null || true
}
trap stop_simulator EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

deadline=$((SECONDS + SIM_START_TIMEOUT))
until answers_ping; do
    if ! kill -0 "$sim_pid" 2>/dev/null; then
        status=0
        wait "$sim_pid" || status=$?
        echo "demo: the simulator exited (status $status) before answering $SIM_URL/api/v3/ping; see its output above." >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "demo: the simulator did not answer $SIM_URL/api/v3/ping within ${SIM_START_TIMEOUT} s; giving up." >&2
        exit 1
    fi
    sleep 0.2
done
echo "demo: exchange simulator answering at $SIM_URL"

export BINANCE_REST_URL="$SIM_URL"
export BINANCE_WS_URL="ws://127.0.0.1:${SIM_PORT}"
mkdir -p "$DAGSTER_HOME"
"$PY" -m crypto_assets.preflight || { echo "demo: dagster not started (preflight against the simulator failed)." >&2; exit 1; }
.venv/bin/dagster dev -h 127.0.0.1 -p "$DAGSTER_PORT" -w workspace.yaml
