"""Benchmark 2: the join the bucketed tables exist for, against the same join over the ext tables.

`bucketed_ibe_01 JOIN bucketed_addressable_ids ON customer_user_id` vs `ext_ibe_01 JOIN
ext_addressable_ids`, built by the real assets (split -> ext_tables -> bucketed_tables with
TABLES_FILTER) on the benchmark snapshot. Broadcast joins are off for both, so the comparison is
the shuffle the bucketing saves. Median of a few runs after one warm-up each.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import Bench, median_time, table

QUERY = ("SELECT count(*) AS n, bit_xor(xxhash64(x.customer_user_id, y.maid)) AS h FROM {db}.{a} x "
         "JOIN {db}.{b} y ON x.customer_user_id = y.customer_user_id")


def build(bench: Bench, lake: Path, database: str, buckets: int) -> None:
    from dagster import AssetKey, DagsterInstance, materialize

    from flywheel_assets import settings
    from flywheel_assets.pipelines import build_assets
    from flywheel_assets.tables import read_table_set
    from flywheel_assets.resources import Lake
    from flywheel_assets.core.mapping import load_mapping
    from flywheel_assets.core.snapshots import list_snapshots
    from flywheel_assets.spark_jobs.split import JOBS, run_split

    spark = bench.session()
    snapshot = list_snapshots(str(lake / settings.INFOBASE_RAW))[-1]
    if not (lake / settings.SPLIT_CLUSTER_INFOBASE / "metadata").exists():  # benchmark 1 left it there
        run_split(spark, JOBS["infobase_split_and_bucket"], str(lake / settings.INFOBASE_RAW),
                  str(lake / settings.SPLIT_CLUSTER_INFOBASE), snapshot,
                  load_mapping(str(lake / settings.INFOBASE_BUCKET_MAPPING)), 128 * 1024 * 1024)
    run_split(spark, JOBS["addressable_bucket"], str(lake / settings.ADDRESSABLE_COMPACTION),
              str(lake / settings.SPLIT_CLUSTER_ADDRESSABLE), snapshot, None, 128 * 1024 * 1024)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("snapshot_dt", [snapshot])
    steps = [a for a in build_assets(read_table_set(str(lake), None))
             if getattr(a, "node_def", None) and a.node_def.name in ("ext_tables", "bucketed_tables")]
    # ext_tables switches each split root as a whole (issue 16): every ext table, two bucketed ones
    ext = next(a for a in steps if a.node_def.name == "ext_tables")
    keys = [*ext.keys, AssetKey("bucketed_ibe_01"), AssetKey("bucketed_addressable_ids")]
    materialize(steps, selection=keys, partition_key=snapshot, instance=instance,
                resources={"lake": Lake(data_root=str(lake)), "catalog": bench.catalog(database)},
                run_config={"ops": {"bucketed_tables": {"config": {
                    "bucket_count": buckets}}}})


def measure(bench: Bench, database: str, kind: str, trials: int) -> dict:
    spark = bench.session()  # after build: its steps release the sessions they used
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        sql = QUERY.format(db=database, a=f"{kind}_ibe_01", b=f"{kind}_addressable_ids")
        plan = spark.sql("EXPLAIN " + sql).collect()[0][0]
        spark.sql(sql).collect()  # warm-up: file listing and metadata caches
        before = bench.stage_totals()
        seconds = median_time(lambda: spark.sql(sql).collect(), trials)
        shuffled = (bench.stage_totals()["shuffleWriteBytes"] - before["shuffleWriteBytes"]) // trials
        row = spark.sql(sql).collect()[0]
    finally:
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    return {"seconds": seconds, "exchanges": plan.count("Exchange hashpartitioning"), "shuffle_bytes": shuffled,
            "answer": (row["n"], row["h"])}


def run(bench: Bench, lake: Path, trials: int = 3, buckets=(256, 8)) -> tuple[str, dict]:
    results = {}
    for count in buckets:
        database = f"bench_join_{count}"
        build(bench, lake, database, count)
        if "ext" not in results:
            results["ext"] = measure(bench, database, "ext", trials)
        results[count] = measure(bench, database, "bucketed", trials)
    ext = results["ext"]
    assert all(r["answer"] == ext["answer"] for r in results.values()), "the joins disagree"
    rows = [["ext_ibe_01 x ext_addressable_ids (baseline)", f"{ext['seconds']:.2f}", "1.00x", ext["exchanges"],
             f"{ext['shuffle_bytes']:,}"]]
    for count in buckets:
        r = results[count]
        rows.append([f"bucketed_ibe_01 x bucketed_addressable_ids, {count} buckets", f"{r['seconds']:.2f}",
                     f"{r['seconds'] / ext['seconds']:.2f}x", r["exchanges"], f"{r['shuffle_bytes']:,}"])
    body = table(["join on customer_user_id", "median time (s)", "vs ext", "hash exchanges in the plan",
                  "shuffle bytes per query"], rows)
    body += (f"\n\nAll return {ext['answer'][0]:,} rows with the same checksum; median of {trials} after a warm-up, "
             "broadcast joins off, `spark.sql.shuffle.partitions` 8 (the local server's setting).")
    return body, {"ext_s": ext["seconds"], "ext_exchanges": ext["exchanges"],
                  **{f"bucketed_{c}_s": results[c]["seconds"] for c in buckets},
                  **{f"bucketed_{c}_exchanges": results[c]["exchanges"] for c in buckets}}
