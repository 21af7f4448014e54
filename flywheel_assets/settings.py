"""The one place for settings: environment variables, roots, and the run book's default paths.

Run-book paths are relative to a root; a relative path in run config is resolved against the
data root (``resources.Lake``), an absolute one (``/...``, ``s3://...``) is used as given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The run book's paths and jobs are declared once, in the job table (core/jobs.py).
from flywheel_assets.core.jobs import (  # noqa: E402,F401 (re-exported: settings users read them here)
    ADDRESSABLE_COMPACTION,
    ADDRESSABLE_PART_MAPPING,
    ADDRESSABLE_RAW,
    BUCKETED_BASE,
    GLUE_JOB_PREFIX,
    IDENTITY_BASE,
    INFOBASE_BUCKET_MAPPING,
    INFOBASE_PART_MAPPING,
    INFOBASE_RAW,
    SPLIT_CLUSTER_ADDRESSABLE,
    SPLIT_CLUSTER_INFOBASE,
    SPLIT_PART_ADDRESSABLE,
    SPLIT_PART_INFOBASE,
    SPLIT_PART_ROOT,
)

DEFAULT_DATABASE = "omc_flywheel_prod"

# Production roots, used when FLYWHEEL_ENV=aws and no root is set.
AWS_DATA_ROOT = "s3://omc-flywheel-data-us-east-1-prod"
AWS_ANALYSIS_ROOT = "s3://omc-flywheel-prod-analysis-data"

ENVIRONMENTS = ("local", "aws")
DEFAULT_TARGET_FILE_MB = 128


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    data_root: str
    analysis_root: str
    spark_master: str
    spark_driver_memory: str
    database: str
    spark_remote: str  # sc://host:port of an existing Spark Connect server ("" = start our own)
    aws_region: str
    athena_workgroup: str
    athena_results_s3: str
    pipes_s3: str  # where Dagster Pipes exchanges context and messages with Glue/EMR jobs
    artifacts_s3: str  # where `flywheel deploy` uploads the job scripts and library bundle
    glue_role: str
    glue_job_prefix: str
    snapshot_quiet_seconds: float  # a snapshot without _SUCCESS is complete after this long unchanged
    aws_spark_runtime: str  # glue | emr-serverless
    emr_application_id: str
    emr_execution_role_arn: str
    glue_worker_type: str  # the deployed Glue jobs' shape (run book: G.4X x 8; production Terraform: x 24)
    glue_workers: int
    glue_timeout_minutes: int
    cleanrooms_membership_id: str  # the membership the readiness report covers ("" = every membership)
    alert_sns_topic_arn: str  # run alerts (alerts.py); "" = none
    alert_webhook_url: str  # a Slack-compatible incoming webhook; "" = none
    alert_on_success: bool  # also alert on every successful run
    ui_url: str  # the Dagster UI's address, for links in alerts
    spark_retries: int  # retries of a Spark job step after a failure that is not bad input
    spark_retry_delay_seconds: float  # first retry after this long, the next after twice as long
    freshness_days: int  # the data monitor's limit on a table's snapshot age (the original's 45)
    postgres: bool  # Dagster's storage in PostgreSQL (FLYWHEEL_PG_HOST set; see instance.py)
    code_server: str  # host:port of the code server `flywheel serve` starts and connects to
    sensor_interval_seconds: int  # how often the daemon evaluates the raw-snapshot sensor

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def spark_home(self) -> Path:
        """The local Spark server's state: metastore, warehouse, log."""
        return self.home / "spark"


