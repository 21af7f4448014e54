"""The local Spark server: one per FLYWHEEL_HOME, however many processes ask at once."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel_assets.local_spark import SparkServer

ENSURE = "from flywheel_assets.local_spark import SparkServer; import sys; print(SparkServer(sys.argv[1], 'local[1]', '1g').ensure())"


def test_concurrent_starts_share_one_server_and_stop_ends_it(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", ENSURE, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    urls = {p.communicate(timeout=300)[0].strip() for p in procs}
    server = SparkServer(tmp_path)
    try:
        assert len(urls) == 1 and urls == {server.running_url()}
        state = json.loads((tmp_path / "server.json").read_text())
        assert urls == {f"sc://127.0.0.1:{state['port']}"}
        log = (tmp_path / "server.log").read_text()
        assert log.count("Spark Connect server started") <= 1
    finally:
        assert server.stop()
    assert server.running_url() is None
    stat = Path(f"/proc/{state['pid']}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # gone, or exited unreaped


def test_metastore_locked_by_another_jvm_is_waited_for_then_reported(tmp_path):
    """A second server on the same FLYWHEEL_HOME cannot open the Derby metastore the first holds:
    the catalog waits and retries, succeeds once the first ends, and otherwise says what to look for."""
    import threading

    import pytest
    from pyspark.sql import SparkSession

    from flywheel_assets.catalog.local import MetastoreLockedError, wait_for_metastore
    from flywheel_assets.spark_jobs.runtime import stop_quietly

    first = SparkServer(tmp_path, "local[1]", "1g")
    holder = SparkSession.builder.remote(first.ensure()).create()
    pids = [json.loads((tmp_path / "server.json").read_text())["pid"]]  # killed at the end, whatever happens
    second = session = None
    try:
        holder.sql("CREATE DATABASE IF NOT EXISTS held").collect()  # boots Derby in the first JVM
        (tmp_path / "server.json").rename(tmp_path / "first.json")
        second = SparkServer(tmp_path, "local[1]", "1g")
        url = second.ensure()  # a server of its own: the first's state file is gone
        pids.append(json.loads((tmp_path / "server.json").read_text())["pid"])
        session = SparkSession.builder.remote(url).create()
        with pytest.raises(MetastoreLockedError, match="locked by another process .*same FLYWHEEL_HOME"):
            wait_for_metastore(session, url, wait_s=3, say=lambda msg: None)
        stop_quietly(holder)
        (tmp_path / "server.json").rename(tmp_path / "second.json")
        (tmp_path / "first.json").rename(tmp_path / "server.json")
        threading.Timer(3, first.stop).start()  # the other JVM ends while the catalog waits
        retries = []
        assert wait_for_metastore(session, url, wait_s=120, say=retries.append) >= 2
        assert retries and "retrying" in retries[0]
        assert [r.namespace for r in session.sql("SHOW DATABASES").collect()] == ["default", "held"]
    finally:
        if session:
            stop_quietly(session)
        if (tmp_path / "second.json").exists():
            (tmp_path / "second.json").rename(tmp_path / "server.json")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_server_that_dies_mid_step_fails_fast_and_the_next_step_gets_a_fresh_one(tmp_path):
    """Killed (a JVM crash, the OOM killer): a client of it fails within seconds naming the server
    and its log, instead of retrying silently for 10 minutes; the next step starts a new server
    on the same metastore and finds its tables."""
    import os
    import signal
    import time

    import pytest

    from flywheel_assets.catalog.local import LocalCatalog, close_sessions
    from flywheel_assets.local_spark import LocalSpark
    from flywheel_assets.spark_jobs.runtime import SparkServerGone

    server = LocalSpark(home=str(tmp_path), master="local[1]", driver_memory="1g")
    catalog = LocalCatalog(database="t_dies", server=server)
    try:
        catalog.ensure_database("t_dies")
        session = catalog.spark  # a step's session, obtained before the server dies
        state = json.loads((tmp_path / "server.json").read_text())
        os.killpg(state["pid"], signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(SparkServerGone, match=rf"the Spark server at sc://127.0.0.1:{state['port']} stopped while "
                                                  rf"this step ran .*its log: {tmp_path}/server.log"):
            session.sql("SHOW DATABASES").collect()
        assert time.monotonic() - started < 20
        assert catalog.spark.catalog.databaseExists("t_dies")  # the next step: a fresh server, same metastore
        fresh = json.loads((tmp_path / "server.json").read_text())
        assert fresh["pid"] != state["pid"]
    finally:
        close_sessions(*[f"sc://127.0.0.1:{s['port']}" for s in (state, locals().get("fresh")) if s])
        SparkServer(tmp_path).stop()


def test_the_server_starts_with_no_signal_ignored_even_when_its_parent_ignores_sigterm():
    """A JVM that inherits SIGTERM ignored never shuts down on `flywheel spark stop`."""
    from flywheel_assets.local_spark import DEFAULT_SIGNALS_THEN_EXEC

    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        status = subprocess.run([sys.executable, "-c", DEFAULT_SIGNALS_THEN_EXEC, "cat", "/proc/self/status"],
                                capture_output=True, text=True, check=True).stdout
        plain = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True, check=True).stdout
    finally:
        signal.signal(signal.SIGTERM, before)

    def ignored(text: str) -> int:
        return int(next(line for line in text.splitlines() if line.startswith("SigIgn")).split()[1], 16)

    reset = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ]
    assert ignored(plain) & (1 << (signal.SIGTERM - 1))  # what a plain exec would have inherited
    assert not [s.name for s in reset if ignored(status) & (1 << (s - 1))]


PERMISSIONS_PROBE = """
import java.nio.file.*;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
public class Probe {
  public static void main(String[] args) throws Exception {
    Configuration conf = new Configuration();
    conf.set("fs.permissions.umask-mode", "027");
    flywheel.FastLocalFileSystem fs = new flywheel.FastLocalFileSystem();
    fs.initialize(java.net.URI.create("file:///"), conf);
    fs.mkdirs(new Path(args[0] + "/dir"));
    fs.create(new Path(args[0] + "/dir/file")).close();
    fs.setPermission(new Path(args[0] + "/dir/file"), new org.apache.hadoop.fs.permission.FsPermission((short) 0604));
    fs.create(new Path(args[0] + "/other")).close();
    // a byte at a time (as Parquet's footers are written), then arrays around the 64 KB buffer
    org.apache.hadoop.fs.FSDataOutputStream out = fs.create(new Path(args[0] + "/bytes"), true, 4096);
    for (int i = 0; i < 70000; i++) out.write(i % 251);
    byte[] chunk = new byte[100000];
    for (int i = 0; i < chunk.length; i++) chunk[i] = (byte) (i % 251);
    out.write(chunk, 0, 100000);
    out.write(chunk, 7, 30);
    System.out.println("position " + out.getPos());
    out.close();
    for (org.apache.hadoop.fs.FileSystem.Statistics stats : org.apache.hadoop.fs.FileSystem.getAllStatistics()) {
      if (stats.getScheme().equals("file")) System.out.println("written " + stats.getBytesWritten());
    }
    System.out.println(fs.getClass().getName());
  }
}
"""


def test_the_local_file_system_sets_hadoops_modes_without_a_chmod_process(tmp_path, spark):
    """FastLocalFileSystem (jvm/): the modes Hadoop asks for (umask applied), set in-process; and
    what is written through its buffer arrives whole, at the positions the writer was told, and
    counted in the file system's statistics."""
    from flywheel_assets.local_spark import FAST_LOCAL_FS, server_classes, spark_submit

    classes = server_classes()
    assert classes is not None and (classes / "flywheel" / "FastLocalFileSystem.class").exists()
    (tmp_path / "Probe.java").write_text(PERMISSIONS_PROBE)
    jars = spark_submit().parent.parent / "jars"
    out = subprocess.run(["java", "-cp", f"{classes}:{jars}/*", str(tmp_path / "Probe.java"), str(tmp_path / "w")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == FAST_LOCAL_FS
    mode = {name: oct((tmp_path / "w" / name).stat().st_mode & 0o777) for name in ("dir", "dir/file", "other")}
    assert mode == {"dir": "0o750", "dir/file": "0o604", "other": "0o640"}  # umask 027, one explicit chmod
    pattern = bytes(i % 251 for i in range(100000))
    assert (tmp_path / "w" / "bytes").read_bytes() == pattern[:70000] + pattern + pattern[7:37]
    assert f"position {170030}" in out.stdout and f"written {170030}" in out.stdout
    assert spark.conf.get("spark.hadoop.fs.file.impl") == FAST_LOCAL_FS  # the test server writes through it


def test_the_server_jvm_has_room_for_the_code_it_generates_and_a_throughput_collector(spark_server, tmp_path):
    """The JIT's code cache as set (JIT_CODE_CACHE): at the JVM's default 240 MB it fills after a
    few runs and the compiler thread then takes a core recompiling what it flushed. The collector
    is the throughput one (THROUGHPUT_GC), not G1 with its concurrent marking. The suite's own
    server, short-lived, compiles with C1 only (SHORT_LIVED_JIT); a developer's server with both tiers."""
    pid = json.loads(spark_server.state_file.read_text())["pid"]
    flags = subprocess.run(["jcmd", str(pid), "VM.flags"], capture_output=True, text=True, timeout=60)
    assert flags.returncode == 0, flags.stderr
    assert f"-XX:ReservedCodeCacheSize={512 * 1024 * 1024}" in flags.stdout.split()
    assert "-XX:+UseParallelGC" in flags.stdout.split() and "-XX:+UseG1GC" not in flags.stdout.split()
    assert "-XX:TieredStopAtLevel=1" in flags.stdout.split()
    assert "TieredStopAtLevel" not in " ".join(SparkServer(tmp_path).command(port=1))


def test_the_server_keeps_its_temporary_files_in_its_home(spark_server, catalog):
    """Hive's per-session folders and Spark's scratch folders go under the server's home (emptied at
    each start), not /tmp, where every session and every killed server left some behind."""
    catalog.ensure_database(catalog.database)  # a metastore session
    pid = json.loads(spark_server.state_file.read_text())["pid"]
    props = subprocess.run(["jcmd", str(pid), "VM.system_properties"], capture_output=True, text=True, timeout=60)
    assert props.returncode == 0, props.stderr
    tmp = spark_server.home.resolve() / "tmp"
    assert f"java.io.tmpdir={tmp}" in props.stdout.splitlines()
    assert {p.name.split("-")[0] for p in tmp.iterdir() if p.name.startswith(("blockmgr-", "spark-"))} == {"blockmgr", "spark"}
    assert any(p.name.endswith("_resources") for p in tmp.iterdir())  # Hive's, for the session above


def test_the_server_keeps_derbys_compiled_statements_and_logs_only_what_matters(spark_server, catalog):
    """Derby keeps 1,000 compiled statements (a run of the sample lake sends about 400 distinct ones;
    at Derby's 100 it compiled some 340 classes a run). The server's log, never rotated, holds
    warnings, errors and the start line, not Spark's INFO chatter (about 60,000 lines a run)."""
    catalog.ensure_database(catalog.database)
    catalog.sql("SHOW TABLES").collect()  # metastore calls and a Spark job, both chatty at INFO
    pid = json.loads(spark_server.state_file.read_text())["pid"]
    props = subprocess.run(["jcmd", str(pid), "VM.system_properties"], capture_output=True, text=True, timeout=60)
    assert props.returncode == 0, props.stderr
    assert "derby.language.statementCacheSize=1000" in props.stdout.splitlines()
    log = (spark_server.home / "server.log").read_text(errors="replace")
    port = json.loads(spark_server.state_file.read_text())["port"]
    assert f"INFO LocalConnectServer: Spark Connect server started at: 127.0.0.1:{port}" in log
    levels = {line.split()[2] for line in log.splitlines() if re.match(r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d [A-Z]+ ", line)}
    chatter = [line for line in log.splitlines() if " INFO " in line and "LocalConnectServer:" not in line]
    assert levels <= {"INFO", "WARN", "ERROR"} and not chatter, chatter[:5]


def test_sessions_share_the_servers_compiled_code(spark_server, spark_url):
    """LocalConnectServer: Spark Connect sessions without per-session class loaders, so the code Spark
    generates and compiles for one session's query serves the next session's (Spark's own
    SparkConnectServer gave every session, and the executor's tasks for it, loaders of their own,
    and every step compiled every class again), in a cache sized for a run's 171 classes."""
    from pyspark.sql import SparkSession

    from flywheel_assets.spark_jobs.runtime import stop_quietly

    session = SparkSession.builder.remote(spark_url).create()
    try:
        assert session.range(1000).selectExpr("id % 7 AS k").groupBy("k").count().count() == 7  # tasks ran
        assert session.conf.get("spark.sql.artifact.isolation.enabled") == "false"
        assert session.conf.get("spark.sql.codegen.cache.maxEntries") == "1000"
    finally:
        stop_quietly(session)
    pid = json.loads(spark_server.state_file.read_text())["pid"]
    stats = subprocess.run(["jcmd", str(pid), "VM.classloader_stats"], capture_output=True, text=True, timeout=60)
    assert stats.returncode == 0, stats.stderr
    loaders = [line.split()[-1] for line in stats.stdout.splitlines()[2:] if line.strip()]
    assert "org.codehaus.commons.compiler.util.reflect.ByteArrayClassLoader" in loaders  # compiled code is there
    assert "org.apache.spark.executor.ExecutorClassLoader" not in loaders  # no session's own task loader


def test_steps_and_split_jobs_release_their_server_sessions(spark_url, catalog, monkeypatch):
    """A step's catalog session (at the resource's teardown) and a split job's session (when the job
    ends) are released on the server, which would otherwise keep each for an hour with every table
    listing it cached. A released session cannot be attached to again."""
    from pyspark.sql import SparkSession

    from flywheel_assets.spark_jobs.runtime import never_finalized, release, spark_session

    monkeypatch.setenv("FLYWHEEL_SPARK_REMOTE", spark_url)
    job = spark_session("flywheel-test-release")
    catalog.ensure_database(catalog.database)
    ids = [job.client._session_id, catalog.spark.client._session_id]
    release(job)
    catalog.teardown_after_execution(None)
    for session_id in ids:
        again = SparkSession.builder.remote(f"{spark_url}/;session_id={session_id}").create()
        try:
            with pytest.raises(Exception, match="SESSION_CLOSED"):
                again.sql("SELECT 1").collect()
        finally:
            again.client.close()
            never_finalized(again)
    assert catalog.spark.sql("SELECT 1").collect()[0][0] == 1  # the catalog opens a new one when next used


def test_a_stopped_session_is_never_finalized_while_the_process_runs(spark_url):
    """PySpark 4.1, finalizing a Spark Connect session, shuts down a thread pool all sessions share
    and waits for it; run by the garbage collector inside another thread's gRPC call, that deadlocks
    (a suite run hung for good in bucketed_tables' concurrent builds). A session stopped through
    stop_quietly stays referenced, so the collector never finalizes it."""
    import gc
    import weakref

    from pyspark.sql import SparkSession

    from flywheel_assets.spark_jobs.runtime import stop_quietly

    session = SparkSession.builder.remote(spark_url).create()
    assert session.sql("SELECT 1").collect()[0][0] == 1
    finalized = []
    ref = weakref.ref(session, finalized.append)
    stop_quietly(session)
    del session
    gc.collect()
    assert ref() is not None and not finalized


def test_a_server_tied_to_its_caller_is_stopped_when_the_caller_is_killed(tmp_path):
    """The test suite's and the benchmarks' servers die with their run, even one killed outright
    (`pkill -f pytest`, SIGKILL), instead of using a core until someone notices. A stand-in server
    (a listening process in its own session, as the JVM is) keeps the test off the JVM."""
    import time

    home = tmp_path / "spark-home"
    home.mkdir()
    server = subprocess.Popen([sys.executable, "-c", "import socket, time; s = socket.socket(); "
                               "s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1], flush=True); "
                               "time.sleep(600)"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(server.stdout.readline())
        (home / "server.json").write_text(json.dumps({"pid": server.pid, "port": port}))
        assert SparkServer(home).running_url() == f"sc://127.0.0.1:{port}"
        caller = subprocess.Popen([sys.executable, "-c", "import sys, time; from flywheel_assets.local_spark import "
                                   "SparkServer; SparkServer(sys.argv[1]).stop_with_caller(remove_home=True); "
                                   "print('tied', flush=True); time.sleep(600)", str(home)],
                                  stdout=subprocess.PIPE, text=True)
        assert caller.stdout.readline().strip() == "tied"
        time.sleep(4)  # time for a watchdog to import and stop the server, had it been told to
        assert server.poll() is None  # the caller lives: the server runs on
        caller.kill()
        caller.wait()
        assert server.wait(timeout=30) == -signal.SIGTERM
        deadline = time.monotonic() + 10
        while home.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not home.exists()
    finally:
        if server.poll() is None:
            server.kill()


def test_stopping_a_removed_home_leaves_no_folder_behind(tmp_path):
    """The benchmarks remove their temporary home after stopping its server; their watchdog fires
    later, when the process exits, and must not create the home again for its lock file (it left
    an empty folder per `make bench` in the cache)."""
    home = tmp_path / "gone" / "spark"
    assert SparkServer(home).stop() is False
    assert not (tmp_path / "gone").exists()
