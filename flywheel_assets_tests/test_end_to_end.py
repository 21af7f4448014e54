"""`flywheel run` as a user runs it, on a lake the sample generator never produced.

Production's formats with other content: a mapping with the production header, BOM, CRLF and
quoted descriptions (one table without its key row), uppercase source columns, three snapshots
written out of date order, addressable sources landing a day before the infobase and no
addressable mapping; the part pipeline's mapping in the short reversed-header format. The Spark
jobs run in subprocesses through Dagster Pipes on the project's local instance.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

from flywheel_assets import settings
from flywheel_assets.core import publish
from flywheel_assets_tests.conftest import SECRETS, leaked

SNAPSHOTS = ["2023-11-30", "2024-06-01", "2024-02-29"]  # not written in date order
ROWS = 120
GROUPS = {"Seg_Alpha": ["SCORE_A", "FLAG_A"], "Seg_Beta": ["SPEND_B", "VISIT_DATE_B", "TIER_B"],
          "Seg_Gamma": ["NOTE_G"]}
KEYLESS = "Seg_Gamma"  # listed without its customer_user_id row
UNMAPPED = ["Legacy Field $"]


def day_before(date: str) -> str:
    return (dt.date.fromisoformat(date) - dt.timedelta(days=1)).isoformat()


def infobase(snapshot_index: int) -> pa.Table:
    n = ROWS + snapshot_index  # each snapshot has a different row count
    return pa.table({
        "Customer_User_id": [f"id-{snapshot_index}-{i}" for i in range(n)],
        "SCORE_A": [i * 1.5 for i in range(n)],
        "FLAG_A": [i % 2 == 0 for i in range(n)],
        "SPEND_B": [i * 10 for i in range(n)],
        "VISIT_DATE_B": pa.array([19000 + i for i in range(n)], pa.int32()).cast(pa.date32()),
        "TIER_B": [None if i % 7 == 0 else "gold" for i in range(n)],
        "NOTE_G": [f"n{i}" for i in range(n)],
        "Legacy Field $": [0] * n,
    })


def addressable(snapshot_index: int) -> pa.Table:
    n = ROWS + snapshot_index
    return pa.table({"Customer_User_Id": [f"id-{snapshot_index}-{i}" for i in range(n)],
                     "Device_Id": [f"d{i}" for i in range(n)], "Email_SHA256": [f"e{i}" for i in range(n)]})


def write(folder: Path, table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), folder / "a.parquet")
    pq.write_table(table.slice(half), folder / "b.parquet")


@pytest.fixture(scope="module")
def unseen_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unseen") / "lake"
    for i, snap in enumerate(SNAPSHOTS):
        write(root / settings.INFOBASE_RAW / f"snapshot_dt={snap}", infobase(i))
        write(root / settings.ADDRESSABLE_COMPACTION / f"snapshot_dt={day_before(snap)}", addressable(i))
        write(root / settings.ADDRESSABLE_RAW / f"snapshot_dt={day_before(snap)}", addressable(i))
    (root / settings.INFOBASE_RAW / "_temporary").mkdir()
    (root / settings.INFOBASE_RAW / "snapshot_dt=not-a-date").mkdir()
    rows = [(t, c) for t, cols in GROUPS.items() for c in cols]
    production = ["OMC_FLYWHEEL_TABLE,OMC_FLYWHEEL_COLUMN,FUNCTION_DESCRIPTION,OPUS_COLUMN,ELEMENT_NUMBER"]
    for table in GROUPS:
        if table != KEYLESS:
            production.append(f"{table},customer_user_id,Customer User ID,CUSTOMER_USER_ID,CUSTOMER_BASE_ID")
        production += [f'{table},{c.lower()},"Segment {table}, column {c}",{c},{i}' for i, c in enumerate(GROUPS[table])]
    (root / settings.INFOBASE_BUCKET_MAPPING).write_bytes(("\r\n".join(production) + "\r\n").encode("utf-8-sig"))
    (root / settings.INFOBASE_PART_MAPPING).write_text(
        "column_name,table_name\n" + "".join(f"{c.lower()},{t.lower()}_a\n" for t, c in rows))
    return root  # no addressable mapping, as in production: the addressable tables take every column


def flywheel(home: Path, lake: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # FLYWHEEL_SPARK_REMOTE (set by the spark_url fixture) shares the test process's Spark server
    # a credentialed environment: test_no_credentials_anywhere looks for them in everything written
    env = {**os.environ, **SECRETS, "FLYWHEEL_HOME": str(home), "FLYWHEEL_DATA_ROOT": str(lake), "FLYWHEEL_ENV": "local",
           "FLYWHEEL_DATABASE": "e2e_" + home.name.replace("-", "_").lower()}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-m", "flywheel_assets.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def latest_run(unseen_lake, tmp_path_factory, spark_url):
    home = tmp_path_factory.mktemp("home")
    proc = flywheel(home, unseen_lake, "run", "--snapshot", "latest")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return home, proc


def test_every_row_and_mapped_column_in_every_table(unseen_lake, latest_run):
    latest, n = "2024-06-01", ROWS + 1
    ids = {f"id-1-{i}" for i in range(n)}
    cluster = unseen_lake / settings.SPLIT_CLUSTER_INFOBASE
    assert sorted(p.name for p in cluster.iterdir()) == ["Seg_Alpha", "Seg_Beta", "Seg_Gamma", "metadata"]
    assert (cluster / "metadata" / "snapshot_dt.txt").read_text().strip() == latest
    part = unseen_lake / settings.SPLIT_PART_INFOBASE
    for table, columns in GROUPS.items():
        lowered = ["customer_user_id", *[c.lower() for c in columns]]
        held = cluster / publish.current(str(cluster)).tables[table]  # the version ext_tables switched to
        for folder in (held, part / f"{table.lower()}_a" / f"snapshot_dt={latest}"):
            out = pq.read_table(folder)
            assert out.column_names == lowered
            assert set(out.column("customer_user_id").to_pylist()) == ids and out.num_rows == n
    assert sorted(p.name for p in part.iterdir()) == ["seg_alpha_a", "seg_beta_a", "seg_gamma_a"]
    ad_root = unseen_lake / settings.SPLIT_CLUSTER_ADDRESSABLE
    ad = pq.read_table(ad_root / publish.current(str(ad_root)).tables["addressable_ids"])
    assert ad.column_names == ["customer_user_id", "device_id", "email_sha256"] and ad.num_rows == n
    metadata = unseen_lake / settings.SPLIT_CLUSTER_ADDRESSABLE / "metadata"
    assert (metadata / "snapshot_dt.txt").read_text().strip() == latest  # the partition
    assert (metadata / "source_snapshot_dt.txt").read_text().strip() == day_before(latest)  # what was read
    ad_part = pq.read_table(unseen_lake / settings.SPLIT_PART_ADDRESSABLE / f"snapshot_dt={latest}")
    assert ad_part.column_names == ["customer_user_id", "device_id", "email_sha256"] and ad_part.num_rows == n


def test_summary_and_instance_record_the_run(latest_run):
    home, proc = latest_run
    assert "snapshot_dt=2024-06-01" in proc.stdout
    logged = proc.stdout + proc.stderr  # a clean run logs no error, not even a handled one
    assert not [l for l in logged.splitlines() if '"level": "ERROR"' in l or " - ERROR - " in l or "Traceback" in l]
    for asset in ("infobase_split", "addressable_bucket", "infobase_split_part", "addressable_split_part"):
        line = next(l for l in proc.stdout.splitlines() if l.startswith(asset + " "))
        tables = 1 if "addressable" in asset else 3
        assert line.split()[1:4] == ["SUCCESS", str(tables), str(ROWS + 1)], line
    instance = DagsterInstance.from_config(str(home / "dagster"))
    assert instance.get_dynamic_partitions("snapshot_dt") == ["2024-06-01"]
    for table in GROUPS:  # one asset per table, with Dagster's standard table metadata
        event = instance.get_latest_materialization_event(AssetKey(["split_cluster", table.lower()]))
        meta = event.asset_materialization.metadata
        assert event.asset_materialization.partition == "2024-06-01"
        assert meta["dagster/row_count"].value == meta["source_rows"].value == ROWS + 1
        assert meta["unmapped_columns"].value == ["Legacy Field $"] and meta["unmapped_source_columns"].value == 1
        assert [c.name for c in meta["dagster/column_schema"].value.columns] == [
            "customer_user_id", *[c.lower() for c in GROUPS[table]]]
    bucketed = instance.get_latest_materialization_event(AssetKey("bucketed_seg_alpha")).asset_materialization
    assert bucketed.metadata["dagster/row_count"].value == ROWS + 1
    assert bucketed.metadata["dagster/table_name"].value.endswith(".bucketed_seg_alpha")


def test_run_select_one_table_rebuilds_that_table_alone(unseen_lake, latest_run):
    from flywheel_assets.catalog.local import LocalCatalog
    from flywheel_assets.local_spark import LocalSpark

    home, _ = latest_run
    catalog = LocalCatalog(database="e2e_" + home.name.replace("-", "_").lower(),
                           server=LocalSpark(home="unused", remote=os.environ["FLYWHEEL_SPARK_REMOTE"]))
    before = {t.name: t.location for t in catalog.list_tables(catalog.database, "bucketed_")}
    split_before = sorted((str(p), p.stat().st_mtime_ns) for p in (unseen_lake / settings.SPLIT_CLUSTER_INFOBASE).rglob("*"))
    proc = flywheel(home, unseen_lake, "run", "--snapshot", "2024-06-01", "--select", "bucketed_seg_beta")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "materializing 1 assets in 1 steps" in proc.stdout
    after = {t.name: t.location for t in catalog.list_tables(catalog.database, "bucketed_")}
    assert {n for n in after if after[n] != before[n]} == {"bucketed_seg_beta"}  # a fresh version of that one only
    assert sorted((str(p), p.stat().st_mtime_ns)
                  for p in (unseen_lake / settings.SPLIT_CLUSTER_INFOBASE).rglob("*")) == split_before


def test_selecting_one_split_table_runs_the_job_for_that_table_only(unseen_lake, latest_run):
    home, _ = latest_run
    part = unseen_lake / settings.SPLIT_PART_INFOBASE
    before = {t.name: sorted(p.stat().st_mtime_ns for p in (t / "snapshot_dt=2024-06-01").iterdir())
              for t in part.iterdir() if t.is_dir()}
    proc = flywheel(home, unseen_lake, "run", "--snapshot", "2024-06-01", "--select", "split_part/seg_beta_a")
    assert proc.returncode == 0, proc.stdout[-3000:]
    after = {t.name: sorted(p.stat().st_mtime_ns for p in (t / "snapshot_dt=2024-06-01").iterdir())
             for t in part.iterdir() if t.is_dir()}
    assert {t for t in after if after[t] != before[t]} == {"seg_beta_a"}
    instance = DagsterInstance.from_config(str(home / "dagster"))
    run = instance.get_runs(limit=1)[0]
    mats = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    assert [r.asset_materialization.asset_key.to_user_string() for r in mats] == ["split_part/seg_beta_a"]


def test_a_killed_run_is_marked_failed_and_its_pool_slot_freed_by_the_next(unseen_lake, latest_run):
    """kill -9 of `flywheel run` while a current-snapshot split step (one pool slot) runs: the next
    run of that snapshot and step is neither refused as overlapping nor left waiting for the slot."""
    import signal
    import time

    home, _ = latest_run
    env = {**os.environ, "FLYWHEEL_HOME": str(home), "FLYWHEEL_DATA_ROOT": str(unseen_lake), "FLYWHEEL_ENV": "local",
           "FLYWHEEL_DATABASE": "e2e_" + home.name.replace("-", "_").lower()}
    env.pop("DAGSTER_HOME", None)
    args = ["run", "--snapshot", "2024-06-01", "--select", "split_cluster/seg_beta"]
    proc = subprocess.Popen([sys.executable, "-m", "flywheel_assets.cli", *args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    instance = DagsterInstance.from_config(str(home / "dagster"))
    started = lambda: [r for r in instance.get_runs(limit=1) if r.status.value == "STARTED"  # noqa: E731
                       and instance.get_records_for_run(r.run_id, of_type=DagsterEventType.STEP_START).records]
    deadline = time.time() + 120
    while not started() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    killed = started()
    assert killed, "the run never reached its split step"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert instance.event_log_storage.get_concurrency_run_ids() == {killed[0].run_id}  # its slot is still held

    again = flywheel(home, unseen_lake, *args, timeout=240)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"run {killed[0].run_id} (2024-06-01) was left running by a process that is gone: marked failed" in again.stdout
    assert instance.get_run_by_id(killed[0].run_id).status.value == "FAILURE"
    assert not instance.event_log_storage.get_concurrency_run_ids()


def test_older_snapshot_adds_a_partition_and_keeps_the_newer(unseen_lake, latest_run):
    home, _ = latest_run
    newer = unseen_lake / settings.SPLIT_PART_ADDRESSABLE / "snapshot_dt=2024-06-01"
    before = sorted((p.name, p.stat().st_mtime_ns) for p in newer.iterdir())
    proc = flywheel(home, unseen_lake, "run", "--snapshot", "2023-11-30", "--select", "addressable_split_part")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert pq.read_table(unseen_lake / settings.SPLIT_PART_ADDRESSABLE / "snapshot_dt=2023-11-30").num_rows == ROWS
    assert sorted((p.name, p.stat().st_mtime_ns) for p in newer.iterdir()) == before
    instance = DagsterInstance.from_config(str(home / "dagster"))
    assert sorted(instance.get_dynamic_partitions("snapshot_dt")) == ["2023-11-30", "2024-06-01"]


def test_bad_mapping_fails_clearly_and_changes_nothing(unseen_lake, latest_run, tmp_path):
    home, _ = latest_run
    cluster = unseen_lake / settings.SPLIT_CLUSTER_INFOBASE
    before = sorted((str(p), p.stat().st_mtime_ns) for p in cluster.rglob("*"))
    mapping = unseen_lake / settings.INFOBASE_BUCKET_MAPPING
    good = mapping.read_bytes()
    try:
        mapping.write_bytes(good + b"Seg_Alpha,score_a,\"dup, again\",SCORE_A,9\r\n")
        proc = flywheel(home, unseen_lake, "run", "--select", "infobase_split")
    finally:
        mapping.write_bytes(good)
    assert proc.returncode == 1
    assert "infobase_split   " in proc.stdout and "FAILED" in proc.stdout
    assert f"{mapping}, line 10: column 'score_a' listed twice for table Seg_Alpha (first on line 3)" in proc.stdout
    assert sorted((str(p), p.stat().st_mtime_ns) for p in cluster.rglob("*")) == before


def test_missing_snapshot_is_refused_before_any_run(unseen_lake, tmp_path, spark_url):
    proc = flywheel(tmp_path / "home", unseen_lake, "run", "--snapshot", "2024-01-01")
    assert proc.returncode == 2
    assert "snapshot_dt=2024-01-01 cannot be run: " in proc.stderr
    assert "infobase_attributes/raw_input has no snapshot_dt=2024-01-01 (it has: 2023-11-30, 2024-02-29, 2024-06-01)" in proc.stderr
    assert not (tmp_path / "home" / "dagster" / "storage").exists() or not DagsterInstance.from_config(
        str(tmp_path / "home" / "dagster")).get_dynamic_partitions("snapshot_dt")


def test_concurrent_runs_share_the_local_catalog(unseen_lake, latest_run):
    """Two runs at once (as the UI launches them) both reach the one metastore through the server."""
    home, _ = latest_run
    env = {**os.environ, "FLYWHEEL_HOME": str(home), "FLYWHEEL_DATA_ROOT": str(unseen_lake),
           "FLYWHEEL_DATABASE": "e2e_" + home.name.replace("-", "_").lower()}
    select = "infobase_split_part,addressable_split_part,part_tables"
    procs = [subprocess.Popen([sys.executable, "-m", "flywheel_assets.cli", "run", "--snapshot", snap, "--select", select],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for snap in ("2023-11-30", "2024-02-29")]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    from flywheel_assets.catalog.local import LocalCatalog
    from flywheel_assets.local_spark import LocalSpark

    catalog = LocalCatalog(database=env["FLYWHEEL_DATABASE"], server=LocalSpark(home="unused", remote=os.environ["FLYWHEEL_SPARK_REMOTE"]))
    for table in ("part_seg_alpha_a", "part_addressable_ids"):
        for snap in ("2023-11-30", "2024-02-29", "2024-06-01"):
            assert catalog.has_partition(catalog.database, table, snap), (table, snap)
    rows = catalog.query(f"SELECT snapshot_dt, count(*) FROM {catalog.database}.part_seg_alpha_a GROUP BY 1 ORDER BY 1")[1]
    assert rows == [("2023-11-30", ROWS), ("2024-02-29", ROWS + 2), ("2024-06-01", ROWS + 1)]


@pytest.fixture(scope="module")
def backfilled(unseen_lake, tmp_path_factory, spark_url):
    home = tmp_path_factory.mktemp("backfill-home")
    lake = tmp_path_factory.mktemp("backfill-lake") / "lake"
    import shutil

    shutil.copytree(unseen_lake, lake)
    for split_root in ("omc_cleanroom_data/split_cluster", "omc_cleanroom_data/split_part",
                       "omc_cleanroom_data/cleanroom_tables"):
        shutil.rmtree(lake / split_root, ignore_errors=True)
    config = home / "small-buckets.yaml"
    config.write_text("ops:\n  bucketed_tables:\n    config:\n      bucket_count: 8\n")
    proc = flywheel(home, lake, "backfill", "--from", "2023-01-01", "--to", "2024-12-31", "--config", str(config))
    return home, lake, proc


def test_backfill_of_three_snapshots_materializes_and_registers_all(backfilled):
    home, lake, proc = backfilled
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "backfill: 2023-11-30 ok, 2024-02-29 ok, 2024-06-01 ok" in proc.stdout
    instance = DagsterInstance.from_config(str(home / "dagster"))
    assert sorted(instance.get_dynamic_partitions("snapshot_dt")) == ["2023-11-30", "2024-02-29", "2024-06-01"]
    for asset in ("split_cluster/seg_beta", "ext_seg_beta", "bucketed_seg_beta", "split_part/seg_beta_a",
                  "part_seg_beta_a", "part_addressable_ids", "part_addressable_ids_er", "cleanrooms_report"):
        partitions = instance.get_materialized_partitions(AssetKey.from_user_string(asset))
        assert partitions == {"2023-11-30", "2024-02-29", "2024-06-01"}, asset
    from flywheel_assets.catalog.local import LocalCatalog
    from flywheel_assets.local_spark import LocalSpark

    catalog = LocalCatalog(database="e2e_" + home.name.replace("-", "_").lower(),
                           server=LocalSpark(home="unused", remote=os.environ["FLYWHEEL_SPARK_REMOTE"]))
    tables = {t.name: t for t in catalog.list_tables(catalog.database)}
    assert tables["part_seg_beta_a"].partitions == 3 and tables["part_addressable_ids"].partitions == 3
    assert tables["bucketed_seg_beta"].snapshot == "2024-06-01"  # the current tables hold the newest
    assert tables["bucketed_seg_beta"].num_buckets == 8  # run config from --config
    assert catalog.query(f"SELECT count(*) FROM {catalog.database}.bucketed_seg_beta")[1][0][0] == ROWS + 1


def test_older_backfill_leaves_the_bucketed_pipeline_alone(backfilled):
    home, lake, _ = backfilled
    proc = flywheel(home, lake, "backfill", "--snapshots", "2023-11-30", "--config", str(home / "small-buckets.yaml"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "older than the bucketed pipeline's 2024-06-01: partitioned pipeline only" in proc.stdout
    assert (lake / settings.SPLIT_CLUSTER_INFOBASE / "metadata" / "snapshot_dt.txt").read_text().strip() == "2024-06-01"
    instance = DagsterInstance.from_config(str(home / "dagster"))
    steps = {s.step_key for s in instance.get_run_step_stats(instance.get_runs(limit=1)[0].run_id)}
    assert "part_tables" in steps and "part_addressable_ids_er" not in steps
    # asked for by name, Entity Resolution's input refuses to go back to the older snapshot
    proc = flywheel(home, lake, "run", "--snapshot", "2023-11-30", "--select", "part_addressable_ids_er")
    assert proc.returncode == 1
    assert "holds snapshot_dt=2024-06-01, newer than 2023-11-30" in proc.stdout + proc.stderr


def test_retry_failed_reruns_only_what_failed_and_downstream(backfilled):
    home, lake, _ = backfilled
    mapping = lake / settings.INFOBASE_BUCKET_MAPPING
    good = mapping.read_bytes()
    mapping.write_bytes(good + b"Seg_Alpha,no_such_column,x,NO_SUCH_COLUMN,1\r\n")
    try:
        failed = flywheel(home, lake, "run", "--snapshot", "2024-06-01", "--config", str(home / "small-buckets.yaml"))
    finally:
        mapping.write_bytes(good)
    assert failed.returncode == 1
    statuses = {}
    for line in failed.stdout.splitlines():
        words = line.split()
        if words[:1] and words[0] in ("infobase_split", "ext_tables", "bucketed_tables", "part_tables"):
            statuses.setdefault(words[0], words[1])
    assert statuses == {"infobase_split": "FAILED", "ext_tables": "NOT", "bucketed_tables": "NOT", "part_tables": "SUCCESS"}
    retry = flywheel(home, lake, "run", "--snapshot", "2024-06-01", "--retry-failed")
    assert retry.returncode == 0, retry.stdout[-3000:]
    instance = DagsterInstance.from_config(str(home / "dagster"))
    run = instance.get_runs(limit=1)[0]
    assert run.parent_run_id is not None
    assert sorted(s.step_key for s in instance.get_run_step_stats(run.run_id)) == [
        "bucketed_tables", "data_monitor", "ext_tables", "infobase_split"]  # the monitor waits for them


def test_run_writes_the_readiness_report_locally(latest_run):
    import csv
    import json

    home, _ = latest_run
    files = sorted((home / "analysis" / "cleanrooms-reports").iterdir())
    assert len(files) == 3
    report = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    assert report["sections"]["tables"]["status"] == "ok"
    assert report["sections"]["configured_tables"]["status"] == "not_queried"
    rows = list(csv.DictReader(next(f for f in files if f.name.endswith("_Tables.csv")).open()))
    assert sorted(r["table_name"] for r in rows) == ["part_addressable_ids", "part_addressable_ids_er", "part_seg_alpha_a",
                                                     "part_seg_beta_a", "part_seg_gamma_a"]
    identity = {r["table_name"]: r["ready_for_analysis"] for r in rows if "addressable" in r["table_name"]}
    assert identity == {"part_addressable_ids": "excluded", "part_addressable_ids_er": "excluded"}


def test_no_credentials_anywhere(unseen_lake, latest_run):
    """Run, Pipes messages, event log, compute logs, report, lake: none holds the environment's keys."""
    home, proc = latest_run
    assert leaked({"stdout": proc.stdout, "stderr": proc.stderr}, home) == []
    assert leaked({}, unseen_lake) == []
    assert any((home / "dagster").rglob("*.db"))  # the event log was searched