def get_settings(environ: dict | None = None) -> Settings:
    env_vars = os.environ if environ is None else environ
    env = env_vars.get("FLYWHEEL_ENV", "local").strip().lower()
    if env not in ENVIRONMENTS:
        raise ValueError(f"FLYWHEEL_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    home = Path(env_vars.get("FLYWHEEL_HOME", ".flywheel")).expanduser().resolve()
    local = env == "local"
    data_root = env_vars.get("FLYWHEEL_DATA_ROOT") or (str(home / "lake") if local else AWS_DATA_ROOT)
    analysis_root = env_vars.get("FLYWHEEL_ANALYSIS_ROOT") or (
        str(home / "analysis") if local else AWS_ANALYSIS_ROOT
    )
    return Settings(
        env=env,
        home=home,
        data_root=_absolute(data_root),
        analysis_root=_absolute(analysis_root),
        spark_master=env_vars.get("FLYWHEEL_SPARK_MASTER", "local[2]"),
        spark_driver_memory=env_vars.get("FLYWHEEL_SPARK_DRIVER_MEMORY", "4g"),
        database=env_vars.get("FLYWHEEL_DATABASE", DEFAULT_DATABASE),
        spark_remote=env_vars.get("FLYWHEEL_SPARK_REMOTE", ""),
        aws_region=env_vars.get("AWS_REGION") or env_vars.get("AWS_DEFAULT_REGION") or "us-east-1",
        athena_workgroup=env_vars.get("FLYWHEEL_ATHENA_WORKGROUP", "primary"),
        athena_results_s3=env_vars.get("FLYWHEEL_ATHENA_RESULTS_S3")
        or f"{_absolute(analysis_root).rstrip('/')}/query-results/",
        pipes_s3=env_vars.get("FLYWHEEL_PIPES_S3") or f"{_absolute(analysis_root).rstrip('/')}/dagster-pipes/",
        artifacts_s3=env_vars.get("FLYWHEEL_ARTIFACTS_S3")
        or f"{_absolute(data_root).rstrip('/')}/omc_cleanroom_data/glue/flywheel/",
        glue_role=env_vars.get("FLYWHEEL_GLUE_ROLE", "omc-flywheel-prod-glue-role"),
        glue_job_prefix=env_vars.get("FLYWHEEL_GLUE_JOB_PREFIX", GLUE_JOB_PREFIX),
        snapshot_quiet_seconds=float(env_vars.get("FLYWHEEL_SNAPSHOT_QUIET_SECONDS", "900")),
        aws_spark_runtime=_choice(env_vars.get("FLYWHEEL_AWS_SPARK_RUNTIME", "glue"), "FLYWHEEL_AWS_SPARK_RUNTIME",
                                  ("glue", "emr-serverless")),
        emr_application_id=env_vars.get("FLYWHEEL_EMR_APPLICATION_ID", ""),
        emr_execution_role_arn=env_vars.get("FLYWHEEL_EMR_EXECUTION_ROLE_ARN", ""),
        glue_worker_type=_choice(env_vars.get("FLYWHEEL_GLUE_WORKER_TYPE", "G.4X"), "FLYWHEEL_GLUE_WORKER_TYPE",
                                 ("g.1x", "g.2x", "g.4x", "g.8x", "g.025x", "z.2x")).upper(),
        glue_workers=_positive(env_vars.get("FLYWHEEL_GLUE_WORKERS", "8"), "FLYWHEEL_GLUE_WORKERS"),
        glue_timeout_minutes=_positive(env_vars.get("FLYWHEEL_GLUE_TIMEOUT_MINUTES", "2880"),
                                       "FLYWHEEL_GLUE_TIMEOUT_MINUTES"),
        cleanrooms_membership_id=env_vars.get("FLYWHEEL_CLEANROOMS_MEMBERSHIP_ID", "").strip(),
        alert_sns_topic_arn=env_vars.get("FLYWHEEL_ALERT_SNS_TOPIC_ARN", "").strip(),
        alert_webhook_url=env_vars.get("FLYWHEEL_ALERT_WEBHOOK_URL", "").strip(),
        alert_on_success=env_vars.get("FLYWHEEL_ALERT_ON_SUCCESS", "false").strip().lower() in ("1", "true", "yes"),
        ui_url=env_vars.get("FLYWHEEL_UI_URL", "http://127.0.0.1:3000").strip(),
        spark_retries=int(env_vars.get("FLYWHEEL_SPARK_RETRIES", "2")),
        spark_retry_delay_seconds=float(env_vars.get("FLYWHEEL_SPARK_RETRY_DELAY_SECONDS", "60")),
        postgres=bool(env_vars.get("FLYWHEEL_PG_HOST", "").strip()),
        code_server=env_vars.get("FLYWHEEL_CODE_SERVER", "127.0.0.1:4266").strip(),
        sensor_interval_seconds=_positive(env_vars.get("FLYWHEEL_SENSOR_INTERVAL_SECONDS", "60"),
                                          "FLYWHEEL_SENSOR_INTERVAL_SECONDS"),
        freshness_days=_positive(env_vars.get("FLYWHEEL_FRESHNESS_DAYS", "45"), "FLYWHEEL_FRESHNESS_DAYS"),
    )


def _positive(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return number


def _choice(value: str, name: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _absolute(root: str) -> str:
    return root if "://" in root else str(Path(root).expanduser().resolve())
