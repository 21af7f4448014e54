"""Every statement template sent to Athena, parsed by a real SQL parser in Athena's dialect.

moto accepts any query text without running it, so without this a syntax slip would first fail in
production. The moto-backed catalog tests also pass every statement they send through
``assert_athena_sql`` (test_catalog_aws.py).
"""

from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from flywheel_assets.catalog import athena_sql
from flywheel_assets.core.errors import FlywheelInputError

MSCK = re.compile(r"^MSCK REPAIR TABLE (\S+)$")


def assert_athena_sql(sql: str) -> exp.Expression | None:
    """Parse ``sql`` as Athena would; sqlglot reads ``MSCK REPAIR`` only as an opaque command, so its
    structure and table reference are checked separately (Hive dialect, as Athena's DDL)."""
    match = MSCK.match(sql)
    if match:
        table = sqlglot.parse_one(match.group(1), read="hive", into=exp.Table)
        assert table.db and table.name, sql
        return None
    parsed = sqlglot.parse_one(sql, read="athena")  # raises ParseError on a syntax slip
    assert not isinstance(parsed, exp.Command), f"not parsed as SQL (unsupported syntax?): {sql}"
    return parsed


def ctas_parts(sql: str) -> dict:
    """What an Athena CTAS statement asks for, read from its parse tree."""
    create = assert_athena_sql(sql)
    assert isinstance(create, exp.Create) and create.kind == "TABLE", sql
    properties = {}
    for prop in create.args["properties"].expressions:
        if isinstance(prop, exp.FileFormatProperty):
            properties["format"] = prop.this.name
        else:
            value = prop.args["value"]
            properties[prop.name] = ([e.name for e in value.expressions] if isinstance(value, exp.Array)
                                     else int(value.name) if value.is_int else value.name)
    select = create.expression
    source = select.find(exp.From).this
    where = select.args.get("where")
    return {**properties, "table": (create.this.db, create.this.name),
            "columns": [c.alias_or_name for c in select.selects], "source": (source.db, source.name),
            **({"distinct": True} if select.args.get("distinct") else {}),
            **({"where": where.this.sql("athena")} if where else {})}


def test_bucketed_ctas_is_valid_athena_sql_with_snappy_and_the_key_first():
    sql = athena_sql.bucketed_ctas("omc_flywheel_prod", "bucketed_ibe_01__staging_1a2b3c4d",
                                   "s3://omc-flywheel-data/bucketed/ibe_01/v20240215T000000_1a2b3c4d",
                                   ("omc_flywheel_prod", "ext_ibe_01"), ["ibe1802", "customer_user_id", "ibe2025_01"],
                                   "customer_user_id", 256)
    assert ctas_parts(sql) == {
        "format": "PARQUET", "parquet_compression": "SNAPPY",
        "external_location": "s3://omc-flywheel-data/bucketed/ibe_01/v20240215T000000_1a2b3c4d/",
        "bucketed_by": ["customer_user_id"], "bucket_count": 256,
        "table": ("omc_flywheel_prod", "bucketed_ibe_01__staging_1a2b3c4d"),
        "columns": ["customer_user_id", "ibe1802", "ibe2025_01"], "source": ("omc_flywheel_prod", "ext_ibe_01")}


def test_identity_ctas_selects_each_key_of_one_snapshot_once_as_its_row_id():
    sql = athena_sql.identity_ctas("omc_flywheel_prod", "part_addressable_ids_er__staging_1a2b3c4d",
                                   "s3://omc-flywheel-data/omc_cleanroom_data/identity/acx_ids_cur/v20240215T000000_1a",
                                   ("omc_flywheel_prod", "part_addressable_ids"), "2024-02-15")
    assert ctas_parts(sql) == {
        "format": "PARQUET", "parquet_compression": "SNAPPY",
        "external_location": "s3://omc-flywheel-data/omc_cleanroom_data/identity/acx_ids_cur/v20240215T000000_1a/",
        "table": ("omc_flywheel_prod", "part_addressable_ids_er__staging_1a2b3c4d"),
        "columns": ["row_id", "customer_user_id"], "source": ("omc_flywheel_prod", "part_addressable_ids"),
        "distinct": True, "where": "\"snapshot_dt\" = '2024-02-15' AND NOT \"customer_user_id\" IS NULL"}
    with pytest.raises(FlywheelInputError, match="not a YYYY-MM-DD date"):
        athena_sql.identity_ctas("db", "t", "s3://bucket/x", ("db", "part_addressable_ids"), "2024-02-15' OR '1'='1")


