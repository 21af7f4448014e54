"""ext_, bucketed_ and part_ tables on the local catalog (Spark SQL + Hive metastore), for real."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from flywheel_assets import settings
from flywheel_assets.catalog.names import Column, TableSpec
from flywheel_assets.messages import step_error_message
from flywheel_assets.resources import Lake
from flywheel_assets.core import publish, sizing
from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.mapping import load_mapping
from flywheel_assets.spark_jobs.split import JOBS, run_split
from flywheel_assets_tests.conftest import SMALL, assets_of, materialized, step
from flywheel_assets_tests.test_split_jobs import AD_LATEST, LATEST, OLDEST, paths

CATALOG_STEPS = ("ext_tables", "bucketed_tables", "part_tables")
BUCKETS = 8


def publish_split(spark, lake, snapshot):
    p = paths(lake)
    for job, source, target, csv in (
        ("infobase_split_and_bucket", p["ib_raw"], p["cluster_ib"], p["bucket_csv"]),
        ("addressable_bucket", p["ad_comp"], p["cluster_ad"], None),
        ("infobase_split_and_part", p["ib_raw"], p["part_ib"], p["part_csv"]),
        ("addressable_split_and_part", p["ad_raw"], p["part_ad"], None),
    ):
        run_split(spark, JOBS[job], source, target, snapshot, load_mapping(csv) if csv else None, 128 * 1024 * 1024)


def run_config(**bucketed):
    return {"ops": {"bucketed_tables": {"config": {"bucket_count": BUCKETS, **bucketed}}}}


def materialize_catalog(lake, catalog, snapshot, selection=None, config=None, raise_on_error=True):
    """The catalog steps for ``snapshot``; ``selection``: steps (all their tables) or asset keys."""
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [snapshot])
    config = config or run_config()
    assets = [step(assets_of(lake), s) for s in CATALOG_STEPS]
    keys = None
    if selection:  # config only for the selected steps
        by_step = {a.node_def.name: a for a in assets}
        keys = [k for s in selection for k in (by_step[s].keys if s in by_step else [AssetKey.from_user_string(s)])]
        names = {a.node_def.name for a in assets if set(a.keys) & set(keys)}
        config = {"ops": {k: v for k, v in config["ops"].items() if k in names}}
    return materialize(
        assets, partition_key=snapshot, instance=instance, selection=keys,
        resources={"lake": Lake(data_root=str(lake)), "catalog": catalog},
        run_config=config, raise_on_error=raise_on_error,
    )


def failure_message(result) -> str:
    return "\n".join(step_error_message(e.step_failure_data.error) for e in result.get_step_failure_events())


def count(catalog, table, where=""):
    return catalog.query(f"SELECT count(*) FROM {catalog.database}.{table} {where}")[1][0][0]


def snapshot_state(catalog):
    """Everything a reader sees of the catalog: names, columns, comments, locations, partitions."""
    return [(t.name, t.columns, t.comment, t.location, t.partitions, t.num_buckets)
            for t in catalog.list_tables(catalog.database)]


def publish_both(spark, lake, catalog):
    publish_split(spark, lake, OLDEST)
    materialize_catalog(lake, catalog, OLDEST)
    publish_split(spark, lake, LATEST)
    materialize_catalog(lake, catalog, LATEST)
    return lake, catalog


@pytest.fixture
def published(spark, lake, catalog):
    """Two snapshots through every catalog step, for a test that damages what is published."""
    return publish_both(spark, lake, catalog)


@pytest.fixture(scope="module")
def published_shared(spark, spark_url, _small_lake_template, tmp_path_factory):
    """The same, built once for the tests that only read it or re-run steps that leave it as it was."""
    from flywheel_assets.catalog.local import LocalCatalog
    from flywheel_assets.local_spark import LocalSpark

    lake = tmp_path_factory.mktemp("catalog-shared") / "lake"
    shutil.copytree(_small_lake_template, lake)
    catalog = LocalCatalog(database="t_catalog_local_shared", server=LocalSpark(home="unused", remote=spark_url))
    return publish_both(spark, lake, catalog)


def test_tables_columns_locations_comments_counts(published_shared):
    lake, catalog = published_shared
    mapping = load_mapping(paths(lake)["bucket_csv"])
    part_mapping = load_mapping(paths(lake)["part_csv"])
    tables = {t.name: t for t in catalog.list_tables(catalog.database)}
    bases = [t.lower() for t in mapping.tables] + ["addressable_ids"]
    parts = [t.lower() for t in part_mapping.tables] + ["addressable_ids"]
    assert set(tables) == {f"ext_{b}" for b in bases} | {f"bucketed_{b}" for b in bases} | {f"part_{p}" for p in parts}
    for table, columns in mapping.tables.items():
        ext = tables[f"ext_{table.lower()}"]
        assert [c.name for c in ext.columns] == ["customer_user_id", *columns]
        held = publish.current(str(lake / settings.SPLIT_CLUSTER_INFOBASE)).tables[table]  # its version folder
        assert ext.location == str(lake / settings.SPLIT_CLUSTER_INFOBASE / held) + "/" and f"/v{LATEST}_" in ext.location
        assert ext.snapshot == LATEST and ext.partitions == 0
        bucketed = tables[f"bucketed_{table.lower()}"]
        assert bucketed.columns == ext.columns
        assert (bucketed.bucket_columns, bucketed.num_buckets) == (["customer_user_id"], BUCKETS)
        assert bucketed.snapshot == LATEST
        assert bucketed.location.startswith(str(lake / settings.BUCKETED_BASE / table.lower()) + "/v")
        assert count(catalog, ext.name) == count(catalog, bucketed.name) == SMALL.rows
    held = publish.current(str(lake / settings.SPLIT_CLUSTER_ADDRESSABLE)).tables["addressable_ids"]
    assert tables["ext_addressable_ids"].location == str(lake / settings.SPLIT_CLUSTER_ADDRESSABLE / held) + "/"
    for p in parts:
        part = tables[f"part_{p}"]
        assert part.partition_keys == ["snapshot_dt"] and part.partitions == 2
        assert part.snapshot == LATEST
        for snap in (OLDEST, LATEST):
            assert count(catalog, part.name, f"WHERE snapshot_dt = '{snap}'") == SMALL.rows
    assert tables["part_addressable_ids"].location == str(lake / settings.SPLIT_PART_ADDRESSABLE) + "/"
    # the addressable sources landed a day before the infobase: the comments say what was read
    for name in ("ext_addressable_ids", "bucketed_addressable_ids", "part_addressable_ids"):
        assert (tables[name].snapshot, tables[name].source_snapshot) == (LATEST, AD_LATEST), name
    assert tables["ext_ibe_01"].source_snapshot == LATEST and "source_snapshot_dt" not in tables["ext_ibe_01"].comment


def test_bucketed_join_plans_no_shuffle(published_shared):
    _, catalog = published_shared
    catalog.spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    db = catalog.database

    def plan(a, b):
        return catalog.query(f"EXPLAIN SELECT * FROM {db}.{a} x JOIN {db}.{b} y ON x.customer_user_id = y.customer_user_id")[1][0][0]

    bucketed_plan = plan("bucketed_ibe_01", "bucketed_addressable_ids")
    assert "SortMergeJoin" in bucketed_plan and "Exchange" not in bucketed_plan
    assert "Exchange hashpartitioning" in plan("ext_ibe_01", "ext_addressable_ids")
    rows = catalog.query(f"SELECT count(*) FROM {db}.bucketed_ibe_01 x JOIN {db}.bucketed_addressable_ids y "
                         f"ON x.customer_user_id = y.customer_user_id")[1][0][0]
    assert rows == SMALL.rows
    # buckets of a few rows are written without a codec or dictionaries (neither would shrink
    # them); the table's definition names neither, and a large table's buckets stay snappy
    files = sizing.data_files(catalog.describe(db, "bucketed_ibe_01").location)
    chunks = [meta.row_group(0).column(i) for meta in map(sizing.footer, (uri for uri, _ in files))
              for i in range(meta.num_columns)]
    assert len(files) > 1 and {c.compression for c in chunks} == {"UNCOMPRESSED"}
    assert not any(c.has_dictionary_page for c in chunks)
    definition = catalog.query(f"SHOW CREATE TABLE {db}.bucketed_ibe_01")[1][0][0].lower()
    assert "compression" not in definition and "dictionary" not in definition
    assert (sizing.bucket_file_options(353_723, 256), sizing.bucket_file_options(31_685_836, 256)) == \
        ({"compression": "uncompressed", "parquet.enable.dictionary": "false"}, {"compression": "snappy"})
    for options, refused in (({"compression": "brotli"}, "compression 'brotli'"),
                             ({"parquet.enable.dictionary": "no'"}, "parquet.enable.dictionary \"no'\""),
                             ({"path": "/elsewhere"}, "parquet option 'path'")):
        with pytest.raises(FlywheelInputError, match=refused):
            catalog.replace_bucketed(db, "bucketed_x", (db, "ext_ibe_01"), "/tmp/unused", "customer_user_id", 4, "c",
                                     file_options=options)


def test_rerunning_a_partition_changes_nothing(published_shared):
    lake, catalog = published_shared
    before = snapshot_state(catalog)
    materialize_catalog(lake, catalog, LATEST, selection=["ext_tables", "part_tables"])
    assert snapshot_state(catalog) == before
    materialize_catalog(lake, catalog, LATEST, selection=["bucketed_tables"])
    after = snapshot_state(catalog)
    # a rebuild writes fresh files and swaps them in; all else stays as it was
    assert [row[:3] + row[4:] for row in after] == [row[:3] + row[4:] for row in before]
    assert count(catalog, "bucketed_ibe_01") == SMALL.rows


def test_tables_filter_builds_a_subset_and_rejects_unknown_or_sql(spark, lake, catalog):
    publish_split(spark, lake, LATEST)
    materialize_catalog(lake, catalog, LATEST, selection=["ext_tables"])
    materialize_catalog(lake, catalog, LATEST, selection=["bucketed_tables"],
                        config=run_config(tables_filter="addressable_ids, miacs_02_a"))
    assert sorted(t.name for t in catalog.list_tables(catalog.database, "bucketed_")) == [
        "bucketed_addressable_ids", "bucketed_miacs_02_a"]
    bad = materialize_catalog(lake, catalog, LATEST, selection=["bucketed_tables"], raise_on_error=False,
                              config=run_config(tables_filter="miacs_02_a,ibe_99"))
    assert not bad.success and ("TABLES_FILTER names ibe_99, which is not among the selected tables (addressable_ids, "
                                "ibe_01, ibe_01_a, ibe_04_b, miacs_02_a)") in failure_message(bad)
    bad = materialize_catalog(lake, catalog, LATEST, selection=["bucketed_tables"], raise_on_error=False,
                              config=run_config(tables_filter="ibe_01; DROP TABLE ext_ibe_01"))
    assert "TABLES_FILTER entry 'ibe_01; drop table ext_ibe_01' is not a valid identifier" in failure_message(bad)
    assert catalog.describe(catalog.database, "ext_ibe_01") is not None
    # the same by asset selection: one table's asset builds that table alone
    result = materialize_catalog(lake, catalog, LATEST, selection=["bucketed_ibe_01"])
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == ["bucketed_ibe_01"]
    assert sorted(t.name for t in catalog.list_tables(catalog.database, "bucketed_")) == [
        "bucketed_addressable_ids", "bucketed_ibe_01", "bucketed_miacs_02_a"]


def test_max_cols_names_the_table_and_count(spark, lake, catalog):
    publish_split(spark, lake, LATEST)
    result = materialize_catalog(lake, catalog, LATEST, selection=["ext_tables"], raise_on_error=False,
                                 config={"ops": {"ext_tables": {"config": {"max_cols": 5}}}})
    assert re.search(r"ext_ibe_01 has 8 columns, more than MAX_COLS=5", failure_message(result))
    assert catalog.list_tables(catalog.database) == []  # checked before anything was created


def test_ext_tables_refuse_a_stale_split(spark, lake, catalog):
    publish_split(spark, lake, OLDEST)
    result = materialize_catalog(lake, catalog, LATEST, selection=["ext_tables"], raise_on_error=False)
    assert f"holds snapshot_dt={OLDEST}, not {LATEST}: materialize its split for {LATEST} first" in failure_message(result)


def test_new_source_column_reaches_part_tables_and_old_partitions_stay(catalog, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "split_part" / "addressable_ids"
    for snap, table in (("2024-01-01", pa.table({"customer_user_id": ["a"], "x": [1]})),
                        ("2024-02-01", pa.table({"customer_user_id": ["b", "c"], "x": [2, 3], "y": ["new", "new"]}))):
        (root / f"snapshot_dt={snap}").mkdir(parents=True)
        pq.write_table(table, root / f"snapshot_dt={snap}" / "part-0.parquet")
    lake = tmp_path
    config = {"ops": {"part_tables": {"config": {"source_path": str(tmp_path / "split_part")}}}}
    for snap in ("2024-01-01", "2024-02-01"):
        materialize_catalog(lake, catalog, snap, selection=["part_tables"], config=config)
    info = catalog.describe(catalog.database, "part_addressable_ids")
    assert [c.name for c in info.columns] == ["customer_user_id", "x", "y"] and info.partitions == 2
    rows = catalog.query(f"SELECT customer_user_id, y FROM {catalog.database}.part_addressable_ids ORDER BY 1")[1]
    assert rows == [("a", None), ("b", "new"), ("c", "new")]


def test_failed_bucketed_rebuild_leaves_the_previous_table(published):
    lake, catalog = published
    before = catalog.describe(catalog.database, "bucketed_ibe_01")
    versions = lake / settings.BUCKETED_BASE / "ibe_01"
    versions_before = sorted(p.name for p in versions.iterdir())
    ext_dir = lake / settings.SPLIT_CLUSTER_INFOBASE / publish.current(str(lake / settings.SPLIT_CLUSTER_INFOBASE)).tables["IBE_01"]
    victim = next(ext_dir.glob("*.parquet"))
    victim.write_bytes(b"PAR1 truncated garbage")  # the rebuild's read fails mid-way
    result = materialize_catalog(lake, catalog, LATEST, selection=["bucketed_tables"], raise_on_error=False,
                                 config=run_config(tables_filter="ibe_01"))
    assert not result.success
    after = catalog.describe(catalog.database, "bucketed_ibe_01")
    assert after == before and count(catalog, "bucketed_ibe_01") == SMALL.rows
    assert catalog.describe(catalog.database, "bucketed_ibe_01__staging") is None
    assert sorted(p.name for p in versions.iterdir()) == versions_before  # the half-written version is gone


def test_msck_repair_mode_registers_every_partition_folder(spark, lake, catalog):
    publish_split(spark, lake, OLDEST)
    publish_split(spark, lake, LATEST)
    materialize_catalog(lake, catalog, LATEST, selection=["part_tables"],
                        config={"ops": {"part_tables": {"config": {"mode": "msck"}}}})
    for t in catalog.list_tables(catalog.database, "part_"):
        assert t.partitions == 2, t.name


def test_partition_registration_is_chunked_and_idempotent(catalog, tmp_path):
    spec = TableSpec(catalog.database, "part_many", str(tmp_path / "many"), [Column("customer_user_id", "string")],
                     comment="x", partition_keys=[Column("snapshot_dt", "string")])
    catalog.apply_table(spec)
    days = [f"2023-{m:02d}-{d:02d}" for m in range(1, 8) for d in range(1, 29)][:150]
    catalog.add_partitions(catalog.database, "part_many", [(d, str(tmp_path / "many" / f"snapshot_dt={d}")) for d in days])
    catalog.add_partitions(catalog.database, "part_many", [(days[0], str(tmp_path / "many" / f"snapshot_dt={days[0]}"))])
    assert catalog.describe(catalog.database, "part_many").partitions == 150


@pytest.mark.parametrize("bad, message", [
    ({"database": "prod; DROP DATABASE x"}, "database 'prod; DROP DATABASE x' is not a valid identifier"),
    ({"name": "../etc"}, "table '../etc' is not a valid identifier"),
    ({"location": "/tmp/x' OR '1"}, "is not an allowed path"),
    ({"location": "/data/../../etc"}, "is not an allowed path"),
    ({"comment": "it's"}, "contains quotes"),
    ({"columns": [Column("a-b", "string")]}, "column of t 'a-b' is not a valid column name"),
])
def test_names_are_validated_before_sql(bad, message):
    args = {"database": "d", "name": "t", "location": "/data/t", "columns": [Column("a", "string")], "comment": "c", **bad}
    with pytest.raises(FlywheelInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TableSpec(**args)


def test_failed_blocking_check_keeps_wrong_data_out_of_the_tables(spark_url, lake, catalog):
    """Null keys in the source: the split runs, its key_not_null check fails, ext_tables is not built."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flywheel_assets.local_spark import LocalSpark
    from flywheel_assets.resources import LocalSparkRunner

    folder = lake / settings.ADDRESSABLE_COMPACTION / f"snapshot_dt={AD_LATEST}"
    first = next(folder.glob("*.parquet"))
    table = pq.read_table(first)
    keys = table.column("Customer_User_id").to_pylist()
    keys[0] = None
    pq.write_table(table.set_column(0, "Customer_User_id", pa.array(keys, pa.string())), first)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [LATEST])
    assets = assets_of(lake)
    result = materialize(
        [step(assets, "addressable_bucket"), step(assets, "ext_tables")], partition_key=LATEST, instance=instance,
        selection=[AssetKey(["split_cluster", "addressable_ids"]), AssetKey("ext_addressable_ids")], raise_on_error=False,
        resources={"lake": Lake(data_root=str(lake)), "catalog": catalog,
                   "spark_jobs": LocalSparkRunner(server=LocalSpark(home="unused", remote=spark_url))},
        run_config={"ops": {"ext_tables": {"config": {"s3_roots": [settings.SPLIT_CLUSTER_ADDRESSABLE]}}}})
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}  # one table's
    assert not checks["key_not_null"].passed and checks["key_not_null"].metadata["null_or_blank_keys"].value == 1
    assert checks["row_count"].passed and checks["columns"].passed
    assert catalog.describe(catalog.database, "ext_addressable_ids") is None  # blocked downstream


