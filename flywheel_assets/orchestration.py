"""Running the graph for one snapshot on the local Dagster instance (``flywheel run``)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    ReexecutionOptions,
    RunsFilter,
    execute_job,
    reconstructable,
)

from flywheel_assets.definitions import STEP_PRELOAD, data_monitor_job, defs, flywheel_snapshot_job
from flywheel_assets.messages import step_error_message
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.core.jobs import JOBS
from flywheel_assets.resources import Lake
from flywheel_assets.settings import Settings
from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.snapshots import LATEST, parse_date, partition_dates, unsatisfied


def steps() -> dict[str, list[str]]:
    """Each step (a run-book job or catalog step: ``infobase_split``, ``ext_tables``...) -> the asset
    keys it materializes. The raw sources are observed, not materialized."""
    out: dict[str, list[str]] = {}
    graph = defs.resolve_asset_graph()
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        out.setdefault(defs.resolve_assets_def(key).node_def.name, []).append(key.to_user_string())
    order = [j.step for j in JOBS.values()] + ["ext_tables", "bucketed_tables", "part_tables", "part_addressable_ids_er",
                                              "cleanrooms_report"]
    return dict(sorted(out.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def all_asset_names() -> list[str]:
    return sorted(k for keys in steps().values() for k in keys)


def check_selection(selection: list[str] | None) -> list[str]:
    """Asset keys (``bucketed_ibe_07``, ``split_cluster/ibe_07``) or step names (``ext_tables``: all
    its tables) -> asset keys."""
    names, by_step = all_asset_names(), steps()
    if not selection:
        return names
    unknown = [s for s in selection if s not in names and s not in by_step]
    if unknown:
        raise FlywheelInputError(f"unknown asset(s) {', '.join(unknown)}; choose asset keys (e.g. bucketed_ibe_01, "
                                 f"split_cluster/ibe_01) or steps ({', '.join(by_step)}); `flywheel assets` lists them")
    return sorted({k for s in selection for k in by_step.get(s, [s])})


def job_of(asset: str):
    """The split job writing a split table's asset (``split_cluster/ibe_01``), else None."""
    prefix, _, table = asset.partition("/")
    jobs = [j for j in JOBS.values() if j.key_prefix == prefix]
    return next((j for j in jobs if j.single_table == table), next((j for j in jobs if not j.single_table), None))


def listed_sources(lake: Lake, assets: list[str] | None) -> dict[str, tuple[str, list[str]]]:
    """source -> (how a partition finds its snapshot there, the source's snapshots), for the raw
    sources behind the split tables in ``assets`` (all of them for a catalog-only selection)."""
    jobs = {job_of(a) for a in assets or []} - {None}
    return {src: (match, lake.snapshots(src)) for src, match in lake.raw_sources(jobs or None).items()}


def resolve_run_snapshot(lake: Lake, assets: list[str], requested: str) -> str:
    """The partition to run: an infobase snapshot for which every other selected source has a
    snapshot on or before it ('latest': the newest such)."""
    # Catalog-only selections take the snapshots of the raw sources behind the whole graph.
    listed = listed_sources(lake, assets)
    if requested in ("latest", LATEST):
        dates = partition_dates(listed)
        if not dates:
            detail = "; ".join(f"{s} ({m}): {', '.join(d) or 'none'}" for s, (m, d) in listed.items())
            raise FlywheelInputError(f"no snapshot that every source can serve ({detail})")
        return dates[-1]
    parse_date(requested, "--snapshot")
    problems = unsatisfied(requested, listed)
    if problems:
        raise FlywheelInputError(f"snapshot_dt={requested} cannot be run: " + "; ".join(problems))
    return requested


@dataclass
class StepOutcome:
    step: str
    status: str
    tables: int = 0  # tables materialized
    rows: list[int] = field(default_factory=list)  # rows of each of those tables
    files: int | None = None
    seconds: float | None = None
    error: str | None = None
    failed_checks: list[str] = field(default_factory=list)