def test_msck_repair_is_a_valid_statement_on_one_table():
    sql = athena_sql.msck_repair("omc_flywheel_prod", "part_ibe_01_a")
    assert sql == "MSCK REPAIR TABLE `omc_flywheel_prod`.`part_ibe_01_a`"
    assert_athena_sql(sql)


def test_key_stats_is_one_valid_statement_per_dialect_with_a_branch_per_table():
    queries = [("omc_flywheel_prod", "part_ibe_01", "customer_user_id", "2024-02-15"),
               ("omc_flywheel_prod", "bucketed_ibe_01", "customer_user_id", None)]
    for dialect, read in (("athena", "athena"), ("spark", "spark")):
        parsed = sqlglot.parse_one(athena_sql.key_stats(queries, dialect), read=read)
        assert isinstance(parsed, exp.Select), dialect
        assert [c.alias_or_name for c in parsed.selects] == ["branch", "n_rows", "n_keys", "n_distinct"]
        assert [g.name for g in parsed.args["group"].expressions] == ["branch"]  # one aggregation for all
        union = parsed.find(exp.Union)
        selects = [s for s in union.find_all(exp.Select)]
        assert [s.find(exp.From).this.name for s in selects] == ["part_ibe_01", "bucketed_ibe_01"]
        assert [s.selects[0].this.name for s in selects] == ["0", "1"]  # the branch number
        assert [c.alias for c in selects[0].selects] == ["branch", "k"]
        where = selects[0].args["where"].this.sql("athena")
        assert where == "\"snapshot_dt\" = '2024-02-15'" and selects[1].args.get("where") is None
    assert_athena_sql(athena_sql.key_stats(queries))
    with pytest.raises(FlywheelInputError):
        athena_sql.key_stats([("db", "t", "customer_user_id", "2024-02-15' OR '1'='1")])
    with pytest.raises(FlywheelInputError):
        athena_sql.key_stats([("db", "t", "k) FROM x; --", None)])


@pytest.mark.parametrize("mangle", [
    lambda sql: sql.replace("bucket_count = 256)", "bucket_count = 256"),  # a lost parenthesis
    lambda sql: sql.replace("AS SELECT", "AS SELEC"),
    lambda sql: sql.replace("'SNAPPY'", "'SNAPPY"),  # an unclosed string
])
def test_a_template_made_invalid_fails_the_parse(mangle):
    sql = athena_sql.bucketed_ctas("db", "t", "s3://bucket/x", ("db", "ext_t"), ["customer_user_id"], "customer_user_id", 256)
    assert mangle(sql) != sql
    with pytest.raises((SqlglotError, AssertionError)):
        assert_athena_sql(mangle(sql))
    with pytest.raises(AssertionError):
        assert_athena_sql("MSCK REPAIR TABLE `db`")  # no table


def test_names_are_validated_before_they_reach_the_text():
    with pytest.raises(FlywheelInputError):
        athena_sql.bucketed_ctas("db", "t; drop table x", "s3://bucket/x", ("db", "ext_t"), ["customer_user_id"],
                                 "customer_user_id", 8)
    with pytest.raises(FlywheelInputError, match="has no column customer_user_id to bucket by"):
        athena_sql.bucketed_ctas("db", "t", "s3://bucket/x", ("db", "ext_t"), ["a"], "customer_user_id", 8)
    with pytest.raises(FlywheelInputError):
        athena_sql.msck_repair("db", "t`; drop")