def check_results(result) -> dict:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_catalog_checks_pass_on_a_published_snapshot(published_shared):
    lake, catalog = published_shared
    result = materialize_catalog(lake, catalog, LATEST)
    checks = check_results(result)
    assert all(c.passed for c in checks.values()) and len(checks) == 5 * 4  # 5 tables: ext, bucketed, part x 2
    assert {name for _, name in checks} == {"catalog_matches_storage", "bucket_spec", "partitions_match_data",
                                            "written_partitions_registered"}
    meta = materialized(result)
    assert meta["ext_ibe_01"]["dagster/row_count"].value == SMALL.rows
    assert meta["bucketed_ibe_01"]["dagster/table_name"].value == f"{catalog.database}.bucketed_ibe_01"
    assert [c.name for c in meta["part_ibe_01"]["dagster/column_schema"].value.columns][0] == "customer_user_id"
    assert meta["part_addressable_ids"]["dagster/uri"].value.rstrip("/") == str(lake / settings.SPLIT_PART_ADDRESSABLE)


def test_ext_table_over_a_folder_the_mapping_dropped_is_dropped(published, spark):
    """The new mapping has no IBE_04_B: the split does not stage it, so ext_ibe_04_b would read a
    replaced version; with the definitions reloaded it is no asset any more, and ext_tables drops it."""
    lake, catalog = published
    mapping = lake / settings.INFOBASE_BUCKET_MAPPING
    mapping.write_text("\n".join(line for line in mapping.read_text().splitlines() if not line.startswith("IBE_04")))
    run_split(spark, JOBS["infobase_split_and_bucket"], paths(lake)["ib_raw"], paths(lake)["cluster_ib"], LATEST,
              load_mapping(str(mapping)), 128 * 1024 * 1024)
    assert "IBE_04_B" not in publish.staged(str(lake / settings.SPLIT_CLUSTER_INFOBASE)).tables
    result = materialize_catalog(lake, catalog, LATEST, selection=["ext_tables"])
    assert catalog.describe(catalog.database, "ext_ibe_04_b") is None
    assert "ext_ibe_04_b" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert all(c.passed for c in check_results(result).values())
    assert catalog.describe(catalog.database, "bucketed_ibe_04_b") is not None  # readers of it keep what it held