def outcomes(instance: DagsterInstance, run_id: str, step_names: list[str]) -> list[StepOutcome]:
    stats = {s.step_key: s for s in instance.get_run_step_stats(run_id)}
    result = {s: StepOutcome(s, "NOT RUN") for s in step_names}
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
        event = record.event_log_entry.dagster_event
        meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        out = result.setdefault(event.step_key, StepOutcome(event.step_key, "SUCCESS"))
        out.status, out.tables = "SUCCESS", out.tables + 1
        if "dagster/row_count" in meta:
            out.rows.append(meta["dagster/row_count"])
        if "files" in meta:
            out.files = (out.files or 0) + meta["files"]
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        out = result.setdefault(event.step_key, StepOutcome(event.step_key, "FAILED"))
        out.status, out.error = "FAILED", step_error_message(event.step_failure_data.error)
    for name, step in stats.items():  # steps that only check (the data monitor)
        if name not in result:
            result[name] = StepOutcome(name, step.status.value if step.status else "NOT RUN")
    checked: dict[str, set] = {}
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
        event, data = record.event_log_entry.dagster_event, record.event_log_entry.dagster_event.asset_check_evaluation_data
        checked.setdefault(event.step_key, set()).add(data.asset_key)
        if event.step_key in result and not data.passed:
            result[event.step_key].failed_checks.append(f"{data.asset_key.to_user_string()}: {data.check_name}")
    for name, keys in checked.items():  # a step that only checks: the tables it checked
        if name in result and not result[name].tables:
            result[name].tables = len(keys)
    for name, outcome in result.items():
        step = stats.get(name)
        if step and step.start_time and step.end_time:
            outcome.seconds = step.end_time - step.start_time
    return list(result.values())


def run_monitor_job(settings: Settings, config: dict) -> tuple[bool, dict | None]:
    """The data monitor now (``flywheel monitor``): the run's success and the report it wrote."""
    from flywheel_assets.monitor import latest_report

    instance = DagsterInstance.get()
    fail_abandoned_runs(instance)
    result = execute_job(reconstructable(data_monitor_job), instance=instance, raise_on_error=False, tags=run_tags(),
                         run_config={**LOGGING, "ops": {"data_monitor": {"config": config}}})
    found = latest_report(settings.analysis_root)
    return result.success, found[1] if found else None


def print_monitor(report: dict) -> None:
    print(f"{'table':<32} {'snapshot':<10} {'age':>5} {'rows':>8} {'nulls':>5} {'dups':>5} {'parts':>5}  problems")
    for t in report["tables"]:
        fmt = lambda v: "-" if v is None else str(v)  # noqa: E731
        parts = "-" if t["partitions_registered"] is None else f"{t['partitions_registered']}/{t['partitions_on_storage']}"
        problems = "; ".join(([t["stale"]] if t["stale"] else []) + t["problems"]) or "ok"
        problems += "".join(f" (warning: {w})" for w in t.get("warnings", []))
        print(f"{t['table']:<32} {fmt(t['snapshot']):<10} {fmt(t['age_days']):>5} {fmt(t['rows']):>8} "
              f"{fmt(t['null_keys']):>5} {fmt(t['duplicate_keys']):>5} {parts:>5}  {problems}")
    print(f"\ndata monitor: {report['status']} as of {report['as_of']} ({len(report['alerts'])} of "
          f"{len(report['tables'])} tables failing)")


def print_summary(snapshot: str, run_id: str, rows: list[StepOutcome]) -> None:
    print(f"\nsnapshot_dt={snapshot}  run {run_id}")
    print(f"{'step':<24} {'status':<8} {'tables':>6} {'rows/table':>11} {'files':>6} {'time':>8}")
    for r in rows:
        fmt = lambda v: "-" if v is None else str(v)  # noqa: E731
        secs = "-" if r.seconds is None else f"{r.seconds:.1f}s"
        per_table = "-" if not r.rows else str(r.rows[0]) if len(set(r.rows)) == 1 else f"{min(r.rows)}-{max(r.rows)}"
        print(f"{r.step:<24} {r.status:<8} {r.tables:>6} {per_table:>11} {fmt(r.files):>6} {secs:>8}")
    for r in rows:
        if r.error:
            print(f"\n{r.step} failed: {r.error.strip()}")
        if r.failed_checks:
            shown = ", ".join(r.failed_checks[:8]) + (", ..." if len(r.failed_checks) > 8 else "")
            print(f"\n{r.step}: {len(r.failed_checks)} checks failed: {shown} (`bin/flywheel status` says why)")
    print("\nnext: bin/flywheel tables | bin/flywheel query \"SELECT ...\" | make ui (this run is there too)")


