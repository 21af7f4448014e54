"""Failures never damage what is published: a killed split job, an interrupted publication, reruns."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flywheel_assets import settings
from flywheel_assets.core import publish, storage
from flywheel_assets_tests.test_split_jobs import LATEST, OLDEST, paths, split


def fingerprint(folder: Path, skip: str | None = None) -> dict[str, str]:
    """relative path -> sha256 of every file below folder, but in folders whose name starts with
    ``skip`` (a killed job's version, which its Spark job may still be writing and deleting)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not (skip and d.startswith(skip)))
        for name in files:
            path = Path(root) / name
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def rows(folder: Path) -> list[dict]:
    return sorted(pq.read_table(folder).to_pylist(), key=lambda r: r["customer_user_id"])


def source_rows(lake: Path, snapshot: str, columns: list[str]) -> list[dict]:
    table = pq.read_table(lake / settings.INFOBASE_RAW / f"snapshot_dt={snapshot}")
    by_lower = {c.lower(): c for c in table.column_names}
    table = table.select([by_lower[c] for c in columns]).rename_columns(columns)
    return sorted(table.to_pylist(), key=lambda r: r["customer_user_id"])


def versions(target: Path) -> dict[str, set[str]]:
    return {t.name: {v.name for v in t.iterdir()} for t in target.iterdir() if t.is_dir() and t.name != "metadata"}


def test_split_job_killed_mid_write_leaves_the_published_snapshot_then_rerun_completes(spark, lake):
    target = lake / settings.SPLIT_CLUSTER_INFOBASE
    split(spark, lake, "infobase_split_and_bucket", snapshot=OLDEST)
    publish.switch(str(target), publish.staged(str(target)))  # what ext_tables does
    published, held = fingerprint(target), versions(target)
    p = paths(lake)
    script = Path(publish.__file__).parent.parent / "spark_jobs" / "scripts" / "infobase_split_and_bucket.py"
    job = subprocess.Popen([sys.executable, str(script), "--SNAPSHOT_DT", LATEST, "--SOURCE_PATH", p["ib_raw"],
                            "--TARGET_PATH", p["cluster_ib"], "--CSV_FILE", p["bucket_csv"]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(v.startswith(f"v{LATEST}_") for vs in versions(target).values() for v in vs):
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before writing"
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()

    assert fingerprint(target, skip=f"v{LATEST}_") == published  # nothing changed
    assert publish.current(str(target)).snapshot_dt == OLDEST and publish.staged(str(target)) is None
    ibe_01 = rows(target / publish.current(str(target)).tables["IBE_01"])  # still readable: the old snapshot, whole
    assert ibe_01 == source_rows(lake, OLDEST, list(ibe_01[0]))

    result = split(spark, lake, "infobase_split_and_bucket", snapshot=LATEST)  # the rerun completes it
    assert result.published and publish.staged(str(target)).snapshot_dt == LATEST
    publish.switch(str(target), publish.staged(str(target)))
    assert (target / "metadata" / "snapshot_dt.txt").read_text().strip() == LATEST
    current = publish.current(str(target))
    for table in result.tables:
        out = rows(target / current.tables[table.name])
        assert out == source_rows(lake, LATEST, list(out[0]))
    # The replaced snapshot's versions stay for readers still on it; the killed run's go with the
    # next split's orphan removal. Locally the killed client's Spark job may still be writing in
    # the server for a few seconds (on Glue the driver dies with the job), so wait for it to end.
    expected = {t: held[t] | {current.tables[t].split("/")[1]} for t in held}
    deadline = time.monotonic() + 60
    while versions(target) != expected and time.monotonic() < deadline:
        publish.remove_orphans(str(target))
        time.sleep(1)
    assert versions(target) == expected


def test_rerunning_a_snapshot_gives_the_same_rows_and_files(spark, lake):
    target = lake / settings.SPLIT_PART_INFOBASE

    def published() -> dict[str, tuple[list[dict], int]]:  # table -> (rows, data files) of the snapshot
        out = {}
        for t in target.iterdir():
            folder = Path(publish.data_folder(str(t / f"snapshot_dt={LATEST}")))
            out[t.name] = (rows(folder), len(list(folder.glob("*.parquet"))))
        return out

    split(spark, lake, "infobase_split_and_part", snapshot=LATEST)
    first = published()
    split(spark, lake, "infobase_split_and_part", snapshot=LATEST)  # re-published into a version
    assert all(Path(publish.data_folder(str(t / f"snapshot_dt={LATEST}"))).name.startswith("_v") for t in target.iterdir())
    assert published() == first


@pytest.fixture(params=["local", "s3"])
def target(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "target")
    request.getfixturevalue("aws_env")
    storage.s3_client().create_bucket(Bucket="lake")
    return "s3://lake/split"


def put(uri: str, text: str) -> None:
    storage.write_text(uri, text)


def listing(root: str) -> dict[str, str]:
    """relative file -> text, under root (local or S3)."""
    if storage.is_s3(root):
        bucket, key = storage.split_s3(root)
        objects = storage.s3_client().list_objects_v2(Bucket=bucket, Prefix=key + "/").get("Contents", [])
        # zero-byte "folder/" markers (pyarrow keeps a folder it emptied, as the S3 console does) hold no data
        return {o["Key"][len(key) + 1:]: storage.read_text(f"s3://{bucket}/{o['Key']}") for o in objects
                if not (o["Key"].endswith("/") and o["Size"] == 0)}
    return {str(p.relative_to(root)): p.read_text() for p in Path(root).rglob("*") if p.is_file()}


def test_publication_interrupted_after_commit_is_rolled_forward(target):
    """Snapshot-folder layout: a re-published snapshot's version is pointed at by the run's commit,
    finished by the next run if interrupted; a run that did not commit has its folders removed."""
    put(f"{target}/IBE_01/snapshot_dt=2024-02-01/part-old.parquet", "old 1")
    put(f"{target}/IBE_02/snapshot_dt=2024-02-01/part-old.parquet", "old 2")
    run = publish.new_run(target, "2024-02-01")
    publish.claim(run, ["IBE_01/snapshot_dt=2024-02-01/_vaaa", "IBE_02/snapshot_dt=2024-02-01/_vaaa"])
    put(f"{target}/IBE_01/snapshot_dt=2024-02-01/_vaaa/part-new.parquet", "new 1")
    put(f"{target}/IBE_02/snapshot_dt=2024-02-01/_vaaa/part-new.parquet", "new 2")
    # the run died after its commit, before pointing the folders at their versions
    put(f"{run}/{publish.MANIFEST}", json.dumps({"snapshot_dt": "2024-02-01", "source_snapshot_dt": "2024-01-31",
                                                 "versions": {"IBE_01/snapshot_dt=2024-02-01": "_vaaa",
                                                              "IBE_02/snapshot_dt=2024-02-01": "_vaaa"}}))
    abandoned = publish.new_run(target, "2024-03-01")  # another run died before committing...
    publish.claim(abandoned, ["IBE_01/snapshot_dt=2024-03-01", "IBE_02/snapshot_dt=2024-02-01/_vbbb"])
    put(f"{target}/IBE_01/snapshot_dt=2024-03-01/part-x.parquet", "half")  # ...half-way through a new folder
    put(f"{target}/IBE_02/snapshot_dt=2024-02-01/_vbbb/part-x.parquet", "half")  # ...and a version

    other = publish.new_run(target, "2024-04-01")  # a run of another snapshot, still writing
    publish.claim(other, ["IBE_01/snapshot_dt=2024-04-01"])
    put(f"{target}/IBE_01/snapshot_dt=2024-04-01/part-y.parquet", "in progress")
    messages = []
    publish.recover(target, "2024-03-01", messages.append)
    publish.recover(target, "2024-02-01", messages.append)
    record = '{"snapshot_dt": "2024-02-01", "source_snapshot_dt": "2024-01-31", "folder": "_vaaa"}'
    assert listing(target) == {
        "IBE_01/snapshot_dt=2024-02-01/part-old.parquet": "old 1",  # what the partition pointed at: kept
        "IBE_02/snapshot_dt=2024-02-01/part-old.parquet": "old 2",
        "IBE_01/snapshot_dt=2024-02-01/_vaaa/part-new.parquet": "new 1",
        "IBE_02/snapshot_dt=2024-02-01/_vaaa/part-new.parquet": "new 2",
        "IBE_01/snapshot_dt=2024-02-01/_PUBLICATION.json": record,
        "IBE_02/snapshot_dt=2024-02-01/_PUBLICATION.json": record,
        "IBE_01/snapshot_dt=2024-04-01/part-y.parquet": "in progress",
        f"{publish.STAGING}/{other.rsplit('/', 1)[1]}/{publish.IN_PLACE}": '["IBE_01/snapshot_dt=2024-04-01"]'}
    assert publish.data_folder(f"{target}/IBE_02/snapshot_dt=2024-02-01") == f"{target}/IBE_02/snapshot_dt=2024-02-01/_vaaa"
    assert any("finishing the publication of snapshot_dt=2024-02-01" in m for m in messages)
    assert any("removed the partial output of an interrupted run" in m for m in messages)


def test_switching_keeps_the_version_it_replaced_and_the_next_split_removes_orphans(target):
    """Current-snapshot layout, from a target published before version folders (its files in IBE_01/)."""
    put(f"{target}/IBE_01/part-legacy.parquet", "legacy")
    put(f"{target}/metadata/snapshot_dt.txt", "2024-01-01\n")
    assert publish.current(target).tables == {"IBE_01": "IBE_01"}
    for snapshot, version in (("2024-02-01", "v2024-02-01_a"), ("2024-03-01", "v2024-03-01_b")):
        put(f"{target}/IBE_01/{version}/part-0.parquet", snapshot)
        publish.stage(target, publish.Publication(snapshot, snapshot, tables={"IBE_01": f"IBE_01/{version}"}), True)
        publish.switch(target, publish.staged(target))
        publish.switch(target, publish.current(target))  # ext_tables re-run: nothing more is deleted
        assert publish.current(target).snapshot_dt == snapshot and publish.staged(target) is None
        if snapshot == "2024-02-01":
            assert "IBE_01/part-legacy.parquet" in listing(target)  # replaced: kept for its readers
    data = {k for k in listing(target) if k.endswith(".parquet")}
    assert data == {"IBE_01/v2024-02-01_a/part-0.parquet", "IBE_01/v2024-03-01_b/part-0.parquet"}
    put(f"{target}/IBE_01/v2024-04-01_killed/part-0.parquet", "half")  # a killed split's version
    messages = []
    publish.remove_orphans(target, messages.append)
    assert {k for k in listing(target) if k.endswith(".parquet")} == data
    assert messages == [f"{target}: removed IBE_01/v2024-04-01_killed, written by a run that did not publish it"]