def test_bucket_spec_check_fails_on_other_bucketing(published_shared):
    from flywheel_assets.pipelines.catalog_checks import bucketed_matches

    lake, catalog = published_shared
    base = str(lake / settings.BUCKETED_BASE)
    info = catalog.describe(catalog.database, "bucketed_ibe_01", partitions=False)
    key = AssetKey("bucketed_ibe_01")

    def problem(*args):
        return bucketed_matches(key, *args).metadata["problem"].value

    assert bucketed_matches(key, "bucketed_ibe_01", info, "customer_user_id", BUCKETS, base, LATEST).passed
    assert problem("bucketed_ibe_01", info, "customer_user_id", BUCKETS * 2, base, LATEST) == (
        f"bucketed by ['customer_user_id'] into {BUCKETS}, not ['customer_user_id'] into {BUCKETS * 2}")
    assert problem("bucketed_nope", None, "customer_user_id", BUCKETS, base, LATEST) == "not registered"
    assert problem("bucketed_ibe_01", info, "customer_user_id", BUCKETS, base, OLDEST) == (
        f"comment says snapshot_dt={LATEST}")


def test_registered_partition_without_data_fails_and_unregistered_folder_warns(published):
    lake, catalog = published
    table = lake / settings.SPLIT_PART_ADDRESSABLE
    shutil.rmtree(table / f"snapshot_dt={OLDEST}")  # registered, then lost
    shutil.copytree(table / f"snapshot_dt={LATEST}", table / "snapshot_dt=2030-01-01")  # written, not registered
    result = materialize_catalog(lake, catalog, LATEST, selection=["part_tables"], raise_on_error=False)
    checks = check_results(result)
    failed = {k: c.metadata["problem"].value for k, c in checks.items() if not c.passed}
    assert failed == {("part_addressable_ids", "partitions_match_data"): f"registered without data: {OLDEST}",
                      ("part_addressable_ids", "written_partitions_registered"): "written but not registered: 2030-01-01"}
    assert not result.success  # the blocking one fails the step


