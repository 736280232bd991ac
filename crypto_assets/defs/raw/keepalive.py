"""``live_stream_keepalive``: keeps exactly one `live_trades_stream` run alive per shard of the symbol universe
(``CRYPTO_STREAM_SHARDS``, default 1; symbols split by a stable hash, ``universe.shard_of``), each streaming its
shard's symbols; on by default (``dagster dev`` needs no click).

A run counts as alive while it is queued, starting, or started with a fresh heartbeat; a started run whose heartbeat
is older than ``STALE_AFTER_S``, or that has none ``FIRST_BEAT_WITHIN_S`` after its start, died without Dagster
noticing (``dagster dev`` killed hard) or is cut off: its worker is stopped through the run launcher and the run is
marked failed; a canceling run as silent (its worker died before it could record the end) is marked canceled. A run
streaming other symbols than its shard's (the universe kept in the lake changed: a listing, a delisting, a new
CRYPTO_SYMBOLS), or a second run of a shard, is cancelled and replaced. After ``FAILURE_BACKOFF_AFTER`` failures of
a shard in a row its next start waits (``STREAM_RESTART_BACKOFF``: 1, 2, 4 ... up to 15 minutes): no crash loop. A
canceled run (stopped on purpose: Ctrl-C on ``dagster dev``, Terminate in the UI, a change of symbols) is no failure
and ends the row: the next start is at once.
"""
# No `from __future__ import annotations` in Dagster modules: Dagster inspects the `context` annotation at runtime.

import time

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from crypto_assets.backoff import Backoff
from crypto_assets.defs.names import IN_FLIGHT_STATUSES
from crypto_assets.defs.raw.live_stream import HEARTBEAT_TAG, SHARD_TAG, STREAM_JOB, SYMBOLS_TAG, symbols_tag
from crypto_assets.defs.raw.resources import ExchangeResource, LakeResource
from crypto_assets.ingest.universe import shard_of

STALE_AFTER_S = 45  # no heartbeat for this long (it beats every 15 s: three missed beats): the process is gone
# A started run's first beat comes once its step process has loaded the definitions: seen taking over 50 s on two
# busy cores (two healthy runs were failed for it at 45 s). The same bound as the production run monitoring's
# start_timeout_seconds.
FIRST_BEAT_WITHIN_S = 180
FAILURE_BACKOFF_AFTER = 3  # failed stream runs in a row before starts are spaced out
# The wait before the next stream start, by the failures in a row beyond FAILURE_BACKOFF_AFTER - 1: 1 min after the
# third, 2 after the fourth, 4 ... at most 15 min.
STREAM_RESTART_BACKOFF = Backoff(first_s=60, max_s=15 * 60)
RECENT_RUNS = 12  # the stream runs read to count the failures in a row (newest first)


def build_live_stream_keepalive(stream_job: JobDefinition) -> SensorDefinition:
    @sensor(
        name="live_stream_keepalive",
        job=stream_job,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=20,
        description="Keeps exactly one live_trades_stream run alive per shard of the symbol universe "
        "(CRYPTO_STREAM_SHARDS), each streaming its shard's symbols.",
    )
    def live_stream_keepalive(context: SensorEvaluationContext, exchange: ExchangeResource, lake: LakeResource):
        streamed = exchange.universe(lake.lake()).streamed()
        count = exchange.stream_shards
        wanted = {f"{i}/{count}": shard_of(streamed, i, count) for i in range(count)}
        instance = context.instance
        now = time.time()
        alive: dict[str, object] = {}
        # oldest first: of two runs of a shard, the one streaming already stays
        for record in reversed(instance.get_run_records(RunsFilter(job_name=STREAM_JOB, statuses=IN_FLIGHT_STATUSES))):
            run = record.dagster_run
            if run.status in (DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING):
                silence = _silence(run, record, now)
                if silence:
                    _end_silent_run(context, run, silence)
                    continue
            shard = run.tags.get(SHARD_TAG, "0/1")
            if run.status != DagsterRunStatus.CANCELING:
                why = _replace_why(run, shard, wanted, alive)
                if why:
                    context.log.info(f"stream run {run.run_id} ({shard}) {why}: cancelling it")
                    instance.run_coordinator.cancel_run(run.run_id)
            alive.setdefault(shard, run)  # a canceling run still holds its shard until it ends
        requests, waits = [], []
        for shard, symbols in wanted.items():
            if shard in alive or not symbols:
                continue
            wait = _restart_wait_s(instance, now, shard)
            if wait > 0:
                waits.append(f"shard {shard}: the last stream runs failed in a row, next start in {wait:.0f}s")
                continue
            requests.append(
                RunRequest(
                    tags={SYMBOLS_TAG: symbols_tag(symbols), SHARD_TAG: shard},
                    run_config={"ops": {"stream_trades": {"config": {"symbols": symbols, "shard": shard}}}},
                )
            )
        if requests:
            return SensorResult(run_requests=requests)
        running = [f"{shard}: {run.run_id} {run.status.value}" for shard, run in sorted(alive.items())]
        return SkipReason("; ".join(running + waits) or "no symbol to stream")

    return live_stream_keepalive