LOGGING = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
PROCESS_TAG = "flywheel/process"  # host:pid:start of the CLI process that executes a run in-process


def process_identity(pid: int) -> str | None:
    """host:pid:start time, so a pid the system reused for another process is not mistaken for it.
    None if no such process (where /proc is missing, only whether the pid exists is known)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:  # field 22, after the parenthesised command name (which may hold spaces)
            return f"{socket.gethostname()}:{pid}:{stat.read_text().rsplit(')', 1)[1].split()[19]}"
        except (OSError, IndexError):
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"{socket.gethostname()}:{pid}:?"


def run_tags(snapshot: str | None = None) -> dict[str, str]:
    return {**({"dagster/partition": snapshot} if snapshot else {}), PROCESS_TAG: process_identity(os.getpid()) or ""}


def fail_abandoned_runs(instance: DagsterInstance) -> list[str]:
    """A `flywheel run` killed mid-run (kill -9, the OOM killer, a closed laptop lid's lost
    terminal) leaves its run STARTED and its steps' pool slots claimed: every later run of that
    snapshot would be refused as overlapping, and every later run of those steps would wait for the
    slot forever. Runs this machine executed in-process whose process is gone are marked failed
    (so `--retry-failed` can resume them) and their slots freed. Runs launched by a daemon or
    `make ui` carry no such tag: their code server reports a dead worker itself."""
    host = socket.gethostname() + ":"
    failed = []
    for run in instance.get_runs(RunsFilter(statuses=ACTIVE)):
        owner = run.tags.get(PROCESS_TAG, "")
        if not owner.startswith(host) or process_identity(int(owner.split(":")[1])) == owner:
            continue
        instance.report_run_failed(run, f"flywheel: the process that executed this run (pid {owner.split(':')[1]}) "
                                   "is gone; marked failed, its pool slots freed")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        print(f"run {run.run_id} ({run.tags.get('dagster/partition', 'no snapshot')}) was left running by a process "
              "that is gone: marked failed")
        failed.append(run.run_id)
    return failed


def refuse_overlap(instance: DagsterInstance, snapshot: str) -> None:
    """Two runs of the same snapshot never overlap (the run queue enforces it for queued runs)."""
    running = instance.get_runs(RunsFilter(tags={"dagster/partition": snapshot}, statuses=ACTIVE), limit=1)
    if running:
        raise FlywheelInputError(f"snapshot_dt={snapshot} is already being materialized by run {running[0].run_id}")


def start_step_fork_server():
    """Start the fork server the snapshot job's steps are forked from, with STEP_PRELOAD imported
    in it, and return its multiprocessing context; Dagster's executor finds it running."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(STEP_PRELOAD)
    multiprocessing.forkserver.ensure_running()
    return context


def execute_snapshot_job(instance: DagsterInstance, **options):
    """Execute the snapshot job in this process, the fork server started first: its imports (about
    2 s) then overlap Dagster planning the run (about 3 s of events) instead of delaying the first
    steps."""
    start_step_fork_server()
    return execute_job(reconstructable(flywheel_snapshot_job), instance=instance, raise_on_error=False, **options)