def test_tables_the_split_skipped_leave_the_catalog_consistent(spark, lake, catalog):
    """missing_columns: skip_table: the skipped table's ext table is dropped, the others are built,
    its part table gets no partition for the snapshot, and every catalog check passes."""
    publish_split(spark, lake, OLDEST)
    materialize_catalog(lake, catalog, OLDEST)
    p = paths(lake)
    for job, target in (("infobase_split_and_bucket", p["cluster_ib"]), ("infobase_split_and_part", p["part_ib"])):
        mapping = load_mapping(p["bucket_csv"])
        mapping.tables["IBE_01_A"].append("gone_column")
        mapping.lines[("IBE_01_A", "gone_column")] = 99
        result = run_split(spark, JOBS[job], p["ib_raw"], target, LATEST, mapping, 128 * 1024 * 1024,
                           missing_columns_policy="skip_table")
        assert result.skipped_tables == {"IBE_01_A": "missing gone_column (line 99)"}
    for job, source, target in (("addressable_bucket", p["ad_comp"], p["cluster_ad"]),
                                ("addressable_split_and_part", p["ad_raw"], p["part_ad"])):
        run_split(spark, JOBS[job], source, target, LATEST, None, 128 * 1024 * 1024)
    result = materialize_catalog(lake, catalog, LATEST)
    checks = check_results(result)
    assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items() if not c.passed}
    tables = {t.name: t for t in catalog.list_tables(catalog.database)}
    assert "ext_ibe_01_a" not in tables and tables["ext_ibe_01"].snapshot == LATEST
    meta = materialized(result)
    assert meta["ext_ibe_01_a"]["skipped_by_split"].value == "missing gone_column (line 99)"
    assert meta["part_ibe_01_a"]["partition_registered"].value is False
    assert catalog.partition_values(catalog.database, "part_ibe_01_a") == [OLDEST]
    assert sorted(catalog.partition_values(catalog.database, "part_ibe_01")) == [OLDEST, LATEST]


