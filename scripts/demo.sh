#!/usr/bin/env bash
# `make demo`: start the bundled exchange simulator, wait until it answers, run `dagster dev` against it, and stop
# the simulator when dagster dev exits (Ctrl-C included).
#
# The instance's settings come from dagster.dev.yaml (the duckdb pool's limit of 1): it is copied to
# $DAGSTER_HOME/dagster.yaml when there is none, or when the one there is this project's copy (its first line is
# dagster.dev.yaml's). A dagster.yaml of your own is kept as it is, with a note on what it needs.
# `scripts/demo.sh --instance-config-only` does only that step (what `make dev` calls).
#
# Variables (environment, or `make demo NAME=value`):
#   DEMO_HISTORY_MINUTES  how long the simulated market has traded before start-up (default 120). The gap sensor
#                         looks back CRYPTO_GAP_LOOKBACK_HOURS (24 h); 1440 gives it a full day, at a cost. Measured
#                         2026-12-01, 3 default symbols: the simulator starts as fast (0.3 s, 40 MB), but the first
#                         read of a whole day makes it generate every second of it: 30-50 s of CPU per symbol, during
#                         which it answers nothing else (stream, pings, REST), and ~0.42 GB resident in all; then the
#                         gap sensor backfills ~5.6 million trades over REST (~140k request weight: 20+ minutes at
#                         6000/min). So the default stays at 120 minutes (the sensor starts at a symbol's first trade).
#   DEMO_HOSTILE=1        hostile mode: every stream connection cut after 40-100 s (dropped, half-open, or
#                         serverShutdown), bursts of 10-50x a symbol's rate, empty minutes (default 0: off).
#   SIM_PORT, DAGSTER_PORT, SIM_START_TIMEOUT, SIM_ARGS (extra simulator options; they come last, so they win).
set -euo pipefail
cd "$(dirname "$0")/.."

SIM_PORT="${SIM_PORT:-8765}"
DAGSTER_PORT="${DAGSTER_PORT:-3000}"
SIM_START_TIMEOUT="${SIM_START_TIMEOUT:-30}"
SIM_ARGS="${SIM_ARGS:-}"  # extra simulator options, e.g. "--history-minutes 70 --rate BTCUSDT=400"
DEMO_HISTORY_MINUTES="${DEMO_HISTORY_MINUTES:-120}"
DEMO_HOSTILE="${DEMO_HOSTILE:-0}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
PY=.venv/bin/python
SIM_URL="http://127.0.0.1:${SIM_PORT}"
INSTANCE_CONFIG=dagster.dev.yaml

install_instance_config() {
    local target="$DAGSTER_HOME/dagster.yaml"
    mkdir -p "$DAGSTER_HOME"
    if [[ -e "$target" && "$(head -n 1 "$target")" != "$(head -n 1 "$INSTANCE_CONFIG")" ]]; then
        grep -q '^concurrency:' "$target" && return 0
        echo "note: keeping your own $target (its first line is not $INSTANCE_CONFIG's), which sets no" >&2
        echo "note: 'concurrency:'. The dbt assets need the pool 'duckdb' limited to 1 (one writer per DuckDB file): copy" >&2
        echo "note: that block of $INSTANCE_CONFIG into it, or run: .venv/bin/dagster instance concurrency set duckdb 1" >&2
        return 0
    fi
    cmp -s "$INSTANCE_CONFIG" "$target" || cp "$INSTANCE_CONFIG" "$target"
}

if [[ "${1:-}" == "--instance-config-only" ]]; then
    install_instance_config
    exit 0
fi

answers_ping() {
    "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "$SIM_URL/api/v3/ping" >/dev/null 2>&1
}

if ! [[ "$DEMO_HISTORY_MINUTES" =~ ^[0-9]+$ ]]; then
    echo "demo: DEMO_HISTORY_MINUTES must be a whole number of minutes, got '$DEMO_HISTORY_MINUTES'." >&2
    exit 2
fi
case "$DEMO_HOSTILE" in
    1) hostile_args=(--hostile)
       echo "demo: hostile mode (DEMO_HOSTILE=1): connections cut after 40-100 s, bursts, empty minutes" ;;
    0|"") hostile_args=() ;;
    *) echo "demo: DEMO_HOSTILE must be 1 (on) or 0 (off), got '$DEMO_HOSTILE'." >&2; exit 2 ;;
esac

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
"$PY" -m binance_simulator --host 127.0.0.1 --port "$SIM_PORT" --symbols "$SIM_SYMBOLS" \
    --history-minutes "$DEMO_HISTORY_MINUTES" ${hostile_args[@]+"${hostile_args[@]}"} $SIM_ARGS &
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
export BINANCE_ARCHIVE_URL="$SIM_URL"  # the simulator serves the daily archive too: the demo never reads Binance
install_instance_config
"$PY" -m crypto_assets.preflight || { echo "demo: dagster not started (preflight against the simulator failed)." >&2; exit 1; }
.venv/bin/dagster dev -h 127.0.0.1 -p "$DAGSTER_PORT" -w workspace.yaml
