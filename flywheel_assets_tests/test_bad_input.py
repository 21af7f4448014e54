"""Every row of docs/bad_input.md: the bad input, the message the user gets, nothing published changed.

One lake is published once (snapshot OLDEST through the whole graph). Each case writes its bad
input beside it (under ``bad/<case>/``, inside the data root), materializes one asset the way the
UI or the sensor would (local Spark runner through Pipes, local catalog), and checks that the
error says what is wrong and where, and that every published file and catalog entry is as it was.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import AssetsDefinition, DagsterInstance, DagsterInvalidConfigError, materialize

from flywheel_assets import settings
from flywheel_assets.catalog.local import LocalCatalog
from flywheel_assets.demo_data import addressable_dates, attribute_names, write_demo_lake
from flywheel_assets.local_spark import LocalSpark
from flywheel_assets.messages import step_error_message
from flywheel_assets.resources import Lake, LocalSparkRunner
from flywheel_assets_tests.conftest import SMALL, assets_of, materialized, step
from flywheel_assets_tests.test_split_jobs import LATEST as NEWEST
from flywheel_assets_tests.test_split_jobs import OLDEST

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad_input.md"
NEW = "2030-01-01"
EARLY = "2023-01-01"  # before every source's first snapshot
BUCKETS = 8
A_STR, A_INT = attribute_names(SMALL)[0].lower(), attribute_names(SMALL)[1].lower()  # mapped to IBE_01
PRODUCTION_HEADER = "\ufeffOMC_FLYWHEEL_TABLE,OMC_FLYWHEEL_COLUMN,FUNCTION_DESCRIPTION,OPUS_COLUMN,ELEMENT_NUMBER\r\n"


@dataclass
class Case:
    asset: str  # the step
    message: str  # a regular expression the user-facing error must match
    setup: Callable[[Path, Path], dict]  # (lake, folder for this case's files) -> the asset's config
    partition: str = NEW
    tables: tuple[str, ...] = ()  # the step's tables to select (default: all)


def raw(lake: Path, snapshot: str = OLDEST) -> pa.Table:
    return pq.read_table(lake / settings.INFOBASE_RAW / f"snapshot_dt={snapshot}")


def raw_addressable(lake: Path) -> pa.Table:
    return pq.read_table(lake / settings.ADDRESSABLE_COMPACTION / f"snapshot_dt={addressable_dates(SMALL)[0]}")


def source(folder: Path, table: pa.Table | None, snapshot: str = NEW, extra: dict[str, bytes] | None = None) -> str:
    """A raw source with one snapshot: ``table`` as parquet and ``extra`` files beside it."""
    snap = folder / "src" / f"snapshot_dt={snapshot}"
    snap.mkdir(parents=True)
    if table is not None:
        pq.write_table(table, snap / "part-00000.parquet")
    for name, body in (extra or {}).items():
        (snap / name).write_bytes(body)
    return str((folder / "src").relative_to(folder.parent.parent))


def mapping(folder: Path, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mapping.csv").write_text(text)
    return str((folder / "mapping.csv").relative_to(folder.parent.parent))


def with_mapping(text: str) -> Callable:
    return lambda lake, folder: {"csv_file": mapping(folder, text), "source_path": settings.INFOBASE_RAW}


def with_source(make: Callable[[pa.Table], pa.Table], extra: dict[str, bytes] | None = None) -> Callable:
    def setup(lake, folder):
        return {"source_path": source(folder, make(raw(lake)) if make else None, extra=extra)}
    return setup


def named(table: pa.Table, lower: str) -> str:
    """The source's spelling of a column (the sample lake mixes cases)."""
    return next(c for c in table.column_names if c.lower() == lower)


def null_key(table: pa.Table) -> pa.Table:
    key = named(table, "customer_user_id")
    keys = table.column(key).to_pylist()
    keys[0] = None
    return table.set_column(table.column_names.index(key), key, pa.array(keys, pa.string()))


def drifted(lake, folder):
    table = raw(lake)
    column = named(table, A_INT)
    index = table.column_names.index(column)
    table = table.set_column(index, column, pc.cast(table.column(index), pa.string()))
    return {"source_path": source(folder, table)}


