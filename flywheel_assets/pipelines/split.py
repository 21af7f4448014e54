"""The Spark stage shared by both pipelines: one asset per table, one step per run-book split job.

Run config mirrors the run book's arguments (see the README's parameter table); paths are
relative to the lake's data root unless absolute. ``--SNAPSHOT_DT`` is the partition key.
"""

from typing import Literal, Optional

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    Backoff,
    Config,
    Failure,
    RetryPolicy,
    multi_asset,
)
from pydantic import Field, create_model

from flywheel_assets import settings
from flywheel_assets.partitions import snapshot_partitions
from flywheel_assets.resources import Lake, SparkJobRunner
from flywheel_assets.core import publish, storage
from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.jobs import CURRENT_SNAPSHOT, OPTIONAL, SplitJob
from flywheel_assets.pipelines.keys import raw_key, split_key
from flywheel_assets.spark_jobs.checks import BLOCKING, WARNING
from flywheel_assets.spark_jobs.split import DEFAULT_WRITE_PARALLELISM, FAIL


CHECK_DESCRIPTIONS = {
    "row_count": "the table has exactly the source snapshot's row count",
    "columns": "the table has its mapped columns, lowercased, key first",
    "key_not_null": "customer_user_id is never null or blank (beyond max_bad_keys)",
    "file_sizing": "the table has the file count dynamic sizing planned",
    "not_skipped": "the table was written (not skipped for mapped columns missing from the source, "
    "missing_columns: skip_table)",
}


class SplitConfig(Config):
    source_path: str = Field(description="--SOURCE_PATH: folder of snapshot_dt=YYYY-MM-DD/ snapshots")
    target_path: str = Field(description="--TARGET_PATH: where the split tables are written")
    csv_file: Optional[str] = Field(default=None, description="--CSV_FILE: the table/column mapping")
    target_file_mb: int = Field(
        default=settings.DEFAULT_TARGET_FILE_MB, description="Dynamic file sizing: target size of one output file"
    )
    write_parallelism: int = Field(
        default=DEFAULT_WRITE_PARALLELISM, description="Tables the Spark job writes at the same time"
    )
    allow_rollback: bool = Field(
        default=False, description="current-snapshot layout (one current snapshot): allow publishing a snapshot older "
        "than the one it holds",
    )
    missing_columns: Literal["fail", "skip_table"] = Field(
        default=FAIL, description="A mapped column the source lacks: fail (list them all), or skip_table "
        "(publish the other tables; each skipped one fails its not_skipped warning check)",
    )
    max_bad_keys: str = Field(
        default="0", description="Null or blank customer_user_id tolerated before the blocking key_not_null "
        "check fails: a count (100) or a fraction of the rows (0.001 or 0.1%); within it the check warns",
    )

    def arguments(self, lake: Lake, snapshot: str, job: SplitJob) -> dict[str, str]:
        args = {
            "SNAPSHOT_DT": snapshot,
            "SNAPSHOT_MATCH": job.snapshot_match,
            "SOURCE_PATH": lake.resolve(self.source_path),
            "TARGET_PATH": lake.resolve(self.target_path),
            "TARGET_FILE_MB": str(self.target_file_mb),
            "WRITE_PARALLELISM": str(self.write_parallelism),
            "MISSING_COLUMNS": self.missing_columns,
            "MAX_BAD_KEYS": self.max_bad_keys,
        }
        if self.csv_file:
            csv = lake.resolve(self.csv_file)
            # An optional mapping (addressable ids) that is absent at its default path means "all
            # columns", as in production; a file the user named must exist.
            optional = job.mapping == OPTIONAL and self.csv_file == job.csv_file
            if not (optional and storage.read_bytes(csv) is None):
                args["CSV_FILE"] = csv
        return args


def refuse_rollback(target: str, snapshot: str) -> None:
    published = publish.published_snapshot(target)
    if published and snapshot < published:
        raise Failure(
            f"{target} holds snapshot_dt={published}, newer than {snapshot}: the bucketed pipeline keeps "
            "one current snapshot and this would roll it back. Set allow_rollback: true in this asset's run config "
            "to do it anyway.", allow_retries=False,
        )


def spark_retry_policy() -> RetryPolicy | None:
    """As the replaced orchestration: a failed Spark job is retried twice, after 60 s then 120 s
    (FLYWHEEL_SPARK_RETRIES, FLYWHEEL_SPARK_RETRY_DELAY_SECONDS); bad input never is (the runners
    fail it with allow_retries=False), nor a failed blocking check (it does not fail the step)."""
    s = settings.get_settings()
    if s.spark_retries <= 0:
        return None
    return RetryPolicy(max_retries=s.spark_retries, delay=s.spark_retry_delay_seconds, backoff=Backoff.LINEAR)


def table_description(job: SplitJob, table: str) -> str:
    where = job.table_folder(job.target_path, table, "<d>")
    return f"Table {table} of {job.name}: {where} under the data root. {job.description}"


def split_assets(job: SplitJob, tables: tuple[str, ...]) -> AssetsDefinition:
    """The tables of run-book job ``job``, one asset each, written by one run of the job for a
    snapshot partition. Selecting some of them writes only those (``--TABLES``)."""
    defaults = job.defaults()
    config_cls = create_model(
        f"{''.join(p.title() for p in job.step.split('_'))}Config",
        __base__=SplitConfig,
        **{
            k: (SplitConfig.model_fields[k].annotation, Field(default=v, description=SplitConfig.model_fields[k].description))
            for k, v in defaults.items()
        },
    )
    keys = {split_key(job, t): t for t in tables}
    specs = [AssetSpec(key, deps=[raw_key(job)], group_name=job.pipeline, partitions_def=snapshot_partitions,
                       kinds={"spark", "parquet"}, description=table_description(job, t),
                       metadata={"run_book_job": job.glue_job_name(), "table": t, "layout": job.layout})
             for key, t in keys.items()]

    @multi_asset(
        name=job.step,
        specs=specs,
        check_specs=[AssetCheckSpec(c, asset=key, blocking=c in BLOCKING, description=CHECK_DESCRIPTIONS[c])
                     for key in keys for c in (*BLOCKING, *WARNING)],
        can_subset=True,
        # The current-snapshot layout holds one snapshot: two runs must not replace its folders at once.
        pool=f"{job.step}_target" if job.layout == CURRENT_SNAPSHOT else None,
        retry_policy=spark_retry_policy(),
    )
    def _split(context: AssetExecutionContext, config: config_cls, lake: Lake, spark_jobs: SparkJobRunner):
        try:
            if job.layout == CURRENT_SNAPSHOT and not config.allow_rollback:
                refuse_rollback(lake.resolve(config.target_path), context.partition_key)
            arguments = config.arguments(lake, context.partition_key, job)
        except FlywheelInputError as exc:  # bad run config: the same every time, not retried
            raise Failure(str(exc), allow_retries=False) from exc
        selected = [t for key, t in keys.items() if key in context.selected_asset_keys]
        if len(selected) < len(keys):
            arguments["TABLES"] = ",".join(selected)
        yield from spark_jobs.run(context, job.name, arguments)

    return _split
