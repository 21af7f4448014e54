"""The local Spark server: one Spark Connect server that owns the Hive metastore.

The embedded Derby metastore admits one JVM at a time, and the Dagster UI launches runs in
parallel. So exactly one long-lived JVM opens ``$FLYWHEEL_HOME/catalog/metastore_db``; every
split job, catalog step, run and CLI call is a Spark Connect client of it (connecting takes well
under a second, against a JVM start per step). It is started on first use under a file lock,
listens on 127.0.0.1 only, and keeps running for later runs and ``flywheel tables``/``query``
until ``flywheel spark stop``. ``FLYWHEEL_SPARK_REMOTE`` points everything at another server.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource

START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30


def spark_submit() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


FAST_LOCAL_FS = "flywheel.FastLocalFileSystem"
CONNECT_SERVER = "flywheel.LocalConnectServer"
SPARK_CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
JVM_SOURCES = sorted((Path(__file__).parent / "jvm").glob("*.java"))


def server_classes() -> Path | None:
    """The folder of the server's own classes (jvm/*.java: FastLocalFileSystem, Hadoop's local file
    system without a ``chmod`` process per file written; LocalConnectServer, Spark Connect with one
    cache of compiled code for all sessions), compiled once per source and JDK into the user's
    cache; None without a JDK's javac, and the server is Spark's own (slower, same results)."""
    java = shutil.which("java")  # spark-submit runs this one: the javac of its JDK, else any
    beside = Path(java).resolve().parent / "javac" if java else None
    javac = str(beside) if beside and beside.exists() else shutil.which("javac")
    if javac is None:
        logging.getLogger(__name__).warning("no javac: the local Spark server runs without flywheel's classes "
                                            "(a chmod process per file written; code compiled per session); "
                                            "install a JDK")
        return None
    key = hashlib.sha256(b"".join(p.read_bytes() for p in JVM_SOURCES) + javac.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flywheel" / "jvm"
    classes = cache / f"server-{key}"
    def compiled() -> bool:
        return all((classes / "flywheel" / f"{p.stem}.class").exists() for p in JVM_SOURCES)

    if compiled():
        return classes
    building = cache / f".server-{key}-{os.getpid()}"
    try:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        jars = spark_submit().parent.parent / "jars"
        subprocess.run([javac, "-nowarn", "-cp", f"{jars}/*", "-d", str(building), *map(str, JVM_SOURCES)],
                       check=True, capture_output=True, timeout=120)
        os.replace(building, classes)  # another process may have won the race: its classes are the same
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        if not compiled():  # not a lost race
            logging.getLogger(__name__).warning(
                f"could not compile {', '.join(p.name for p in JVM_SOURCES)} ({exc}; "
                f"{detail.decode(errors='replace')[-500:]}): the local Spark server runs without them")
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return classes if compiled() else None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child, exited: reap it
            return False
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited process nobody has reaped yet is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# Run before the server's command: a JVM keeps signals its parent ignored ignored (no shutdown on
# SIGTERM; seen in CI, where the test process had SIGTERM ignored; Python itself ignores SIGPIPE
# and SIGXFSZ). A small interpreter resets them and execs the command, instead of Popen's
# preexec_fn: Python code between fork and exec can abort the child inside gRPC (a Spark Connect
# client in the parent), as it did once in CI.
DEFAULT_SIGNALS_THEN_EXEC = (
    "import os, signal, sys\n"
    "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


# A server's watchdog (see SparkServer.stop_with_caller): it blocks on its stdin, whose other end
# only the caller holds, and stops the server when that end closes: when the caller exits, however
# it exits (SIGTERM and SIGKILL skip the caller's own clean-up).
STOP_WHEN_STDIN_CLOSES = (
    "import shutil, sys\n"
    "sys.stdin.buffer.read()\n"
    "from flywheel_assets.local_spark import SparkServer\n"
    "SparkServer(sys.argv[1]).stop()\n"
    "if sys.argv[2:] == ['--remove-home']:\n"
    "    shutil.rmtree(sys.argv[1], ignore_errors=True)\n"
)


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Every table's writes and reads are new generated code for the JIT (1,744-column schemas, Derby's
# compiled statements): the default 240 MB code cache is full after 3-4 `flywheel run`s, and then
# the JVM keeps one of a laptop's 2 cores busy flushing and recompiling (seen: the C2 thread at
# 100% with 30,000 methods queued on an idle server). At 512 MB: 131 MB used after 4 runs; the test
# suite's server peaked at 97 MB before it ran C1 only (SHORT_LIVED_JIT).
JIT_CODE_CACHE = "-XX:ReservedCodeCacheSize=512m"
# The throughput collector instead of G1 (the JVM's default): the server is a batch engine, and
# G1's concurrent marking took 5-8 CPU-s of a run's 60 on 2 cores. Fresh servers, one cold run
# then two warm ones, alternated twice: server CPU 137-142, 72-76, 60-61 CPU-s against G1's
# 150-160, 80-83, 62 (docs/benchmarks.md). Its pauses stop the JVM (well under a second here).
THROUGHPUT_GC = "-XX:+UseParallelGC"
# Derby compiles every distinct SQL statement the metastore sends into a Java class, and keeps 100
# of them. A `flywheel run` of the sample lake sends about 400 distinct ones, so at 100 it compiled
# (and the JIT then compiled again) about 340 classes a run; at 1,000 a warm server compiles about
# 10 (docs/benchmarks.md).
DERBY_STATEMENT_CACHE = "-Dderby.language.statementCacheSize=1000"
SERVER_LOG_CONFIG = Path(__file__).parent / "jvm" / "log4j2.properties"
# With one cache of compiled code for all sessions (LocalConnectServer), a generated class lives
# from run to run, and its counters with it: after a few runs the wide tables' projections (4,500-7,000
# bytes of bytecode each) reach the JIT's C2, which gave up on each after 1-18 s ("out of nodes").
# At a quarter of C2's node budget it gives up sooner, and the method stays compiled by C1.
GENERATED_CODE_C2_LIMIT = ("-XX:CompileCommand=quiet -XX:CompileCommand=MaxNodeLimit,"
                           "org.apache.spark.sql.catalyst.expressions.GeneratedClass*::*,20000")
# For a server that lives minutes and sees small data (the test suite's): the JIT's first tier only.
# The suite sends hundreds of small, different statements to a fresh JVM; C2 spent 82 of the server's
# 311 CPU-s compiling methods that never ran long enough to pay it back. Not for a developer's
# server: on the sample lake, C1 only made re-runs 88-100 s against 56-66 s (docs/benchmarks.md).
SHORT_LIVED_JIT = "-XX:TieredStopAtLevel=1"


class SparkServer:
    def __init__(self, home: str | Path, master: str = "local[2]", driver_memory: str = "4g",
                 conf: dict[str, str] | None = None, java_options: str = ""):
        self.home = Path(home)
        self.master = master
        self.driver_memory = driver_memory
        self.extra_conf = conf or {}  # e.g. the benchmarks turn the UI (and its metrics API) on
        self.java_options = java_options  # added to the JVM's own (e.g. SHORT_LIVED_JIT)
        self.state_file = self.home / "server.json"

    def _state(self) -> dict | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return state if _pid_alive(state["pid"]) and _port_open(state["port"]) else None

    def running_url(self) -> str | None:
        state = self._state()
        return f"sc://127.0.0.1:{state['port']}" if state else None

    def command(self, port: int) -> list[str]:
        home = self.home.resolve()
        classes = server_classes()
        conf = {
            "spark.sql.catalogImplementation": "hive",
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(port),
            "spark.sql.warehouse.dir": str(home / "warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true",
            # Its temporary files under its home, emptied at each start: Hive leaves an empty
            # <session>_resources folder per session and Spark its spark-*/blockmgr-* folders when
            # the JVM is killed; in /tmp they piled up (715 + 249 on a developer's machine in 2 days).
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={home} -Djava.io.tmpdir={home / 'tmp'} "
                                             f"{JIT_CODE_CACHE} {THROUGHPUT_GC} {DERBY_STATEMENT_CACHE} "
                                             f"-Dlog4j2.configurationFile={SERVER_LOG_CONFIG} {GENERATED_CODE_C2_LIMIT} "
                                             f"{self.java_options}".rstrip(),
            "spark.local.dir": str(home / "tmp"),
            "spark.driver.memory": self.driver_memory,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "8",
            # Local files only (Glue and EMR do not read this): no .crc checksum file beside every
            # file written, no chmod process per file (FastLocalFileSystem), and each task's output
            # moved once instead of twice. Every write goes to a fresh folder (a run's staging, a
            # table version), so a failed job's partial files are discarded with it. 256-bucket
            # tables write 7,168 files a run (docs/benchmarks.md).
            "spark.hadoop.fs.file.impl": FAST_LOCAL_FS if classes else "org.apache.hadoop.fs.RawLocalFileSystem",
            **({"spark.driver.extraClassPath": str(classes)} if classes else {}),
            # Room for every session's generated code (default 100 classes; a run of the sample
            # lake compiles 171 distinct ones), which LocalConnectServer lets them share.
            "spark.sql.codegen.cache.maxEntries": "1000",
            "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "2",
            # A metastore locked by another JVM fails fast; the catalog retries it visibly.
            "spark.hadoop.hive.hmshandler.retry.attempts": "1",
            "spark.hadoop.hive.hmshandler.retry.interval": "100ms",
            **self.extra_conf,
        }
        cmd = [str(spark_submit()), "--class", CONNECT_SERVER if classes else SPARK_CONNECT_SERVER,
               "--name", "flywheel-local-spark", "--master", self.master]
        for key, value in conf.items():
            cmd += ["--conf", f"{key}={value}"]
        return cmd + ["spark-internal"]

    def ensure(self) -> str:
        """The server's URL, starting it if no live server is recorded."""
        url = self.running_url()
        if url:
            return url
        with _locked(self.home / "server.lock"):
            url = self.running_url()
            if url:
                return url
            return self._start()

    def _start(self) -> str:
        port = _free_port()
        shutil.rmtree(self.home / "tmp", ignore_errors=True)  # no server of this home is running
        (self.home / "tmp").mkdir(parents=True)
        log = open(self.home / "server.log", "ab")
        proc = subprocess.Popen([sys.executable, "-c", DEFAULT_SIGNALS_THEN_EXEC, *self.command(port)], cwd=self.home,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _port_open(port):
            if proc.poll() is not None:
                tail = (self.home / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"local Spark server exited with code {proc.returncode}; log tail:\n{tail}")
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"local Spark server did not listen on port {port} within {START_TIMEOUT_S}s")
            time.sleep(0.3)
        self.state_file.write_text(json.dumps({"pid": proc.pid, "port": port}))
        return f"sc://127.0.0.1:{port}"

    def stop_with_caller(self, remove_home: bool = False) -> subprocess.Popen:
        """A watchdog that stops this home's server (started now or later, by any process) once
        the calling process exits or closes the watchdog's stdin; then removes the home if asked.
        For servers that must not outlive their run (the test suite's, the benchmarks'): one left
        by a killed run kept 44% of a core busy and spoiled later measurements."""
        return subprocess.Popen([sys.executable, "-c", STOP_WHEN_STDIN_CLOSES, str(self.home),
                                 *(["--remove-home"] if remove_home else [])],
                                stdin=subprocess.PIPE, start_new_session=True)  # not stopped by a Ctrl-C first

    def stop(self) -> bool:
        if not self.home.is_dir():  # removed with its server stopped (a watchdog after the benchmarks' cleanup)
            return False
        with _locked(self.home / "server.lock"):
            state = self._state()
            self.state_file.unlink(missing_ok=True)
            if not state:
                return False
            try:
                os.killpg(state["pid"], signal.SIGTERM)
            except ProcessLookupError:
                return False
            killed, deadline = False, time.monotonic() + STOP_TIMEOUT_S
            while _pid_alive(state["pid"]) and time.monotonic() < deadline + STOP_TIMEOUT_S:
                if not killed and time.monotonic() > deadline:  # no shutdown: it must not keep the metastore
                    os.killpg(state["pid"], signal.SIGKILL)
                    killed = True
                time.sleep(0.1)
            return True


class LocalSpark(ConfigurableResource):
    """Where local Spark work goes: the project's own server, or ``remote`` if set."""

    home: str
    master: str = "local[2]"
    driver_memory: str = "4g"
    remote: str = ""  # sc://host:port of an existing Spark Connect server

    def url(self) -> str:
        """The server's address; a fresh server if the recorded one is not running (any more)."""
        return self.remote or SparkServer(self.home, self.master, self.driver_memory).ensure()

    def log_path(self) -> str:
        """Where the server's output goes ("" for a server of someone else's, ``remote``)."""
        return "" if self.remote else str(Path(self.home) / "server.log")
