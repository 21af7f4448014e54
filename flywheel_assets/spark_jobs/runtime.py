"""What differs between Spark runtimes: the session, the path scheme, and how Pipes is opened.

The entrypoint scripts run unchanged on Glue/EMR (``spark-submit``) and locally
(``python script.py`` in a subprocess). The local runner sets ``FLYWHEEL_SPARK_RUNTIME=local``
and ``FLYWHEEL_SPARK_REMOTE`` (the local Spark server); on Glue/EMR none of these are set.
The job code uses the DataFrame/SQL API only, so it runs on classic Spark and Spark Connect.
"""

from __future__ import annotations

import argparse
import os

from flywheel_assets.core import storage
from flywheel_assets.core.errors import FlywheelInputError


def is_local_runtime() -> bool:
    return os.environ.get("FLYWHEEL_SPARK_RUNTIME", "managed") == "local"


def spark_path(uri: str) -> str:
    """The URI Spark reads: ``s3://`` becomes ``s3a://`` only for Spark outside Glue/EMR."""
    if is_local_runtime() and uri.startswith("s3://"):
        return "s3a://" + uri[len("s3://"):]
    return uri


class SparkServerGone(RuntimeError):
    """The Spark Connect server stopped answering: it is not listening any more."""


def server_listening(url: str) -> bool:
    """Whether anything accepts connections at ``sc://host:port``."""
    import socket

    host, _, port = url.split("://", 1)[-1].split("/", 1)[0].rpartition(":")
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, int(port))) == 0


def fail_fast_when_gone(session, url: str, log: str = "") -> None:
    """Spark Connect clients retry an unavailable server for about 10 minutes, silently; a local
    server that died (killed, out of memory) never comes back at that address. Retry only while
    the server still listens, and otherwise fail at once saying which server and where its log is."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    class StopWhenGone(DefaultPolicy):
        def can_retry(self, e: BaseException) -> bool:
            if super().can_retry(e) and not server_listening(url):
                where = f"; its log: {log}" if log else ""
                raise SparkServerGone(
                    f"the Spark server at {url} stopped while this step ran (killed, or out of memory?){where}. "
                    "The next step or run starts a fresh local server.") from e
            return super().can_retry(e)

    session.client.set_retry_policies([StopWhenGone()])


def spark_session(app_name: str):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    remote = os.environ.get("FLYWHEEL_SPARK_REMOTE")
    master = os.environ.get("FLYWHEEL_SPARK_MASTER")
    if remote:  # a session of its own, which the job releases when done (release)
        session = builder.remote(remote).create()
        fail_fast_when_gone(session, remote, os.environ.get("FLYWHEEL_SPARK_LOG", ""))
        return session
    elif master:  # a driver of our own (spark:// cluster, or local[N] without the server)
        builder = (
            builder.master(master)
            .config("spark.driver.memory", os.environ.get("FLYWHEEL_SPARK_DRIVER_MEMORY", "4g"))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
        )
    return builder.getOrCreate()


# PySpark 4.1's Spark Connect session, when the garbage collector finalizes it (`__del__`), shuts
# down the thread pool every session in the process shares for its release calls, and waits for it.
# Finalized inside another thread's gRPC call, it waits for release calls that wait for that call's
# channel: a test run hung for good this way in bucketed_tables' four concurrent builds (SPARK-55362,
# fixed in PySpark 4.2). So a session done with stays referenced until the process ends.
_DONE_WITH: list = []


def never_finalized(session) -> None:
    """Keep a Spark Connect session this process is done with referenced until it ends (see _DONE_WITH)."""
    _DONE_WITH.append(session)


def stop_quietly(session) -> None:
    """Stop (release) a Spark Connect session; one whose server is gone has nothing left to release.
    Use this, not ``session.stop()`` alone, so that the session is never finalized (_DONE_WITH)."""
    try:
        session.stop()
    except Exception:  # noqa: BLE001 - the server is gone; the caller's own error says so
        pass
    never_finalized(session)


def release(session) -> None:
    """Release a Spark Connect session on the local server when the job is done: the server keeps an
    unreleased one for an hour (Spark Connect's default session timeout), with every table listing
    it cached. A classic session ends with its Glue or EMR job."""
    if os.environ.get("FLYWHEEL_SPARK_REMOTE"):
        stop_quietly(session)


def open_pipes():
    """Open Dagster Pipes the way the orchestrator launched us.

    Glue passes ``--dagster-pipes-context``/``--dagster-pipes-messages`` arguments, EMR Serverless
    and a local subprocess pass environment variables; when the parameters name a bucket, context
    and messages go through S3. Run by hand, outside Dagster, this returns dagster-pipes' no-op
    stand-in.
    """
    from dagster_pipes import (
        PipesCliArgsParamsLoader,
        PipesEnvVarParamsLoader,
        PipesS3ContextLoader,
        PipesS3MessageWriter,
        open_dagster_pipes,
    )

    loader = PipesCliArgsParamsLoader()
    if not loader.is_dagster_pipes_process():
        loader = PipesEnvVarParamsLoader()
    if not loader.is_dagster_pipes_process():
        return open_dagster_pipes()
    kwargs = {"params_loader": loader}
    if "bucket" in loader.load_context_params():
        kwargs["context_loader"] = PipesS3ContextLoader(storage.s3_client())
    if "bucket" in loader.load_messages_params():
        kwargs["message_writer"] = PipesS3MessageWriter(storage.s3_client())
    return open_dagster_pipes(**kwargs)


def parse_args(argv: list[str] | None, names: dict[str, str | None]) -> dict[str, str | None]:
    """Run-book style ``--NAME value`` arguments; unknown ones (Glue's, Pipes') are ignored."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name, default in names.items():
        parser.add_argument(f"--{name}", default=default)
    known, _ = parser.parse_known_args(argv)
    return vars(known)


def positive_int(value: str | None, name: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise FlywheelInputError(f"--{name} must be a positive whole number, got {value!r}")
    if number <= 0:
        raise FlywheelInputError(f"--{name} must be a positive whole number, got {value!r}")
    return number