def outside(kind: str) -> Callable:
    return lambda lake, folder: {kind: "../elsewhere/" if kind == "source_path" else "/tmp/flywheel-elsewhere/"}


HEADER = "table_name,column_name\n"
CASES: dict[str, Case] = {
    # mapping files
    "mapping-empty": Case("infobase_split", r"mapping\.csv: mapping file is empty", with_mapping(""), OLDEST),
    "mapping-header-only": Case("infobase_split", r"mapping\.csv: mapping file has a header but no rows",
                                with_mapping(HEADER), OLDEST),
    "mapping-wrong-header": Case("infobase_split", r"mapping\.csv, line 1: no recognisable header; expected one with "
                                 r"OMC_FLYWHEEL_TABLE,OMC_FLYWHEEL_COLUMN or table_name,column_name",
                                 with_mapping("table_name,col\nIBE_01,x\n"), OLDEST),
    "mapping-no-header": Case("infobase_split", r"mapping\.csv, line 1: no recognisable header",
                              with_mapping(f"IBE_01,customer_user_id,Customer User ID,CUSTOMER_USER_ID,X\r\n"
                                           f"IBE_01,{A_STR},Desc,{A_STR.upper()},1\r\n"), OLDEST),
    "mapping-short-row": Case("infobase_split", r"mapping\.csv, line 2: 1 fields, the header has 2",
                              with_mapping(HEADER + "IBE_01\n"), OLDEST),
    "mapping-broken-quoting": Case("infobase_split", r"mapping\.csv, line 3: a quoted field runs over lines 3-4 "
                                   r"\(unbalanced quote\?\)",
                                   with_mapping(PRODUCTION_HEADER + f"IBE_01,{A_STR},Desc,{A_STR.upper()},1\r\n"
                                                f"IBE_01,{A_INT},\"Super Category - Automotive, Auto,{A_INT.upper()},2\r\n"
                                                f"IBE_01_A,{A_INT},Plain,{A_INT.upper()},3\r\n"), OLDEST),
    "mapping-many-problems": Case("infobase_split", r"mapping\.csv: 3 problems:\n  line 2: table name '\.\./x'.*\n"
                                  r"  line 3: 1 fields.*\n  line 5: column '" + A_STR + "' listed twice",
                                  with_mapping(HEADER + f"../x,{A_STR}\nIBE_01\nIBE_01,{A_STR}\nIBE_01,{A_STR}\n"),
                                  OLDEST),
    "mapping-missing-file": Case("infobase_split", r"mapping file not found: .*/bad/mapping-missing-file/none\.csv",
                                 lambda lake, folder: {"csv_file": "bad/mapping-missing-file/none.csv"}, OLDEST),
    "missing-columns-fail": Case("infobase_split", r"mapping\.csv: 2 mapped column\(s\) not in the source snapshot "
                                 r".*: IBE_01: no_such_attr \(line 3\); IBE_01_A: gone \(line 4\) \(set missing_columns: "
                                 r"skip_table to publish the other tables\)",
                                 with_mapping(HEADER + f"IBE_01,{A_STR}\nIBE_01,no_such_attr\nIBE_01_A,gone\n"), OLDEST),
    "missing-columns-skip-every-table": Case(
        "infobase_split", r"mapping\.csv: every table lacks source columns: IBE_01: no_such_attr \(line 2\)",
        lambda lake, folder: {**with_mapping(HEADER + "IBE_01,no_such_attr\n")(lake, folder),
                              "missing_columns": "skip_table"}, OLDEST),
    "mapping-duplicate-column": Case("infobase_split", r"mapping\.csv, line 3: column '" + A_STR + "' listed twice for "
                                     r"table IBE_01 \(first on line 2\)",
                                     with_mapping(HEADER + f"IBE_01,{A_STR}\nIBE_01,{A_STR.upper()}\n"), OLDEST),
    "mapping-table-path-separator": Case("infobase_split", r"mapping\.csv, line 2: table name '\.\./IBE_01' is not "
                                         "allowed", with_mapping(HEADER + f"../IBE_01,{A_STR}\n"), OLDEST),
    "mapping-table-case-clash": Case("infobase_split", r"tables 'IBE_01' and 'ibe_01' differ only in case",
                                     with_mapping(HEADER + f"IBE_01,{A_STR}\nibe_01,{A_INT}\n"), OLDEST),
    "mapping-reserved-column": Case("infobase_split", r"line 2: column 'snapshot_dt' is reserved for partitioning",
                                    with_mapping(HEADER + "IBE_01,snapshot_dt\n"), OLDEST),
    # source snapshots
    "source-lowercase-collision": Case("infobase_split", r"columns not usable: '" + A_STR.upper() + "' and '" + A_STR +
                                       "' collide after lowercasing",
                                       with_source(lambda t: t.append_column(A_STR, t.column(1)))),
    "source-missing-key": Case("infobase_split", r"key column 'customer_user_id' missing",
                               with_source(lambda t: t.drop_columns([named(t, "customer_user_id")]))),
    # an odd name no table uses is only reported; the addressable jobs take every column, so there it is used
    "source-bad-column-name": Case("addressable_bucket", r"columns not usable: 'Spend \$' \(letters, digits and _ only\)",
                                   lambda lake, folder: {"source_path": source(
                                       folder, raw_addressable(lake).append_column("Spend $", pa.array([1.0] * SMALL.rows)))}),
    "source-null-keys": Case("infobase_split", r"blocking asset check.* failed.*\n(.*\n)*.*split_cluster/ibe_01: key_not_null",
                             with_source(null_key)),
    "snapshot-bad-date": Case("infobase_split", r"snapshot_dt must be a date YYYY-MM-DD .*got '2030-02-30'",
                              lambda lake, folder: {"source_path": source(folder, raw(lake), "2030-02-30")},
                              "2030-02-30"),
    "snapshot-missing": Case("infobase_split", r"snapshot_dt=2030-01-01 not found under .*; available snapshots: "
                             f"{OLDEST}", lambda lake, folder: {"source_path": source(folder, raw(lake), OLDEST)}),
    "snapshot-empty-folder": Case("infobase_split", r"snapshot_dt=2030-01-01 is empty: no data files",
                                  with_source(None, extra={"_SUCCESS": b""})),
    "snapshot-zero-rows": Case("infobase_split", r"snapshot_dt=2030-01-01 is empty: 0 rows",
                               with_source(lambda t: t.slice(0, 0))),
    "snapshot-non-parquet-file": Case("infobase_split", r"notes\.csv is not a readable parquet file",
                                      with_source(lambda t: t, extra={"notes.csv": b"a,b\n1,2\n"})),
    "snapshot-corrupt-parquet": Case("infobase_split", r"part-00001\.parquet is not a readable parquet file",
                                     with_source(lambda t: t, extra={"part-00001.parquet": b"PAR1\x00\x01truncated"})),
    "schema-drift": Case("infobase_split_part", r"column types changed since snapshot_dt=" + OLDEST +
                         ": " + A_INT + r" \(int64 -> string\)", drifted),
    "snapshot-unsatisfiable": Case("addressable_split_part", r"no snapshot at or before snapshot_dt=" + EARLY + " under .*"
                                   r"addressable_ids/raw_input; available snapshots: " + addressable_dates(SMALL)[0],
                                   lambda lake, folder: {}, EARLY),
    # catalog steps
    "tables-filter-unknown": Case("bucketed_tables", r"TABLES_FILTER names ibe_99, which is not among the selected "
                                  r"tables \(addressable_ids, ibe_01", lambda lake, folder: {"tables_filter": "ibe_01,ibe_99"},
                                  OLDEST),
    "tables-filter-sql": Case("bucketed_tables", r"TABLES_FILTER entry \"ibe_01' or '1'='1\" is not a valid identifier",
                              lambda lake, folder: {"tables_filter": "ibe_01' OR '1'='1"}, OLDEST),
    "bucket-count-not-a-number": Case("bucketed_tables", r'bucket_count.*\n?.*Value "sixteen" .*not.*Int|'
                                      r'bucket_count.*is not valid',
                                      lambda lake, folder: {"bucket_count": "sixteen"}, OLDEST),
    "bucket-count-zero": Case("bucketed_tables", r"BUCKET_COUNT must be a positive whole number up to 100000, got 0",
                              lambda lake, folder: {"bucket_count": 0}, OLDEST),
    "max-cols-not-a-number": Case("ext_tables", r"max_cols.*is not valid|Value \"lots\" .*Int",
                                  lambda lake, folder: {"max_cols": "lots"}, OLDEST),
    "max-cols-exceeded": Case("ext_tables", r"ext_\w+ has \d+ columns, more than MAX_COLS=3",
                              lambda lake, folder: {"max_cols": 3}, OLDEST),
    "database-name-sql": Case("part_tables", r"STAGED_DB 'prod; drop table x' is not a valid identifier",
                              lambda lake, folder: {"staged_db": "prod; drop table x"}, OLDEST),
    "target-file-mb-zero": Case("infobase_split", r"--TARGET_FILE_MB must be a positive whole number, got '0'",
                                lambda lake, folder: {"target_file_mb": 0}, OLDEST),
    "path-outside-root-relative": Case("infobase_split", r"path '\.\./elsewhere/' is outside the data root",
                                       outside("source_path"), OLDEST),
    "path-outside-root-absolute": Case("infobase_split", r"path '/tmp/flywheel-elsewhere/' is outside the data root",
                                       outside("target_path"), OLDEST),
}


