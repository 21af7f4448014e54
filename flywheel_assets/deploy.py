"""`flywheel deploy`: the job bundle on S3 and the run book's Glue jobs, created or updated idempotently."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import flywheel_assets
from flywheel_assets.core import storage
from flywheel_assets.core.jobs import BUCKETED_BASE, CURRENT_SNAPSHOT, JOBS, REQUIRED, SPLIT_PART_ROOT
from flywheel_assets.core.snapshots import LATEST
from flywheel_assets.settings import DEFAULT_TARGET_FILE_MB, Settings

PACKAGE_DIR = Path(flywheel_assets.__file__).parent
PIPES_VERSION = "1.13.27"  # dagster-pipes on the Glue workers; matches requirements.lock

# Glue 5 and the Glue Data Catalog as the metastore; dynamic partition overwrite kept for parity
# (the jobs stage and swap folders themselves). Worker type, count and timeout are settings.
DEFAULT_ARGUMENTS = {
    "--enable-glue-datacatalog": "true",
    "--conf": "spark.sql.sources.partitionOverwriteMode=dynamic",
    "--additional-python-modules": f"dagster-pipes=={PIPES_VERSION}",
    "--job-language": "python",
    "--enable-metrics": "true",
    "--enable-continuous-cloudwatch-log": "true",
}


def bundle_bytes() -> bytes:
    """The importable job library (flywheel_assets/__init__.py, core/ and spark_jobs/), reproducibly zipped."""
    files = [PACKAGE_DIR / "__init__.py", *sorted((PACKAGE_DIR / "core").rglob("*.py")),
             *sorted((PACKAGE_DIR / "spark_jobs").rglob("*.py"))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(str(Path("flywheel_assets") / path.relative_to(PACKAGE_DIR)), (2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


@dataclass
class Plan:
    uploads: dict[str, bytes] = field(default_factory=dict)  # uri -> content, only what differs
    unchanged_uploads: list[str] = field(default_factory=list)
    jobs: dict[str, tuple[str, dict]] = field(default_factory=dict)  # name -> (create|update|unchanged, definition)
    warnings: list[str] = field(default_factory=list)  # what deploying cannot fix, e.g. Lake Formation

    def describe(self) -> list[str]:
        lines = [f"upload {uri} ({len(body)} bytes)" for uri, body in self.uploads.items()]
        lines += [f"unchanged {uri}" for uri in self.unchanged_uploads]
        lines += [f"{action} Glue job {name}" for name, (action, _) in self.jobs.items()]
        return lines


def _same_object(uri: str, body: bytes) -> bool:
    bucket, key = storage.split_s3(uri)
    client = storage.s3_client()
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError:
        return False
    return head.get("Metadata", {}).get("sha256") == hashlib.sha256(body).hexdigest()


def run_book_arguments(settings: Settings, job: str) -> dict[str, str]:
    """The run book's arguments as the job's defaults, so its `aws glue start-job-run` commands work
    as written, or with no arguments at all. An optional mapping (addressable ids) gets no default:
    without one the job takes all columns; a --CSV_FILE given at start must exist."""
    paths = JOBS[job].defaults()
    args = {"--SNAPSHOT_DT": LATEST,
            "--SOURCE_PATH": storage.join(settings.data_root, paths["source_path"]) + "/",
            "--TARGET_PATH": storage.join(settings.data_root, paths["target_path"]) + "/",
            "--TARGET_FILE_MB": str(DEFAULT_TARGET_FILE_MB)}
    if paths.get("csv_file") and JOBS[job].mapping == REQUIRED:
        args["--CSV_FILE"] = storage.join(settings.data_root, paths["csv_file"])
    return args


def job_definition(settings: Settings, job: str, script_uri: str, bundle_uri: str) -> dict:
    return {
        "Description": f"flywheel {job} (run book: {JOBS[job].glue_job_name(settings.glue_job_prefix)}); deployed by flywheel deploy",
        "Role": settings.glue_role,
        "Command": {"Name": "glueetl", "ScriptLocation": script_uri, "PythonVersion": "3"},
        "DefaultArguments": {**DEFAULT_ARGUMENTS, **run_book_arguments(settings, job), "--extra-py-files": bundle_uri},
        "GlueVersion": "5.0", "WorkerType": settings.glue_worker_type, "NumberOfWorkers": settings.glue_workers,
        "Timeout": settings.glue_timeout_minutes, "ExecutionProperty": {"MaxConcurrentRuns": 4},
    }


def _differs(existing: dict, wanted: dict) -> bool:
    return any(existing.get(k) != v for k, v in wanted.items())


def bundle_uri(artifacts_s3: str, bundle: bytes | None = None) -> str:
    """Where this code's bundle lives: named by content, so a run uses exactly the deployed code."""
    if not artifacts_s3.startswith("s3://"):
        raise ValueError(f"FLYWHEEL_ARTIFACTS_S3 must be an s3:// prefix, got {artifacts_s3!r}")
    digest = hashlib.sha256(bundle or bundle_bytes()).hexdigest()[:12]
    return storage.join(artifacts_s3, f"flywheel_jobs-{digest}.zip")