def test_list_tables_reads_all_tables_in_one_statement_as_describe_does(catalog, tmp_path):
    """SHOW TABLE EXTENDED for every table at once gives what DESCRIBE gives table by table; a
    table with a nested column (its schema prints over several lines) is described on its own."""
    db = catalog.database
    catalog.ensure_database(db)
    catalog.sql(f"CREATE TABLE {db}.t_flat (customer_user_id string, n bigint, i int, s smallint, d decimal(12,2), "
                f"day date, ok boolean) USING parquet LOCATION '{tmp_path / 'flat'}' COMMENT 'ext; snapshot_dt=2024-02-15'")
    catalog.sql(f"CREATE TABLE {db}.t_nested (customer_user_id string, tags array<string>) USING parquet "
                f"PARTITIONED BY (snapshot_dt string) LOCATION '{tmp_path / 'nested'}'")
    catalog.sql(f"CREATE TABLE {db}.t_bucketed (customer_user_id string) USING parquet "
                f"CLUSTERED BY (customer_user_id) INTO 4 BUCKETS LOCATION '{tmp_path / 'bucketed'}'")
    listed = catalog.list_tables(db, "t_")
    assert [t.name for t in listed] == ["t_bucketed", "t_flat", "t_nested"]
    assert listed == [catalog.describe(db, t.name) for t in listed]
    assert [c.type for c in listed[1].columns] == ["string", "bigint", "int", "smallint", "decimal(12,2)", "date",
                                                   "boolean"]
    assert (listed[0].bucket_columns, listed[0].num_buckets) == (["customer_user_id"], 4)
    assert listed[2].partition_keys == ["snapshot_dt"] and listed[1].snapshot == "2024-02-15"
    with pytest.raises(FlywheelInputError, match="table prefix"):
        catalog.list_tables(db, "t_' OR '1")


