"""The graph running itself: a sensor that turns complete raw snapshots into partitions and runs.

A snapshot is ready when the infobase source has its ``snapshot_dt=`` folder, every other raw
source has a snapshot on or before it (sources land on different days), and each folder used is
complete: it holds a ``_SUCCESS`` marker, or (for writers that leave none) data files and nothing
written for a quiet period, and no ``_temporary/`` folder. Each snapshot triggers once: the cursor
remembers every snapshot handled, so a late snapshot (older than the newest) is still picked up.
"""

from __future__ import annotations

import json
import time

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from flywheel_assets.core import storage
from flywheel_assets.core.jobs import BUCKETED_PIPELINE, JOBS
from flywheel_assets.core.snapshots import partition_dates, snapshot_path, source_snapshots
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.pipelines.keys import RAW_GROUP
from flywheel_assets.pipelines.partitioned import ER_TABLE
from flywheel_assets.resources import Lake
from flywheel_assets.settings import get_settings

SUCCESS_MARKER = "_SUCCESS"
# The current-snapshot layout's infobase target: the snapshot the bucketed pipeline holds.
BUCKETED_TARGET = next(j for j in JOBS.values() if j.pipeline == BUCKETED_PIPELINE and not j.single_table)


def is_complete(lake: Lake, folder: str, quiet_seconds: float, now: float) -> bool:
    entries = lake.list_dir(folder)
    names = {e.name for e in entries}
    if "_temporary" in names:
        return False
    if SUCCESS_MARKER in names:
        return True
    files = [e for e in entries if not e.is_dir and not storage.is_hidden(e.name)]
    return bool(files) and max(e.mtime for e in files) <= now - quiet_seconds


def ready_snapshots(lake: Lake, handled: set[str], quiet_seconds: float, now: float) -> list[str]:
    """Partitions not yet handled that every source can serve with a complete snapshot, oldest
    first: the infobase snapshot itself, and each other source's newest on or before it (a source
    still writing that one is waited for).

    One delimiter listing per source, plus a listing of each snapshot folder a candidate uses."""
    listed = {src: (match, lake.snapshots(src)) for src, match in lake.raw_sources().items()}
    ready = []
    for date in partition_dates(listed):
        if date in handled:
            continue
        used = source_snapshots(date, listed)
        if all(is_complete(lake, snapshot_path(src, found), quiet_seconds, now) for src, found in used.items()):
            ready.append(date)
    return ready


def published_bucket_snapshot(lake: Lake) -> str | None:
    """The snapshot the bucketed pipeline's current tables hold (one at a time)."""
    return lake.current_snapshot(BUCKETED_TARGET)


def for_late_snapshot(graph) -> list[AssetKey]:
    """What a snapshot older than the bucketed pipeline's current one gets, of the asset graph:
    the partitioned pipeline's snapshot-folder tables and reports, not the tables that hold one
    current snapshot (the bucketed pipeline, Entity Resolution's input), which are never rolled
    back by a late snapshot."""
    return [k for k in graph.get_all_asset_keys()
            if graph.get(k).group_name not in (BUCKETED_PIPELINE, RAW_GROUP) and k != AssetKey(ER_TABLE)]


def run_request(snapshot: str, current: str | None, late: list[AssetKey]) -> RunRequest:
    """The whole graph, or for a late snapshot (older than the bucketed pipeline's current one)
    only the ``late`` assets (``for_late_snapshot``)."""
    if current and snapshot < current:
        return RunRequest(partition_key=snapshot, run_key=snapshot, asset_selection=late,
                          tags={"flywheel/late_snapshot": "true"})
    return RunRequest(partition_key=snapshot, run_key=snapshot)


def build_sensor(job):
    @sensor(job=job, minimum_interval_seconds=get_settings().sensor_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING,
            description="Adds each complete new raw snapshot as a snapshot_dt partition and runs the graph for it.")
    def raw_snapshot_sensor(context: SensorEvaluationContext, lake: Lake):
        handled = set(json.loads(context.cursor)) if context.cursor else set()
        quiet = get_settings().snapshot_quiet_seconds
        new = ready_snapshots(lake, handled, quiet, time.time())
        # registered by hand (flywheel run / the UI): whoever registered it runs it
        known = set(context.instance.get_dynamic_partitions(snapshot_partitions.name))
        to_run = [d for d in new if d not in known]
        cursor = json.dumps(sorted(handled | set(new)))
        if not to_run:
            return SensorResult(skip_reason=SkipReason(f"no new complete snapshot in {len(lake.raw_sources())} sources"),
                                cursor=cursor)
        current = published_bucket_snapshot(lake)
        late = for_late_snapshot(context.repository_def.asset_graph)
        return SensorResult(
            run_requests=[run_request(d, current, late) for d in to_run],
            dynamic_partitions_requests=[snapshot_partitions.build_add_request(to_run)],
            cursor=cursor,
        )

    return raw_snapshot_sensor