@pytest.fixture(scope="module")
def published(tmp_path_factory, spark_url):
    """The small lake with OLDEST published through every asset; its files and catalog fingerprinted."""
    lake = tmp_path_factory.mktemp("bad-input") / "lake"
    write_demo_lake(lake, SMALL)
    catalog = LocalCatalog(database="t_bad_input", server=LocalSpark(home="unused", remote=spark_url))
    resources = {"lake": Lake(data_root=str(lake)), "catalog": catalog,
                 "spark_jobs": LocalSparkRunner(server=LocalSpark(home="unused", remote=spark_url))}
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [OLDEST, NEW, EARLY, "2030-02-30"])
    assets = [a for a in assets_of(lake) if isinstance(a, AssetsDefinition) and a.node_def.name != "cleanrooms_report"]
    materialize(assets, partition_key=OLDEST, instance=instance, resources=resources,
                run_config={"ops": {"bucketed_tables": {"config": {"bucket_count": BUCKETS}}}})
    return lake, catalog, resources, instance, state(lake, catalog), assets


def selection(assets: list, case: Case) -> list:
    keys = step(assets, case.asset).keys
    return [k for k in keys if k.path[-1] in case.tables] if case.tables else list(keys)


def state(lake: Path, catalog: LocalCatalog) -> dict:
    files = {str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((lake / "omc_cleanroom_data").rglob("*")) if p.is_file()}
    tables = {t.name: (t.columns, t.comment, t.location, t.bucket_columns, t.num_buckets,
                       catalog.partitions(catalog.database, t.name) if t.partition_keys else None)
              for t in catalog.list_tables(catalog.database, partitions=False)}
    return {"files": files, "tables": tables}


