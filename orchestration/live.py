"""The live stream under Dagster: the `stream_ticks` job and its `stream_supervisor` sensor.

The job's op runs the streaming lander (streaming/, which knows nothing of Dagster) in a
thread for a bounded window (until the next UTC midnight, or `max_seconds`), reports
progress as observations of the live tables, and flushes before it ends — also when the
run is terminated. The sensor keeps exactly one such run alive per configured venue
(`MARKETLAKE_STREAM_EXCHANGES`): it launches one when none is running and replaces a run
whose heartbeat (the lander's state file) has gone stale. Each run is tagged with its
venue, so the queued run coordinator's tag limit keeps two runs of one venue apart.
"""

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from marketlake.exchanges.registry import venue
from marketlake.instruments import Instrument
from marketlake.lake import Lake
from orchestration.partitions import instrument_partitions
from orchestration.resources import LiveEndpoints

JOB_NAME = "stream_ticks"
STREAM_TAG = "marketlake/stream"
#: The run states in which a stream run is, or is about to be, landing ticks.
ALIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class StreamOpConfig(dg.Config):
    """What one stream run lands: a venue of `marketlake.exchanges.registry` and its
    instruments; empty symbols = the venue's instrument partitions."""

    exchange: str = "binance"
    symbols: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    max_seconds: float | None = None
    flush_interval_s: float = 1.0
    report_every_s: float = 30.0


def stream_window(now: dt.datetime, max_seconds: float | None) -> float:
    """Seconds until the next UTC midnight, capped by `max_seconds`.

    Runs end at midnight so each run's landing covers one UTC day and the next run starts
    on fresh connections (Binance cuts connections after 24 hours anyway).
    """
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    window = (midnight - now).total_seconds()
    return min(window, max_seconds) if max_seconds else window


def stream_symbols(
    exchange: str, configured: Sequence[str], partitions: Sequence[str]
) -> list[str]:
    """The run's symbols: those configured (checked against the venue's syntax), else the
    venue's instrument partitions (`binance:BTCUSDT`: the key names its venue)."""
    chosen = venue(exchange)
    if configured:
        return sorted({chosen.normalize_symbol(s) for s in configured})
    found = (Instrument.from_key(text) for text in partitions)
    return sorted({i.symbol for i in found if i.venue == chosen.name})


def build_stream_job() -> dg.JobDefinition:
    @dg.op(
        name="land_ticks",
        description="Runs the streaming lander for a bounded window and reports what landed.",
    )
    def land_ticks(
        context: dg.OpExecutionContext,
        config: StreamOpConfig,
        lake: dg.ResourceParam[Lake],
        live: dg.ResourceParam[LiveEndpoints],
    ) -> None:
        from streaming import StreamRunner

        symbols = stream_symbols(
            config.exchange,
            config.symbols,
            context.instance.get_dynamic_partitions(instrument_partitions.name),
        )
        if not symbols:
            raise dg.Failure(
                f"no {config.exchange} symbols to stream: configure them "
                f"(MARKETLAKE_{config.exchange.upper()}_SYMBOLS, or the run's `symbols`)"
                + f", or `marketlake symbols add --exchange {config.exchange} SYMBOL`"
            )
        window = stream_window(dt.datetime.now(dt.UTC), config.max_seconds)
        runner = StreamRunner(
            live.stream_config(
                config.exchange,
                symbols,
                lake,
                duration_s=window,
                flush_interval_s=config.flush_interval_s,
                handle_signals=False,
            )
        )
        context.log.info(
            f"landing {config.exchange} {', '.join(symbols)} for {window:,.0f}s into {lake.uri}"
        )
        outcome = _Outcome()
        thread = threading.Thread(target=outcome.run, args=(runner,), name="lander", daemon=True)
        thread.start()
        cancelled = False
        try:
            last_report = time.monotonic()
            while not outcome.done.wait(timeout=1.0):
                if time.monotonic() - last_report >= config.report_every_s:
                    _observe(context, runner.status())
                    last_report = time.monotonic()
        except dg.DagsterExecutionInterruptedError:
            # Terminate in the UI, or the supervisor replacing the run: the normal way a
            # stream stops. It ends like the window's end does, flushed and reported.
            cancelled = True
            context.log.info("run cancelled: stopping the lander after its final flush")
        finally:
            # Also on any other way out: stop the lander and wait for its final flush.
            # (An Event, not Thread.join: a join interrupted by the signal can leave the
            # thread looking finished while it is still flushing.)
            runner.stop()
            outcome.done.wait(timeout=60)
        if outcome.error is not None:
            raise outcome.error
        stats = outcome.stats
        if stats is None:
            raise dg.Failure("the lander did not finish its final flush within 60 s")
        _observe(context, runner.status())
        for table, rows in sorted(stats.rows_landed.items()):
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=table,
                    metadata={
                        "rows_landed": rows,
                        "messages": stats.messages,
                        "reconnects": stats.reconnects,
                        "gaps": stats.gaps,
                        "gaps_filled": stats.gaps_filled,
                        "quarantined": stats.quarantined,
                        "duplicates": stats.duplicates,
                        "duration_s": round(stats.elapsed_s, 1),
                        "stopped_by": "cancel" if cancelled else "end of window",
                    },
                )
            )

    @dg.job(
        name=JOB_NAME,
        description=(
            "Lands live trades, best bid/ask and depth20 into ticks_* until the next UTC "
            "midnight; kept alive by stream_supervisor."
        ),
        tags={STREAM_TAG: "binance"},
        # Its step in a process of its own (the other jobs run in-process): terminating the
        # run then stops the lander, which flushes, and the run ends CANCELED, as a stopped
        # stream should read; in-process, the flushed step would end the run as a SUCCESS.
        executor_def=dg.multiprocess_executor,
    )
    def stream_ticks() -> None:
        land_ticks()

    return stream_ticks