def test_bucketed_rebuild_over_a_killed_builds_leftover_staging_table(catalog, spark, tmp_path):
    """A build killed between its CTAS and its swap leaves ``<name>__staging`` (other columns, its
    own files): the next build replaces it, and the leftover's files stay where they were."""
    db = catalog.database
    catalog.ensure_database(db)
    spark.createDataFrame([(f"k{i}", i) for i in range(20)], "customer_user_id string, n int") \
        .write.parquet(str(tmp_path / "source"))
    catalog.sql(f"CREATE TABLE {db}.t_source USING parquet LOCATION '{tmp_path / 'source'}'")
    catalog.sql(f"CREATE TABLE {db}.b_t__staging (other string) USING parquet LOCATION '{tmp_path / 'leftover'}'")
    catalog.replace_bucketed(db, "b_t", (db, "t_source"), str(tmp_path / "versions"), "customer_user_id", 4,
                             "bucketed; snapshot_dt=2024-02-15", writers=1)
    built = catalog.describe(db, "b_t")
    assert [c.name for c in built.columns] == ["customer_user_id", "n"] and built.num_buckets == 4
    assert built.location.startswith(str(tmp_path / "versions")) and built.snapshot == "2024-02-15"
    assert catalog.query(f"SELECT COUNT(*), SUM(n) FROM {db}.b_t")[1] == [(20, 190)]
    assert catalog.describe(db, "b_t__staging") is None
    # a partition's location in one statement; none for a partition never registered
    spec = TableSpec(db, "t_parts", str(tmp_path / "parts"), [Column("customer_user_id", "string")], comment="x",
                     partition_keys=[Column("snapshot_dt", "string")])
    catalog.apply_table(spec)
    catalog.add_partitions(db, "t_parts", [("2024-02-15", str(tmp_path / "parts" / "snapshot_dt=2024-02-15" / "_v1"))])
    assert catalog.partition_location(db, "t_parts", "2024-02-15").rstrip("/") == \
        str(tmp_path / "parts" / "snapshot_dt=2024-02-15" / "_v1")
    assert catalog.partition_location(db, "t_parts", "2024-03-15") is None