def _replace_why(run, shard: str, wanted: dict[str, list[str]], alive: dict) -> str | None:
    """Why an in-flight stream run must give way, or None: its shard is not one of today's, its symbols are no
    longer its shard's (a listing, a delisting, a change of CRYPTO_SYMBOLS), or its shard has a run already."""
    if shard not in wanted:
        return f"is not a shard of {len(wanted)}"
    if run.tags.get(SYMBOLS_TAG) != symbols_tag(wanted[shard]):
        return f"streams {run.tags.get(SYMBOLS_TAG)}, its shard now {symbols_tag(wanted[shard]) or 'nothing'}"
    if shard in alive:
        return f"is a second run of its shard (beside {alive[shard].run_id})"
    return None


def _silence(run, record, now: float) -> str | None:
    """Why a started stream run counts as dead, or None: no heartbeat for ``STALE_AFTER_S``, or none yet
    ``FIRST_BEAT_WITHIN_S`` after the run started."""
    beat = run.tags.get(HEARTBEAT_TAG)
    if beat:
        silent_s = now - float(beat)
        return f"no heartbeat for {silent_s:.0f}s" if silent_s > STALE_AFTER_S else None
    silent_s = now - (record.start_time or record.create_timestamp.timestamp())
    return f"no heartbeat {silent_s:.0f}s after its start" if silent_s > FIRST_BEAT_WITHIN_S else None


def _end_silent_run(context: SensorEvaluationContext, run, silence: str) -> None:
    """A started (or canceling) stream run that is silent (``silence`` says how): its worker is stopped through the
    run launcher first (a worker that lives but cannot write its heartbeat, e.g. cut off from the instance's database,
    must not stream beside the next run; a Docker or Kubernetes launcher stops its container or pod, the default
    launcher asks the code server), then the run is marked failed, or canceled if it was being canceled (it was
    stopped on purpose and its worker died before recording the end, e.g. ``dagster dev`` killed hard right after a
    Ctrl-C: left canceling, it would count as alive for ever where run monitoring is off, as under ``dagster dev``).
    A worker that is gone already is the usual case: the launcher finds nothing to stop, and Dagster's run
    monitoring may have marked the run failed as well."""
    instance = context.instance
    canceling = run.status == DagsterRunStatus.CANCELING
    verdict = "canceled" if canceling else "failed"
    try:
        instance.run_launcher.terminate(run.run_id)
    except Exception as exc:  # noqa: BLE001 - an unreachable code server or container API must not keep a dead run
        context.log.warning(f"could not stop stream run {run.run_id}'s worker ({exc}); marking it {verdict} anyway")
    message = (
        f"{silence}: the run's process is gone or cut off (e.g. its host, container or `dagster dev` was killed); "
        f"its worker was stopped"
    )
    if canceling:
        instance.report_run_canceled(run, message)
    else:
        instance.report_run_failed(run, message)
    context.log.warning(f"marked stream run {run.run_id} {verdict}: {silence}")


def _restart_wait_s(instance, now: float, shard: str) -> float:
    """Seconds to wait before starting a stream run again: after FAILURE_BACKOFF_AFTER or more failures in a row
    (newest first), ``STREAM_RESTART_BACKOFF`` counted from the last one's end. Any other end breaks the row: a
    canceled run was stopped on purpose (Ctrl-C on `dagster dev`, the UI, a change of symbols), and the next start
    must not wait for the failures before it."""
    tags = {SHARD_TAG: shard} if shard != "0/1" else {}  # one shard: every stream run (also those before shards)
    records = instance.get_run_records(RunsFilter(job_name=STREAM_JOB, tags=tags), limit=RECENT_RUNS)
    failures = 0
    for record in records:
        if record.dagster_run.status != DagsterRunStatus.FAILURE:
            break
        failures += 1
    if failures < FAILURE_BACKOFF_AFTER:
        return 0.0
    last_end = records[0].end_time or records[0].update_timestamp.timestamp()
    return max(0.0, last_end + STREAM_RESTART_BACKOFF.delay_s(failures - FAILURE_BACKOFF_AFTER + 1) - now)
