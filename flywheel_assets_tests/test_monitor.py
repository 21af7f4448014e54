"""The data monitor and `flywheel status` on a published sample lake, for real (local Spark).

One snapshot is published through every catalog step; the monitor runs once on it as published
(green), then once after four defects are put into four different tables (and judged 60 days
later): a stale snapshot, duplicate keys in a part table, an ext_ table whose files no longer
match its bucketed_ table, and a registered partition without data. Each defect must turn the
monitor and `flywheel status` red with its table named, and leave the other tables passing. A part
table widened past Clean Rooms' 100 columns is reported (the columns it would cut), not failed.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from dagster import Definitions, DagsterInstance, materialize

from flywheel_assets import cli
from flywheel_assets.pipelines import monitoring
from flywheel_assets.resources import CleanRoomsReporting, Lake
from flywheel_assets_tests.conftest import assets_of, step, tables_of, webhook_receiver
from flywheel_assets_tests.test_catalog_local import publish_split, run_config
from flywheel_assets_tests.test_split_jobs import LATEST

FRESH = (dt.date.fromisoformat(LATEST) + dt.timedelta(days=10)).isoformat()
LATER = (dt.date.fromisoformat(LATEST) + dt.timedelta(days=60)).isoformat()
TABLES = ["ibe_01", "ibe_01_a", "ibe_04_b", "miacs_02_a", "addressable_ids"]
ALL = [f"bucketed_{t}" for t in TABLES] + [f"part_{t}" for t in TABLES] + ["part_addressable_ids_er"]
STEPS = ("ext_tables", "bucketed_tables", "part_tables", "part_addressable_ids_er")


class Published:
    def __init__(self, home: Path, lake: Path, catalog, instance: DagsterInstance):
        self.home, self.lake, self.catalog, self.instance = home, lake, catalog, instance
        assets = [step(assets_of(lake), s) for s in STEPS]
        check = monitoring.monitor_check(tables_of(lake))
        self.defs = Definitions(assets=assets, asset_checks=[check], jobs=[monitoring.monitor_job(check)],
                                resources={"lake": Lake(data_root=str(lake)), "catalog": catalog,
                                           "reporting": CleanRoomsReporting(analysis_root=str(home / "analysis"))})
        self.env = {"FLYWHEEL_HOME": str(home), "FLYWHEEL_DATA_ROOT": str(lake), "FLYWHEEL_ENV": "local"}

    def monitor(self, as_of: str) -> dict:
        """Run the monitor job; (asset, check) -> the evaluation."""
        result = self.defs.resolve_job_def(monitoring.JOB).execute_in_process(
            instance=self.instance, run_config={"ops": {"data_monitor": {"config": {"as_of": as_of}}}})
        return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}

    def status(self, as_of: str, capsys) -> tuple[int, dict]:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in self.env.items():
                mp.setenv(key, value)
            code = cli.main(["status", "--json", "--as-of", as_of])
        return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def published(spark, spark_url, _small_lake_template, tmp_path_factory) -> Published:
    from flywheel_assets.catalog.local import LocalCatalog
    from flywheel_assets.local_spark import LocalSpark

    home = tmp_path_factory.mktemp("monitor-home")
    lake = home / "lake"
    shutil.copytree(_small_lake_template, lake)
    (home / "dagster").mkdir()
    instance = DagsterInstance.from_config(str(home / "dagster"))
    instance.add_dynamic_partitions("snapshot_dt", [LATEST])
    catalog = LocalCatalog(database="t_monitor", server=LocalSpark(home="unused", remote=spark_url))
    publish_split(spark, lake, LATEST)
    out = Published(home, lake, catalog, instance)
    materialize([step(assets_of(lake), s) for s in STEPS], partition_key=LATEST, instance=instance,
                resources={"lake": Lake(data_root=str(lake)), "catalog": catalog}, run_config=run_config())
    return out


@pytest.fixture(scope="module")
def green(published):
    return published.monitor(FRESH)


@pytest.fixture(scope="module")
def defects(published, green):
    """The four defects, each in its own table, then the monitor 60 days after the snapshot, with a
    webhook configured (the run alert's)."""
    catalog, db = published.catalog, published.catalog.database

    def partition_folder(table: str) -> Path:
        return Path(catalog.describe(db, table, partitions=False).location) / f"snapshot_dt={LATEST}"

    part = partition_folder("part_ibe_01_a")  # the same keys twice
    shutil.copy(next(part.glob("*.parquet")), part / "again.parquet")
    ext = Path(catalog.describe(db, "ext_ibe_04_b", partitions=False).location)  # the split output changed
    shutil.copy(next(ext.glob("*.parquet")), ext / "late-arrival.parquet")
    location = catalog.describe(db, "part_miacs_02_a", partitions=False).location
    catalog.add_partitions(db, "part_miacs_02_a", [("2023-12-15", f"{location}snapshot_dt=2023-12-15")])
    # not a defect of the data: wider than Clean Rooms configures, reported as a warning only
    catalog.sql(f"ALTER TABLE {db}.part_ibe_04_b ADD COLUMNS ({', '.join(f'extra_{i:03d} STRING' for i in range(100))})")
    with webhook_receiver() as (url, received), pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLYWHEEL_ALERT_WEBHOOK_URL", url)
        checks = published.monitor(LATER)
    return checks, received


def failing(checks: dict, name: str) -> dict[str, str]:
    return {asset: e.description for (asset, check), e in checks.items() if check == name and not e.passed}


def test_a_fresh_publish_passes_and_writes_the_daily_report(published, green, capsys):
    assert sorted(green) == sorted((t, c) for t in ALL for c in monitoring.CHECK_NAMES)
    assert [k for k, e in green.items() if not e.passed] == []
    meta = green[("part_ibe_01_a", "data_monitor")].metadata
    assert (meta["rows"].value, meta["expected_rows"].value, meta["null_keys"].value,
            meta["duplicate_keys"].value, meta["partitions_registered"].value) == (300, 300, 0, 0, 1)
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    folder = published.home / "analysis" / "data-monitor"
    report = json.loads((folder / f"ACX_Data_Monitor_Report_{day}.json").read_text())
    assert report["status"] == "green" and report["as_of"] == FRESH and report["freshness_window_days"] == 45
    rows = list(csv.DictReader((folder / f"ACX_Data_Monitor_Report_{day}.csv").open()))
    assert sorted(r["table"] for r in rows) == sorted(ALL) and {r["status"] for r in rows} == {"ok"}
    code, status = published.status(FRESH, capsys)
    assert code == 0 and status["healthy"], status["needs_attention"]
    for pipeline in ("bucketed", "partitioned"):
        assert status["pipelines"][pipeline]["live_snapshot"] == LATEST
        assert status["pipelines"][pipeline]["age_days"] == 10
    assert (status["pipelines"]["partitioned"]["partitions_registered"],
            status["pipelines"]["partitioned"]["partitions_on_storage"]) == (5, 5)


def test_a_stale_snapshot_turns_freshness_and_status_red(published, defects, capsys):
    checks, _ = defects
    stale = failing(checks, "snapshot_freshness")
    assert sorted(stale) == sorted(ALL)
    assert stale["bucketed_ibe_01"] == f"snapshot_dt={LATEST} is 60 days old (limit 45)"
    code, status = published.status(LATER, capsys)
    assert code == 1
    line = next(a for a in status["needs_attention"] if a.startswith("bucketed: "))
    assert line.startswith(f"bucketed: live snapshot_dt={LATEST} is 60 days old (limit 45); stale: ")
    assert "bucketed_ibe_04_b" in line
    code, status = published.status(FRESH, capsys)  # the same facts a month earlier: no staleness
    assert not any("days old" in a for a in status["needs_attention"])


def test_duplicate_keys_name_the_table(published, defects, capsys):
    checks, _ = defects
    problem = failing(checks, "data_monitor")["part_ibe_01_a"]
    assert "300 duplicate customer_user_id values (limit 0)" in problem
    assert f"600 rows for snapshot_dt={LATEST}, but bucketed_ibe_01_a has 300" in problem
    meta = checks[("part_ibe_01_a", "data_monitor")].metadata
    assert (meta["rows"].value, meta["duplicate_keys"].value, meta["null_keys"].value) == (600, 300, 0)
    code, status = published.status(FRESH, capsys)
    assert code == 1
    assert any(a.startswith("check failing: part_ibe_01_a: data_monitor (300 duplicate customer_user_id")
               for a in status["needs_attention"])


def test_ext_and_bucketed_count_mismatch_names_the_table(published, defects, capsys):
    checks, _ = defects
    assert failing(checks, "data_monitor")["bucketed_ibe_04_b"] == "300 rows, but 600 in the files it was built from"
    code, status = published.status(FRESH, capsys)
    assert any(a.startswith("check failing: bucketed_ibe_04_b: data_monitor (300 rows, but 600")
               for a in status["needs_attention"])


def test_registered_partition_without_data_names_the_table(published, defects, capsys):
    checks, _ = defects
    problem = failing(checks, "data_monitor")["part_miacs_02_a"]
    assert problem == "registered without data: snapshot_dt=2023-12-15"
    meta = checks[("part_miacs_02_a", "data_monitor")].metadata
    assert (meta["partitions_registered"].value, meta["partitions_on_storage"].value) == (2, 1)
    code, status = published.status(FRESH, capsys)
    assert any("part_miacs_02_a: data_monitor (registered without data: snapshot_dt=2023-12-15)" in a
               for a in status["needs_attention"])
    assert status["pipelines"]["partitioned"]["partitions_registered"] == 6


def test_only_the_damaged_tables_fail_and_one_alert_names_them(published, defects):
    checks, received = defects
    assert sorted(failing(checks, "data_monitor")) == ["bucketed_ibe_04_b", "part_ibe_01_a", "part_miacs_02_a"]
    assert len(received) == 1
    text = received[0]["text"]
    assert text.startswith("flywheel data monitor: 11 table(s) failing in t_monitor")
    for table in ("bucketed_ibe_04_b", "part_ibe_01_a", "part_miacs_02_a"):
        assert f"\n{table}: " in text
    assert received[0]["status"] == "MONITOR_FAILED"
    wide = checks[("part_ibe_04_b", "data_monitor")]
    assert wide.passed and "Clean Rooms" not in text  # a warning, not an alert
    warning = wide.metadata["warnings"].value
    columns = len(published.catalog.describe(published.catalog.database, "part_ibe_04_b").columns) + 1  # + snapshot_dt
    assert warning.startswith(f"{columns} columns, over Clean Rooms' 100 per configured table"), warning
    cut = warning.split("would cut ")[1].split(", ")
    assert len(cut) == columns - 100 and cut[-2:] == ["extra_099", "snapshot_dt"], warning


def test_key_counts_take_one_statement_and_name_an_unreadable_table(published):
    """Cost stays flat: one statement counts every table; a table that cannot be read fails alone."""
    catalog, db = published.catalog, published.catalog.database
    queries = [(db, "part_ibe_01", "customer_user_id", LATEST), (db, "bucketed_ibe_01", "customer_user_id", None)]
    assert catalog.key_stats(queries) == [(300, 300, 300), (300, 300, 300)]
    empty = (db, "part_ibe_01", "customer_user_id", "1999-01-01")  # no such partition: no rows, no result row
    assert catalog.key_stats([queries[0], empty, queries[1]]) == [(300, 300, 300), (0, 0, 0), (300, 300, 300)]
    broken = queries + [(db, "no_such_table", "customer_user_id", None)]
    found = catalog.key_stats(broken)
    assert found[:2] == [(300, 300, 300), (300, 300, 300)]
    assert isinstance(found[2], str) and "no_such_table" in found[2]


def test_a_snapshot_folder_has_data_in_itself_or_in_the_version_a_re_publication_wrote(tmp_path):
    from flywheel_assets.monitor import _snapshot_folders_with_data

    for path in ("snapshot_dt=2024-01-01/part-0.parquet",  # a first publication, in place
                 "snapshot_dt=2024-02-01/_vabc/part-0.parquet",  # re-published, the original files gone
                 "snapshot_dt=2024-02-01/_PUBLICATION.json",
                 "snapshot_dt=2024-03-01/_PUBLICATION.json",  # no data: a record only
                 "snapshot_dt=2024-04-01/_vabc/_SUCCESS", "snapshot_dt=2024-05-01/other/part-0.parquet"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    assert _snapshot_folders_with_data(str(tmp_path)) == {"2024-01-01", "2024-02-01"}