def test_key_counts_see_files_written_after_the_catalog_last_read_the_table(catalog, spark, tmp_path):
    """The catalog's session caches a table's file listing once it has read it; files written
    since (another process's job, a repair) still count, and the session's settings are as they were."""
    db = catalog.database
    catalog.ensure_database(db)
    folder = tmp_path / "t"
    spark.createDataFrame([("a",), ("b",)], "customer_user_id string").write.parquet(str(folder / "one"))
    catalog.sql(f"CREATE TABLE {db}.t_counted (customer_user_id string) USING parquet LOCATION '{folder / 'one'}'")
    assert catalog.query(f"SELECT COUNT(*) FROM {db}.t_counted")[1] == [(2,)]  # listed and cached
    spark.createDataFrame([("b",), ("c",), (None,)], "customer_user_id string").write.mode("append") \
        .parquet(str(folder / "one"))
    assert catalog.key_stats([(db, "t_counted", "customer_user_id", None)]) == [(5, 4, 3)]
    assert catalog.spark.conf.get("spark.sql.sources.bucketing.enabled") == "true"


def test_entity_resolution_table_is_rebuilt_for_each_snapshot_and_swapped_in(spark, lake, catalog):
    """part_addressable_ids_er: each key of the snapshot once, as its row_id; a new snapshot gets a
    fresh folder and one catalog update; the previous version stays for its readers, older go."""
    db = catalog.database
    for snap in (OLDEST, LATEST):
        publish_split(spark, lake, snap)
        materialize_catalog(lake, catalog, snap, selection=["part_tables"])
    er = step(assets_of(lake), "part_addressable_ids_er")
    versions = lake / settings.IDENTITY_BASE
    locations = []
    for snap in (OLDEST, LATEST, LATEST):
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("snapshot_dt", [snap])
        result = materialize([er], partition_key=snap, instance=instance,
                             resources={"lake": Lake(data_root=str(lake)), "catalog": catalog})
        assert [c.passed for c in result.get_asset_check_evaluations()] == [True]
        info = catalog.describe(db, "part_addressable_ids_er")
        locations.append(info.location)
        assert [(c.name, c.type) for c in info.columns] == [("row_id", "string"), ("customer_user_id", "string")]
        assert info.snapshot == snap
        keys = catalog.query(f"SELECT count(DISTINCT customer_user_id) FROM {db}.part_addressable_ids "
                             f"WHERE snapshot_dt = '{snap}'")[1][0][0]
        assert catalog.query(f"SELECT count(*), count(DISTINCT row_id), sum(CASE WHEN row_id = customer_user_id "
                             f"THEN 1 ELSE 0 END) FROM {db}.part_addressable_ids_er")[1] == [(keys, keys, keys)]
        assert materialized(result)["part_addressable_ids_er"]["dagster/row_count"].value == keys
    assert len(set(locations)) == 3  # a fresh folder each time
    assert sorted(str(p) + "/" for p in versions.iterdir()) == sorted(locations[1:])  # the previous one kept
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", ["2030-01-01"])
    missing = materialize([er], partition_key="2030-01-01", instance=instance, raise_on_error=False,
                          resources={"lake": Lake(data_root=str(lake)), "catalog": catalog})
    assert "has no partition snapshot_dt=2030-01-01: materialize part_addressable_ids first" in failure_message(missing)
    assert catalog.describe(db, "part_addressable_ids_er").location == locations[-1]  # untouched