@dataclass
class _Outcome:
    stats: object = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, runner) -> None:
        try:
            self.stats = runner.run()
        except BaseException as error:  # surfaced in the op's thread
            self.error = error
        finally:
            self.done.set()


def _observe(context: dg.OpExecutionContext, status) -> None:
    context.log_event(
        dg.AssetObservation(
            asset_key="ticks_trades",
            metadata={
                "messages_per_s": round(status.messages_per_s, 1),
                "rows_landed": sum(status.rows_landed.values()),
                "receive_lag_ms": status.receive_lag_ms,
                "land_lag_ms": status.land_lag_ms,
                "reconnects": status.reconnects,
                "gaps": status.gaps,
                "gaps_filled": status.gaps_filled,
                "quarantined": status.quarantined,
            },
        )
    )


# --- the supervisor ---------------------------------------------------------------------------


def heartbeat_age(lake: Lake, name: str, now: dt.datetime) -> float | None:
    """Seconds since the lander last committed a flush, or None if it never has."""
    from streaming import StateStore

    state = StateStore(lake.uri, name, lake.storage_options).read()
    if not state or not state.get("updated_at"):
        return None
    updated = dt.datetime.fromisoformat(state["updated_at"].replace("Z", "+00:00"))
    return (now - updated).total_seconds()


def build_stream_supervisor(
    stale_after_s: float = 120.0,
    exchanges: Sequence[str] = ("binance",),
    symbols: dict[str, Sequence[str]] | None = None,
) -> dg.SensorDefinition:
    """The sensor keeping one healthy `stream_ticks` run per venue in ``exchanges``;
    ``symbols`` are the instruments a venue's runs land (default: its instrument partitions)."""
    venues = [venue(e).name for e in exchanges]
    configured = {name: list((symbols or {}).get(name, ())) for name in venues}

    @dg.sensor(
        name="stream_supervisor",
        job_name=JOB_NAME,
        minimum_interval_seconds=30,
        description=(
            f"Keeps exactly one stream_ticks run alive per venue ({', '.join(venues)}): "
            "launches one when none runs, replaces one whose heartbeat is older than "
            f"{stale_after_s:.0f}s, never starts a second beside a healthy one."
        ),
    )
    def stream_supervisor(context: dg.SensorEvaluationContext, lake: dg.ResourceParam[Lake]):
        now = dt.datetime.now(dt.UTC)
        alive = context.instance.get_runs(filters=dg.RunsFilter(job_name=JOB_NAME, statuses=ALIVE))
        requests, skips = [], []
        for name in venues:
            mine = [r for r in alive if r.tags.get(STREAM_TAG, "binance") == name]
            outcome = _supervise(context, lake, name, mine, now, stale_after_s)
            if outcome is None:
                op_config = {"exchange": name, "symbols": configured[name]}
                requests.append(
                    dg.RunRequest(
                        run_key=f"stream-{name}-{now.isoformat()}",
                        tags={STREAM_TAG: name},
                        run_config={"ops": {"land_ticks": {"config": op_config}}},
                    )
                )
            else:
                skips.append(outcome if len(venues) == 1 else f"{name}: {outcome}")
        if requests:
            return dg.SensorResult(run_requests=requests)
        return dg.SkipReason("; ".join(skips))

    return stream_supervisor


def _supervise(
    context: dg.SensorEvaluationContext,
    lake: Lake,
    exchange: str,
    alive: Sequence[dg.DagsterRun],
    now: dt.datetime,
    stale_after_s: float,
) -> str | None:
    """None: launch a run for ``exchange``; else why not (and end the runs that must go)."""
    if not alive:
        return None
    newest, *extra = sorted(alive, key=lambda r: _started(context, r), reverse=True)
    for run in extra:
        _end(context, run, "a newer stream run is alive")
    age = heartbeat_age(lake, exchange, now)
    started = _started(context, newest)
    since_start = now.timestamp() - started
    if age is None and since_start <= stale_after_s:
        return f"run {newest.run_id[:8]} is starting ({since_start:.0f}s)"
    if age is not None and age <= stale_after_s:
        return f"run {newest.run_id[:8]} is healthy (heartbeat {age:.0f}s ago)"
    reason = (
        f"no heartbeat {since_start:.0f}s after start"
        if age is None
        else f"heartbeat {age:.0f}s old (limit {stale_after_s:.0f}s)"
    )
    _end(context, newest, reason)
    return f"terminated stale run {newest.run_id[:8]}: {reason}; a new one starts next tick"


def _started(context: dg.SensorEvaluationContext, run: dg.DagsterRun) -> float:
    record = context.instance.get_run_record_by_id(run.run_id)
    if record is None:
        return 0.0
    return record.start_time or record.create_timestamp.timestamp()


def _end(context: dg.SensorEvaluationContext, run: dg.DagsterRun, reason: str) -> None:
    """Terminate `run` through its launcher; a run whose process is gone is marked failed."""
    context.log.warning(f"ending stream run {run.run_id}: {reason}")
    terminated = False
    try:
        terminated = context.instance.run_launcher.terminate(run.run_id)
    except Exception as error:  # the launcher can't reach the run's process
        context.log.warning(f"could not terminate {run.run_id}: {error}")
    if not terminated:
        context.instance.report_run_failed(run, message=f"stream_supervisor: {reason}")
