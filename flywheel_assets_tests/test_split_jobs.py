"""The split jobs on real local Spark, small data, outputs checked exactly."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel_assets import settings
from flywheel_assets.demo_data import addressable_dates, attribute_names, snapshot_dates
from flywheel_assets.core import publish
from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.mapping import load_mapping
from flywheel_assets.spark_jobs.split import JOBS, run_split
from flywheel_assets_tests.conftest import SMALL

MB = 1024 * 1024
LATEST, OLDEST = snapshot_dates(SMALL.snapshots)[-1], snapshot_dates(SMALL.snapshots)[0]
AD_LATEST, AD_OLDEST = addressable_dates(SMALL)[-1], addressable_dates(SMALL)[0]  # a day earlier


def paths(lake: Path):
    return {
        "ib_raw": str(lake / settings.INFOBASE_RAW),
        "ad_comp": str(lake / settings.ADDRESSABLE_COMPACTION),
        "ad_raw": str(lake / settings.ADDRESSABLE_RAW),
        "cluster_ib": str(lake / settings.SPLIT_CLUSTER_INFOBASE),
        "cluster_ad": str(lake / settings.SPLIT_CLUSTER_ADDRESSABLE),
        "part_ib": str(lake / settings.SPLIT_PART_INFOBASE),
        "part_ad": str(lake / settings.SPLIT_PART_ADDRESSABLE),
        "bucket_csv": str(lake / settings.INFOBASE_BUCKET_MAPPING),
        "part_csv": str(lake / settings.INFOBASE_PART_MAPPING),
        "ad_csv": str(lake / settings.ADDRESSABLE_PART_MAPPING),
    }


def source_table(folder: str) -> pa.Table:
    return pq.read_table(folder)


def read_output(folder: Path) -> pa.Table:
    return pq.read_table(folder)


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file below folder."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def latest_folder(target: Path, table: str) -> Path:
    """Current-snapshot layout: the version folder the last split wrote for ``table``."""
    return target / publish.latest(str(target)).tables[table]


def switch(target: Path) -> None:
    """What ext_tables does once the catalog points at the staged folders."""
    publish.switch(str(target), publish.staged(str(target)))


def split(spark, lake, job, snapshot="_NONE_", csv=None, target_mb=128, **kw):
    p = paths(lake)
    source, target, default_csv = {
        "infobase_split_and_bucket": (p["ib_raw"], p["cluster_ib"], p["bucket_csv"]),
        "addressable_bucket": (p["ad_comp"], p["cluster_ad"], None),
        "infobase_split_and_part": (p["ib_raw"], p["part_ib"], p["part_csv"]),
        "addressable_split_and_part": (p["ad_raw"], p["part_ad"], None),  # no mapping, as in production
    }[job]
    csv = csv or default_csv
    mapping = load_mapping(csv) if csv else None
    return run_split(spark, JOBS[job], kw.get("source", source), target, snapshot, mapping, int(target_mb * MB))


def test_infobase_split_and_bucket_rows_columns_metadata(spark, lake):
    result = split(spark, lake, "infobase_split_and_bucket")
    assert result.snapshot == LATEST
    target = lake / settings.SPLIT_CLUSTER_INFOBASE
    src = source_table(str(lake / settings.INFOBASE_RAW / f"snapshot_dt={LATEST}"))
    mapping = load_mapping(paths(lake)["bucket_csv"])
    assert sorted(p.name for p in target.iterdir()) == sorted([*mapping.tables, "metadata"])
    # staged, not yet what readers see: the catalog step switches to it
    assert publish.staged(str(target)).snapshot_dt == LATEST and publish.published_snapshot(str(target)) is None
    assert "IBE_04_B" in mapping.tables  # listed without its key row: the key is added first
    src_by_lower = {name.lower(): name for name in src.column_names}
    for table, columns in mapping.tables.items():
        folder = latest_folder(target, table)
        assert folder.parent.name == table and folder.name.startswith(f"v{LATEST}_")
        out = read_output(folder)
        assert out.column_names == ["customer_user_id", *columns]
        assert out.num_rows == SMALL.rows
        # every source row, values and types unchanged
        expected = src.select([src_by_lower[c] for c in out.column_names]).rename_columns(out.column_names)
        assert out.schema.equals(expected.schema, check_metadata=False)
        assert sorted(out.to_pylist(), key=lambda r: r["customer_user_id"]) == sorted(
            expected.to_pylist(), key=lambda r: r["customer_user_id"])
    stats = {t.name: t for t in result.tables}
    assert set(stats) == set(mapping.tables)
    assert all(t.rows == SMALL.rows and t.files == 1 and t.bytes > 0 for t in stats.values())
    # reported whatever their names (production sources carry oddities such as 'Spend $')
    assert result.unmapped_columns == list(SMALL.odd_columns)


def test_new_snapshot_replaces_previous_in_current_snapshot_layout(spark, lake):
    split(spark, lake, "addressable_bucket", snapshot=OLDEST)
    target = lake / settings.SPLIT_CLUSTER_ADDRESSABLE
    switch(target)
    oldest = latest_folder(target, "addressable_ids")
    assert (target / "metadata" / "snapshot_dt.txt").read_text().strip() == OLDEST
    split(spark, lake, "addressable_bucket", snapshot=LATEST)
    # written, not switched: readers still see the oldest snapshot, whose files are untouched
    assert publish.current(str(target)).snapshot_dt == OLDEST and read_output(oldest).num_rows == SMALL.rows
    switch(target)
    assert publish.current(str(target)).snapshot_dt == LATEST and publish.staged(str(target)) is None
    out = read_output(latest_folder(target, "addressable_ids"))
    latest_ids = source_table(str(lake / settings.ADDRESSABLE_COMPACTION / f"snapshot_dt={AD_LATEST}")).column("Customer_User_id")
    assert sorted(out.column("customer_user_id").to_pylist()) == sorted(latest_ids.to_pylist())
    assert out.column_names == ["customer_user_id", "hashed_email", "maid", "ip_address", "id_type", "last_seen"]
    assert (target / "metadata" / "snapshot_dt.txt").read_text().strip() == LATEST
    assert (target / "metadata" / "source_snapshot_dt.txt").read_text().strip() == AD_LATEST
    assert sorted(p.name for p in target.iterdir()) == ["addressable_ids", "metadata"]
    # the replaced version stays for queries still reading it; the one before it goes at the next switch
    assert oldest.exists()
    split(spark, lake, "addressable_bucket", snapshot=LATEST)
    switch(target)
    assert not oldest.exists() and len(list((target / "addressable_ids").iterdir())) == 2


def test_part_layout_keeps_other_snapshots_untouched(spark, lake):
    split(spark, lake, "infobase_split_and_part", snapshot=OLDEST)
    target = lake / settings.SPLIT_PART_INFOBASE
    table = next(iter(load_mapping(paths(lake)["part_csv"]).tables))
    before = tree(target / table / f"snapshot_dt={OLDEST}")
    result = split(spark, lake, "infobase_split_and_part", snapshot=LATEST)
    assert sorted(p.name for p in (target / table).iterdir() if p.is_dir()) == [
        f"snapshot_dt={OLDEST}", f"snapshot_dt={LATEST}"]
    assert tree(target / table / f"snapshot_dt={OLDEST}") == before
    out = read_output(target / table / f"snapshot_dt={LATEST}")
    assert out.num_rows == SMALL.rows and "snapshot_dt" not in out.column_names
    assert {t.path for t in result.tables} == {
        str(target / t / f"snapshot_dt={LATEST}") for t in load_mapping(paths(lake)["part_csv"]).tables}
    assert not (target / "metadata").exists()


def test_addressable_split_and_part_writes_one_partitioned_table(spark, lake):
    split(spark, lake, "addressable_split_and_part", snapshot=OLDEST)
    split(spark, lake, "addressable_split_and_part", snapshot=LATEST)
    target = lake / settings.SPLIT_PART_ADDRESSABLE
    # partitions are the infobase dates; the data is the addressable snapshot of the day before
    assert sorted(p.name for p in target.iterdir() if p.is_dir()) == [f"snapshot_dt={OLDEST}", f"snapshot_dt={LATEST}"]
    assert publish.folder_publication(str(target / f"snapshot_dt={LATEST}")) == publish.Publication(LATEST, AD_LATEST)
    out = read_output(target / f"snapshot_dt={LATEST}")
    assert out.column_names == ["customer_user_id", "hashed_email", "maid", "ip_address", "id_type", "last_seen"]
    assert out.num_rows == SMALL.rows


def test_rerun_gives_the_same_rows(spark, lake):
    split(spark, lake, "addressable_bucket", snapshot=LATEST)
    target = lake / settings.SPLIT_CLUSTER_ADDRESSABLE
    first = sorted(read_output(latest_folder(target, "addressable_ids")).to_pylist(), key=str)
    split(spark, lake, "addressable_bucket", snapshot=LATEST)
    assert sorted(read_output(latest_folder(target, "addressable_ids")).to_pylist(), key=str) == first


def test_dynamic_file_sizing_follows_table_size(spark, lake):
    # ~1 KB target: each table's file count follows its estimated size, not a fixed number.
    result = split(spark, lake, "infobase_split_and_bucket", target_mb=4 / 1024)
    for t in result.tables:
        assert t.planned_files > 1
        assert t.files == t.planned_files
        assert len(list(latest_folder(lake / settings.SPLIT_CLUSTER_INFOBASE, t.name).glob("*.parquet"))) == t.files
        assert t.rows == SMALL.rows
    by_size = sorted(result.tables, key=lambda t: t.bytes)
    assert by_size[0].files <= by_size[-1].files


def write_source(folder: Path, table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "part-0.parquet")


def test_columns_are_trimmed_and_lowercased(spark, tmp_path):
    src = tmp_path / "src"
    write_source(src / "snapshot_dt=2024-05-01", pa.table({" Customer_User_id ": ["a", "b"], "Mixed_CASE": [1, 2]}))
    result = run_split(spark, JOBS["addressable_bucket"], str(src), str(tmp_path / "out"), "_NONE_", None, MB)
    out = read_output(tmp_path / "out" / "addressable_ids")
    assert out.column_names == ["customer_user_id", "mixed_case"] and out.num_rows == 2
    assert result.snapshot == "2024-05-01"


def test_collision_after_lowercasing_fails_with_both_names(spark, tmp_path):
    src = tmp_path / "src"
    write_source(src / "snapshot_dt=2024-05-01", pa.table({"customer_user_id": ["a"], "Score": [1], "SCORE": [2]}))
    with pytest.raises(FlywheelInputError, match="'Score' and 'SCORE' collide after lowercasing"):
        run_split(spark, JOBS["addressable_bucket"], str(src), str(tmp_path / "out"), "_NONE_", None, MB)
    assert not (tmp_path / "out").exists()


def test_missing_key_column_fails(spark, tmp_path):
    src = tmp_path / "src"
    write_source(src / "snapshot_dt=2024-05-01", pa.table({"user": ["a"], "x": [1]}))
    with pytest.raises(FlywheelInputError, match="key column 'customer_user_id' missing"):
        run_split(spark, JOBS["addressable_bucket"], str(src), str(tmp_path / "out"), "_NONE_", None, MB)


def test_empty_snapshots_fail(spark, tmp_path):
    src = tmp_path / "src"
    (src / "snapshot_dt=2024-05-01").mkdir(parents=True)
    (src / "snapshot_dt=2024-05-01" / "_SUCCESS").write_text("")
    with pytest.raises(FlywheelInputError, match="snapshot .*snapshot_dt=2024-05-01 is empty: no data files"):
        run_split(spark, JOBS["addressable_bucket"], str(src), str(tmp_path / "out"), "_NONE_", None, MB)
    write_source(src / "snapshot_dt=2024-05-02", pa.table({"customer_user_id": pa.array([], pa.string())}))
    with pytest.raises(FlywheelInputError, match="snapshot_dt=2024-05-02 is empty: 0 rows"):
        run_split(spark, JOBS["addressable_bucket"], str(src), str(tmp_path / "out"), "_NONE_", None, MB)
    assert not (tmp_path / "out").exists()


def test_corrupt_file_fails_naming_it(spark, tmp_path):
    src = tmp_path / "src" / "snapshot_dt=2024-05-01"
    write_source(src, pa.table({"customer_user_id": ["a"]}))
    (src / "part-1.parquet").write_text("not parquet at all")
    with pytest.raises(FlywheelInputError, match=r"part-1.parquet is not a readable parquet file"):
        run_split(spark, JOBS["addressable_bucket"], str(tmp_path / "src"), str(tmp_path / "out"), "_NONE_", None, MB)


def test_mapped_column_missing_from_source_leaves_published_output_untouched(spark, lake):
    split(spark, lake, "infobase_split_and_bucket", snapshot=OLDEST)
    target = lake / settings.SPLIT_CLUSTER_INFOBASE
    before = tree(target)
    bad = lake / "bad.csv"
    bad.write_text(f"table_name,column_name\nIBE_01,{attribute_names(SMALL)[0]}\nIBE_01,no_such_column\n")
    with pytest.raises(FlywheelInputError, match=r"bad.csv: 1 mapped column\(s\) not in the source snapshot .*: "
                                                 r"IBE_01: no_such_column \(line 3\)"):
        split(spark, lake, "infobase_split_and_bucket", snapshot=LATEST, csv=str(bad))
    assert tree(target) == before


def test_single_table_job_rejects_mapping_with_several_tables(spark, lake):
    bad = lake / "two.csv"
    bad.write_text("table_name,column_name\nA,maid\nB,id_type\n")
    with pytest.raises(FlywheelInputError, match="writes one table .*the mapping names 2: A, B"):
        split(spark, lake, "addressable_split_and_part", csv=str(bad))


def test_missing_snapshot_lists_available(spark, lake):
    with pytest.raises(FlywheelInputError, match=f"snapshot_dt=2020-01-01 not found .*available snapshots: {OLDEST}, {LATEST}"):
        split(spark, lake, "infobase_split_and_bucket", snapshot="2020-01-01")
    with pytest.raises(FlywheelInputError, match=f"no snapshot at or before snapshot_dt=2020-01-01 .*available snapshots: "
                                                 f"{AD_OLDEST}, {AD_LATEST}"):
        split(spark, lake, "addressable_bucket", snapshot="2020-01-01")


def test_checks_pass_on_good_data_and_catch_null_or_blank_keys(spark, lake, tmp_path):
    from flywheel_assets.spark_jobs.checks import blocking_failures, split_checks

    good = split(spark, lake, "infobase_split_and_bucket", target_mb=4 / 1024)
    for table in good.tables:  # every table gets its own results
        assert {c.name: c.passed for c in split_checks(good, table.name, table)} == {
            "row_count": True, "columns": True, "key_not_null": True, "file_sizing": True, "not_skipped": True}
    src = tmp_path / "src"
    write_source(src / "snapshot_dt=2024-05-01",
                 pa.table({"customer_user_id": ["a", None, "  ", "d"], "x": [1, 2, 3, 4]}))
    bad = run_split(spark, JOBS["addressable_bucket"], str(src), str(tmp_path / "out"), "_NONE_", None, MB)
    checks = {c.name: c for c in split_checks(bad, "addressable_ids", bad.tables[0])}
    assert not checks["key_not_null"].passed and checks["key_not_null"].metadata == {"null_or_blank_keys": 2, "tolerated": 0}
    assert checks["key_not_null"].severity == "ERROR" and not bad.published
    assert checks["row_count"].passed and checks["columns"].passed
    bad.tables[0].rows -= 1  # what a lost file would look like
    bad.tables[0].written_columns = ["customer_user_id"]
    checks = {c.name: c for c in split_checks(bad, "addressable_ids", bad.tables[0])}
    assert not checks["row_count"].passed and checks["row_count"].metadata == {"rows": 3, "source_rows": 4}
    assert not checks["columns"].passed
    assert blocking_failures(bad) == ["addressable_ids: row_count", "addressable_ids: columns",
                                      "addressable_ids: key_not_null"]


def test_uppercase_source_columns_match_lowercase_mapping_and_odd_unused_names_do_not_matter(spark, tmp_path):
    src = tmp_path / "src"
    write_source(src / "snapshot_dt=2024-05-01", pa.table({
        "Customer_User_id": ["a", "b"], "IBE1802": [1, 2], "MIACS_11_054": ["x", "y"], "Spend $": [1.0, 2.0],
        "Dup": [1, 2], "DUP": [3, 4]}))  # unused: neither the odd name nor the case clash stops the job
    csv = tmp_path / "m.csv"
    csv.write_bytes("\ufeffOMC_FLYWHEEL_TABLE,OMC_FLYWHEEL_COLUMN,FUNCTION_DESCRIPTION,OPUS_COLUMN,ELEMENT_NUMBER\r\n"
                    "IBE_01,ibe1802,\"Family Ties, Adult\",IBE1802,1802\r\nMIACS_02_B,miacs_11_054,,MIACS_11_054,\r\n"
                    .encode())
    result = run_split(spark, JOBS["infobase_split_and_part"], str(src), str(tmp_path / "out"), "_NONE_",
                       load_mapping(str(csv)), MB)
    assert read_output(tmp_path / "out" / "IBE_01" / "snapshot_dt=2024-05-01").to_pydict() == {
        "customer_user_id": ["a", "b"], "ibe1802": [1, 2]}
    assert read_output(tmp_path / "out" / "MIACS_02_B" / "snapshot_dt=2024-05-01").column_names == [
        "customer_user_id", "miacs_11_054"]
    assert result.unmapped_columns == ["Spend $", "Dup", "DUP"]


def test_missing_columns_skip_table_publishes_the_other_tables(spark, lake):
    from flywheel_assets.spark_jobs.checks import split_checks

    names = attribute_names(SMALL)
    csv = lake / "skip.csv"
    csv.write_text(f"table_name,column_name\nIBE_01,{names[0]}\nIBE_02,{names[1]}\nIBE_02,no_such\nIBE_02,gone\n")
    p = paths(lake)
    with pytest.raises(FlywheelInputError, match=r"2 mapped column\(s\) not in the source .*IBE_02: no_such \(line 4\), "
                                                 r"gone \(line 5\).*missing_columns: skip_table"):
        run_split(spark, JOBS["infobase_split_and_part"], p["ib_raw"], p["part_ib"], LATEST, load_mapping(str(csv)), MB)
    result = run_split(spark, JOBS["infobase_split_and_part"], p["ib_raw"], p["part_ib"], LATEST,
                       load_mapping(str(csv)), MB, missing_columns_policy="skip_table")
    assert result.published and [t.name for t in result.tables] == ["IBE_01"]
    assert result.skipped_tables == {"IBE_02": "missing no_such (line 4), gone (line 5)"}
    assert not (lake / settings.SPLIT_PART_INFOBASE / "IBE_02" / f"snapshot_dt={LATEST}").exists()
    checks = {c.name: c for c in split_checks(result, "IBE_02", None)}
    assert not checks["not_skipped"].passed and checks["not_skipped"].severity == "WARN"
    assert checks["not_skipped"].metadata == {"skipped": "missing no_such (line 4), gone (line 5)"}
    assert all(c.severity == "WARN" for c in checks.values())  # a skipped table blocks nothing
    assert publish.part_table_skipped(p["part_ib"] + "/IBE_02", LATEST) == result.skipped_tables["IBE_02"]


def test_null_keys_within_the_tolerance_are_published_and_warned(spark, tmp_path):
    from flywheel_assets.spark_jobs.checks import split_checks
    from flywheel_assets.spark_jobs.split import allowed_bad_keys

    src = tmp_path / "src"
    write_source(src / "snapshot_dt=2024-05-01", pa.table({"customer_user_id": ["a", None, "b", "c"], "x": [1, 2, 3, 4]}))
    result = run_split(spark, JOBS["addressable_bucket"], str(src), str(tmp_path / "out"), "_NONE_", None, MB,
                       max_bad_keys="25%")
    assert result.published and result.bad_keys == 1 and result.bad_keys_allowed == 1
    check = {c.name: c for c in split_checks(result, "addressable_ids", result.tables[0])}["key_not_null"]
    assert not check.passed and check.severity == "WARN"  # alerted, not blocking
    assert read_output(tmp_path / "out" / "addressable_ids").num_rows == 4
    assert [allowed_bad_keys(t, 1000) for t in ("0", "5", "0.001", "1%")] == [0, 5, 1, 10]
    for bad in ("-1", "lots", "150%", "2.5"):
        with pytest.raises(FlywheelInputError, match="--MAX_BAD_KEYS must be a count"):
            allowed_bad_keys(bad, 1000)


def test_job_arguments_accept_the_deployed_names_and_ignore_glues_own():
    from flywheel_assets.spark_jobs.entry import job_arguments

    args = job_arguments(["--JOB_NAME", "etl-omc-flywheel-prod-infobase-split-and-part", "--TempDir", "s3://t/",
                          "--SNAPSHOT_DT", "_NONE_", "--SOURCE_PATH", "s3://b/raw/", "--TARGET_BUCKET", "s3://b/out/",
                          "--CSV_PATH", "s3://b/m.csv", "--BUCKET_COUNT", "256", "--TARGET_FILE_MB", "512",
                          "--spark.sql.adaptive.enabled", "true", "--job-bookmark-option", "job-bookmark-disable"])
    assert (args["TARGET_PATH"], args["CSV_FILE"], args["TARGET_FILE_MB"]) == ("s3://b/out/", "s3://b/m.csv", "512")
    with pytest.raises(FlywheelInputError, match="--TARGET_BUCKET .* and --TARGET_PATH .* name different paths"):
        job_arguments(["--TARGET_BUCKET", "s3://b/a/", "--TARGET_PATH", "s3://b/b/"])
    with pytest.raises(FlywheelInputError, match="--BUCKET_COUNT must be a positive whole number"):
        job_arguments(["--BUCKET_COUNT", "many"])
    with pytest.raises(FlywheelInputError, match="--MISSING_COLUMNS must be one of fail, skip_table"):
        job_arguments(["--MISSING_COLUMNS", "ignore"])


def test_selected_tables_only_are_written(spark, lake):
    """--TABLES (what selecting some of a step's table assets passes): only those tables are
    written; in the one-snapshot layout only for the snapshot it already holds."""
    p, mb = paths(lake), 128 * MB
    run_split(spark, JOBS["infobase_split_and_part"], p["ib_raw"], p["part_ib"], LATEST, load_mapping(p["part_csv"]), mb,
              tables=["ibe_01_a"])
    assert sorted(d.name for d in Path(p["part_ib"]).iterdir() if not d.name.startswith("_")) == ["IBE_01_A"]
    split(spark, lake, "infobase_split_and_bucket", LATEST)
    before = tree(Path(p["cluster_ib"]))
    result = run_split(spark, JOBS["infobase_split_and_bucket"], p["ib_raw"], p["cluster_ib"], LATEST,
                       load_mapping(p["bucket_csv"]), mb, tables=["IBE_04_B"])
    assert [t.name for t in result.tables] == ["IBE_04_B"]
    after = tree(Path(p["cluster_ib"]))
    assert {k for k in after if after[k] != before.get(k)} and all(
        k.startswith("IBE_04_B/") or k == "metadata/staged.json"
        for k in after if after[k] != before.get(k))  # only IBE_04_B was written (a new version)
    staged = publish.staged(p["cluster_ib"])  # the other tables stay, at the versions they were
    assert staged.tables["IBE_01"] in {k.rsplit("/", 1)[0] for k in before} and staged.tables["IBE_04_B"] not in {
        k.rsplit("/", 1)[0] for k in before}
    with pytest.raises(FlywheelInputError, match=rf"holds snapshot_dt={LATEST}: writing only IBE_04_B for "
                                                 rf"snapshot_dt={OLDEST} would mix snapshots"):
        run_split(spark, JOBS["infobase_split_and_bucket"], p["ib_raw"], p["cluster_ib"], OLDEST,
                  load_mapping(p["bucket_csv"]), mb, tables=["IBE_04_B"])
    with pytest.raises(FlywheelInputError, match=r"--TABLES names ibe_99, which .* does not have \(it has: IBE_01, "):
        run_split(spark, JOBS["infobase_split_and_bucket"], p["ib_raw"], p["cluster_ib"], LATEST,
                  load_mapping(p["bucket_csv"]), mb, tables=["IBE_99"])


def dictionary_encoded(folder: Path) -> dict[str, bool]:
    """column -> whether every file's first row group stores it with a dictionary."""
    out: dict[str, bool] = {}
    for f in sorted(folder.rglob("*.parquet")):
        group = pq.ParquetFile(f).metadata.row_group(0)
        for i in range(group.num_columns):
            chunk = group.column(i)
            out[chunk.path_in_schema] = out.get(chunk.path_in_schema, True) and chunk.has_dictionary_page
    return out


def test_dictionaries_parquet_would_drop_are_not_built_and_the_files_are_the_same(spark, tmp_path, monkeypatch):
    import numpy as np

    from flywheel_assets.spark_jobs import encoding, split as split_module

    rng, rows = np.random.default_rng(3), 30_000  # more than a first page
    src = tmp_path / "src" / "snapshot_dt=2024-05-01"
    write_source(src, pa.table({
        "Customer_User_id": [f"CU{n:08d}" for n in rng.permutation(rows)],  # distinct: plain
        "Amount": rng.random(rows) * 1000,  # distinct: plain
        "Visits": pa.array(rng.integers(0, 10, rows)),  # ten values: dictionary
        "Segment": pa.array(np.array(["A", "B", "C"], dtype=object)[rng.integers(0, 3, rows)]),
        "Batch": pa.array(np.arange(rows) // 500),  # distinct ids in long runs: dictionary (ids run-length encode)
        "Seen": pa.array(rng.integers(0, 20_000, rows).astype("int32")).cast(pa.date32()),  # parquet decides
    }))
    predicted = {c.lower() for c in encoding.dropped_dictionaries(
        [str(f) for f in src.glob("*.parquet")], ["Customer_User_id", "Amount", "Visits", "Segment", "Batch", "Seen"],
        {f.name: f.type for f in pq.read_schema(next(src.glob("*.parquet")))})}
    assert {"customer_user_id", "amount"} <= predicted and not predicted & {"visits", "segment", "batch"}

    def written(name: str) -> Path:
        run_split(spark, JOBS["addressable_bucket"], str(tmp_path / "src"), str(tmp_path / name), "_NONE_", None, MB)
        return tmp_path / name / "addressable_ids"

    monkeypatch.setattr(split_module, "dropped_dictionaries", lambda *a: set())
    parquets_own = written("parquet-decides")  # every dictionary built; parquet keeps or drops each
    monkeypatch.undo()
    predicted_run = written("predicted")
    assert {c for c, kept in dictionary_encoded(parquets_own).items() if not kept} == predicted
    assert dictionary_encoded(predicted_run) == dictionary_encoded(parquets_own)
    assert read_output(predicted_run).equals(read_output(parquets_own))
    assert sum(f.stat().st_size for f in predicted_run.rglob("*.parquet")) == \
        sum(f.stat().st_size for f in parquets_own.rglob("*.parquet"))

    # the option reaches the writer: a column it names is written without a dictionary
    monkeypatch.setattr(split_module, "dropped_dictionaries", lambda *a: {"Visits"})
    assert dictionary_encoded(written("forced"))["visits"] is False