def attempt(published, name: str, case: Case) -> str:
    """Materialize the case's asset with its bad input; the text the user is shown."""
    lake, catalog, resources, instance, _, assets = published
    folder = lake / "bad" / name
    config = case.setup(lake, folder)
    if case.asset == "bucketed_tables":
        config = {"bucket_count": BUCKETS, **config}
    try:
        result = materialize(assets, selection=selection(assets, case), partition_key=case.partition,
                             instance=instance, resources=resources, raise_on_error=False,
                             run_config={"ops": {case.asset: {"config": config}}})
    except DagsterInvalidConfigError as exc:
        return str(exc)
    assert not result.success, f"{name}: the run succeeded"
    return "\n".join(step_error_message(e.step_failure_data.error) for e in result.get_step_failure_events())


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_clearly_and_nothing_published_changes(published, name):
    lake, catalog, _, _, before, _ = published
    message = attempt(published, name, CASES[name])
    assert re.search(CASES[name].message, message), f"{name}: {message}"
    after = state(lake, catalog)
    assert after["tables"] == before["tables"]
    assert after["files"] == before["files"]
    shutil.rmtree(lake / "bad" / name, ignore_errors=True)


# Accepted on request: the run publishes and a warning check alerts (docs/bad_input.md, second table).
ACCEPTED: dict[str, Case] = {
    "missing-columns-skip-table": Case(
        "infobase_split_part", "not_skipped",
        lambda lake, folder: {**with_mapping(HEADER + f"IBE_01,{A_STR}\nIBE_01_A,{A_INT}\nIBE_01_A,gone\n")(lake, folder),
                              "missing_columns": "skip_table"}, OLDEST, ("ibe_01", "ibe_01_a")),
    "null-keys-tolerated": Case("infobase_split_part", "key_not_null",
                                lambda lake, folder: {**with_source(null_key)(lake, folder), "max_bad_keys": "0.5%"}),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_inputs_publish_and_warn(lake, spark_url, name):
    case = ACCEPTED[name]
    runner = LocalSparkRunner(server=LocalSpark(home="unused", remote=spark_url))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [case.partition])
    config = case.setup(lake, lake / "bad" / name)
    assets = [a for a in assets_of(lake) if isinstance(a, AssetsDefinition) and a.node_def.name != "cleanrooms_report"]
    result = materialize(assets, selection=selection(assets, case), partition_key=case.partition, instance=instance,
                         resources={"lake": Lake(data_root=str(lake)), "spark_jobs": runner,
                                    "catalog": LocalCatalog(database="t_accepted", server=runner.server)},
                         run_config={"ops": {case.asset: {"config": config}}})
    assert result.success
    checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    warned = {k for k, c in checks.items() if not c.passed}
    assert all(checks[k].severity.value == "WARN" for k in warned)
    meta = materialized(result)
    target = lake / settings.SPLIT_PART_INFOBASE
    if name == "missing-columns-skip-table":  # the skipped table fails its checks as warnings; IBE_01 passes
        assert warned == {("ibe_01_a", c) for c in ("row_count", "columns", "file_sizing", "not_skipped")}
        assert meta["split_part/ibe_01_a"]["published"].value is False
        assert checks[("ibe_01_a", "not_skipped")].metadata["skipped"].value == "missing gone (line 4)"
        assert meta["split_part/ibe_01"]["dagster/row_count"].value == SMALL.rows
        assert [p.parent.name for p in target.glob("*/snapshot_dt=*")] == ["IBE_01"]
        from flywheel_assets.core import publish

        assert publish.part_table_skipped(str(target / "IBE_01_A"), case.partition) == "missing gone (line 4)"
    else:
        assert {n for _, n in warned} == {"key_not_null"} and len(warned) == 4  # every table of the source
        assert meta["split_part/ibe_01"]["null_or_blank_keys"].value == 1
        out = pq.read_table(target / "IBE_01" / f"snapshot_dt={case.partition}")
        assert out.num_rows == SMALL.rows and out.column("customer_user_id").null_count == 1


def test_flywheel_run_says_which_source_cannot_serve_a_snapshot(lake):
    from flywheel_assets.orchestration import resolve_run_snapshot

    with pytest.raises(Exception, match=r"snapshot_dt=" + EARLY + r" cannot be run: .*addressable_ids_compaction_cr has no "
                                        r"snapshot on or before " + EARLY + r" \(it has: " + addressable_dates(SMALL)[0]):
        resolve_run_snapshot(Lake(data_root=str(lake)), ["split_cluster/addressable_ids"], EARLY)
    # the addressable sources landed a day before the infobase: 'latest' is the infobase's newest
    assert resolve_run_snapshot(Lake(data_root=str(lake)), [], "latest") == NEWEST


def test_every_documented_bad_input_has_a_case_and_every_case_is_documented():
    documented = re.findall(r"^\| `([a-z0-9-]+)` \|", DOC.read_text(), re.M)
    assert documented == list(CASES) + list(ACCEPTED)
    assert len(documented) >= 20