def run_snapshot(settings: Settings, requested: str, selection: list[str] | None = None,
                 run_config: dict | None = None) -> bool:
    """Register the snapshot as a partition and materialize the selection for it."""
    assets = check_selection(selection)
    lake = Lake(data_root=settings.data_root)
    snapshot = resolve_run_snapshot(lake, assets, requested)
    instance = DagsterInstance.get()
    fail_abandoned_runs(instance)
    refuse_overlap(instance, snapshot)
    if not instance.has_dynamic_partition(snapshot_partitions.name, snapshot):
        instance.add_dynamic_partitions(snapshot_partitions.name, [snapshot])
    chosen = [s for s, keys in steps().items() if set(keys) & set(assets)]  # in run order
    print(f"materializing {len(assets)} assets in {len(chosen)} steps for snapshot_dt={snapshot} "
          f"(instance {settings.dagster_home})")
    # The whole job unless a selection narrows it: each step process then loads the job as
    # defined instead of building a subset of it (about 0.3 CPU-s a step).
    whole = set(assets) == set(all_asset_names())
    result = execute_snapshot_job(
        instance,
        asset_selection=None if whole else [AssetKey.from_user_string(a) for a in assets],
        tags=run_tags(snapshot),
        run_config={**LOGGING, "ops": {k: v for k, v in (run_config or {}).get("ops", {}).items() if k in chosen}},
    )
    print_summary(snapshot, result.run_id, outcomes(instance, result.run_id, chosen))
    return result.success


def retry_failed(settings: Settings, requested: str) -> bool:
    """Re-execute the snapshot's latest failed run from failure: only what failed and downstream."""
    snapshot = parse_date(requested, "--snapshot")
    instance = DagsterInstance.get()
    fail_abandoned_runs(instance)
    runs = instance.get_runs(RunsFilter(tags={"dagster/partition": snapshot}), limit=1)
    if not runs or runs[0].status != DagsterRunStatus.FAILURE:
        state = runs[0].status.value if runs else "no runs"
        raise FlywheelInputError(f"the latest run of snapshot_dt={snapshot} did not fail ({state}); nothing to retry")
    refuse_overlap(instance, snapshot)
    parent = runs[0]
    result = execute_snapshot_job(
        instance,
        run_config=parent.run_config,
        tags=run_tags(snapshot),
        reexecution_options=ReexecutionOptions.from_failure(parent.run_id, instance),
    )
    stats = instance.get_run_step_stats(result.run_id)
    print_summary(snapshot, result.run_id, outcomes(instance, result.run_id, sorted(s.step_key for s in stats)))
    return result.success


def backfill(settings: Settings, date_from: str | None, date_to: str | None, listed: list[str] | None,
             selection: list[str] | None = None, run_config: dict | None = None) -> bool:
    """One run per snapshot, oldest first, each like `flywheel run`. Snapshots older than the one the
    bucketed pipeline currently holds get only the partitioned pipeline (no rollback)."""
    assets = check_selection(selection)
    lake = Lake(data_root=settings.data_root)
    if listed:
        snapshots = sorted({parse_date(d, "--snapshots") for d in listed})
    else:
        if not (date_from and date_to):
            raise FlywheelInputError("give --from and --to, or --snapshots")
        lo, hi = parse_date(date_from, "--from"), parse_date(date_to, "--to")
        snapshots = [d for d in partition_dates(listed_sources(lake, assets)) if lo <= d <= hi]
        if not snapshots:
            raise FlywheelInputError(f"no snapshot between {lo} and {hi} that every source can serve")
    from flywheel_assets.automation import for_late_snapshot, published_bucket_snapshot

    late = {k.to_user_string() for k in for_late_snapshot(defs.resolve_asset_graph())}
    results = {}
    for snapshot in snapshots:
        current = published_bucket_snapshot(lake)
        chosen = assets
        if current and snapshot < current:
            chosen = [a for a in assets if a in late]
            print(f"snapshot_dt={snapshot} is older than the bucketed pipeline's {current}: partitioned pipeline "
                  "only, without Entity Resolution's input (tables holding one current snapshot are not rolled back)")
        results[snapshot] = run_snapshot(settings, snapshot, chosen, run_config) if chosen else True
    print("\nbackfill: " + ", ".join(f"{d} {'ok' if ok else 'FAILED'}" for d, ok in results.items()))
    return all(results.values())