def script_uri(artifacts_s3: str, job: str) -> str:
    return storage.join(artifacts_s3, "scripts", f"{job}.py")


def plan(settings: Settings, glue) -> Plan:
    bundle = bundle_bytes()
    artifacts = settings.artifacts_s3
    bundle_uri_ = bundle_uri(artifacts, bundle)
    result = Plan()
    wanted = {bundle_uri_: bundle}
    for job in JOBS:
        script = script_uri(artifacts, job)
        wanted[script] = (PACKAGE_DIR / "spark_jobs" / "scripts" / f"{job}.py").read_bytes()
        definition = job_definition(settings, job, script, bundle_uri_)
        name = JOBS[job].glue_job_name(settings.glue_job_prefix)
        try:
            existing = glue.get_job(JobName=name)["Job"]
            action = "update" if _differs(existing, definition) else "unchanged"
        except glue.exceptions.EntityNotFoundException:
            action = "create"
        result.jobs[name] = (action, definition)
    for uri, body in wanted.items():
        if _same_object(uri, body):
            result.unchanged_uploads.append(uri)
        else:
            result.uploads[uri] = body
    return result


def apply(plan_: Plan, glue) -> None:
    client = storage.s3_client()
    for uri, body in plan_.uploads.items():
        bucket, key = storage.split_s3(uri)
        client.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"sha256": hashlib.sha256(body).hexdigest()})
    for name, (action, definition) in plan_.jobs.items():
        if action == "create":
            glue.create_job(Name=name, **definition)
        elif action == "update":
            glue.update_job(JobName=name, JobUpdate=definition)


def catalog_locations(settings: Settings) -> list[str]:
    """The S3 locations behind the platform's catalog tables: what Athena reads (the split outputs,
    sources of the bucketed CTAS) and writes (the bucketed tables)."""
    paths = [j.target_path for j in JOBS.values() if j.layout == CURRENT_SNAPSHOT] + [SPLIT_PART_ROOT, BUCKETED_BASE]
    return [storage.join(settings.data_root, p) + "/" for p in paths]


def lake_formation_gaps(settings: Settings, lakeformation) -> list[str]:
    """Catalog locations Lake Formation does not know while it manages others: there, Athena's CTAS
    is denied until the location is registered (production's first bucketed run failed so). Says
    so when it cannot tell."""
    try:
        registered, token = [], None
        while True:  # botocore has no paginator for it
            page = lakeformation.list_resources(**({"NextToken": token} if token else {}))
            registered += [r["ResourceArn"] for r in page.get("ResourceInfoList", [])]
            token = page.get("NextToken")
            if not token:
                break
    except Exception as exc:  # AccessDenied, or Lake Formation not available in the region
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        return [f"Lake Formation: cannot list registered locations ({code}); if it manages this data lake, "
                "register the locations listed in the README's 'Lake Formation' section"]
    if not registered:
        return []  # Lake Formation manages no S3 location: IAM alone governs access
    covered = [arn.replace("arn:aws:s3:::", "s3://", 1).rstrip("/") + "/" for arn in registered]
    return [f"Lake Formation: {location} is not registered (it manages {len(registered)} other location(s)); "
            f"Athena will be denied there: aws lakeformation register-resource --resource-arn "
            f"arn:aws:s3:::{location[len('s3://'):].rstrip('/')} --use-service-linked-role"
            for location in catalog_locations(settings) if not any(location.startswith(c) for c in covered)]


def deploy(settings: Settings, dry_run: bool = False, glue=None, lakeformation=None) -> Plan:
    glue = glue or storage.aws_client("glue", settings.aws_region)
    result = plan(settings, glue)
    result.warnings = lake_formation_gaps(settings, lakeformation or storage.aws_client("lakeformation",
                                                                                       settings.aws_region))
    if not dry_run:
        apply(result, glue)
    return result