def test_a_failed_infobase_split_leaves_both_roots_on_the_previous_snapshot(spark, spark_url, lake, catalog):
    """A run for a new snapshot whose infobase split fails and addressable split succeeds: the
    addressable files are written and staged, but no ext table moves to the new snapshot."""
    from flywheel_assets.local_spark import LocalSpark
    from flywheel_assets.resources import LocalSparkRunner

    publish_split(spark, lake, OLDEST)
    materialize_catalog(lake, catalog, OLDEST, selection=["ext_tables"])
    before = {t.name: (t.location, t.comment) for t in catalog.list_tables(catalog.database, "ext_")}
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [LATEST])
    assets = assets_of(lake)
    result = materialize(
        [step(assets, s) for s in ("infobase_split", "addressable_bucket", "ext_tables")], partition_key=LATEST,
        instance=instance, raise_on_error=False,
        resources={"lake": Lake(data_root=str(lake)), "catalog": catalog,
                   "spark_jobs": LocalSparkRunner(server=LocalSpark(home="unused", remote=spark_url))},
        run_config={"ops": {"infobase_split": {"config": {"csv_file": "omc_cleanroom_data/no_such_mapping.csv"}}}})
    failed = {e.step_key for e in result.get_step_failure_events()}
    done = {e.step_key for e in result.get_step_success_events()}
    assert failed == {"infobase_split"} and done == {"addressable_bucket"}  # ext_tables did not run
    roots = {r: str(lake / r) for r in (settings.SPLIT_CLUSTER_INFOBASE, settings.SPLIT_CLUSTER_ADDRESSABLE)}
    assert publish.staged(roots[settings.SPLIT_CLUSTER_ADDRESSABLE]).snapshot_dt == LATEST  # written, not switched
    assert {r: publish.published_snapshot(p) for r, p in roots.items()} == dict.fromkeys(roots, OLDEST)
    assert {t.name: (t.location, t.comment) for t in catalog.list_tables(catalog.database, "ext_")} == before
    assert count(catalog, "ext_addressable_ids") == SMALL.rows
    # ext_tables asked for LATEST anyway: refused before any table or root changes
    forced = materialize_catalog(lake, catalog, LATEST, selection=["ext_tables"], raise_on_error=False)
    assert f"holds snapshot_dt={OLDEST}, not {LATEST}" in failure_message(forced)
    assert {t.name: (t.location, t.comment) for t in catalog.list_tables(catalog.database, "ext_")} == before
    assert publish.published_snapshot(roots[settings.SPLIT_CLUSTER_ADDRESSABLE]) == OLDEST


def test_a_re_published_part_snapshot_is_switched_to_by_part_tables(spark, lake, catalog):
    """Re-running the split of a snapshot that is registered writes a hidden version in its folder;
    readers keep the old files until part_tables points the partition at it, and each switch
    deletes the versions older than the one it replaced."""
    p = paths(lake)
    table = next(iter(load_mapping(p["part_csv"]).tables))
    name, folder = f"part_{table.lower()}", Path(p["part_ib"]) / table / f"snapshot_dt={LATEST}"

    def split_again():
        run_split(spark, JOBS["infobase_split_and_part"], p["ib_raw"], p["part_ib"], LATEST,
                  load_mapping(p["part_csv"]), 128 * 1024 * 1024)

    def served() -> str:
        return catalog.partition_location(catalog.database, name, LATEST).rstrip("/")

    split_again()
    materialize_catalog(lake, catalog, LATEST, selection=[name])
    assert served() == str(folder)
    original = sorted(folder.glob("*.parquet"))
    split_again()
    assert served() == str(folder) and count(catalog, name) == SMALL.rows  # not switched yet
    result = materialize_catalog(lake, catalog, LATEST, selection=[name])
    first = Path(served())
    assert first.parent == folder and first.name.startswith("_v") and count(catalog, name) == SMALL.rows
    assert all(c.passed for c in check_results(result).values())
    assert all(f.exists() for f in original)  # what it replaced stays for readers still on it
    split_again()
    materialize_catalog(lake, catalog, LATEST, selection=[name])
    second = Path(served())
    assert second != first and count(catalog, name) == SMALL.rows
    assert not any(f.exists() for f in original) and first.exists()  # the one before that is deleted
    assert sorted(d.name for d in folder.iterdir() if d.is_dir()) == sorted([first.name, second.name])
