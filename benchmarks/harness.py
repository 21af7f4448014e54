"""What every benchmark shares: a private local Spark server with its metrics API, machine
details, timing, and docs/benchmarks.md (one section per benchmark, replaced on each run)."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import statistics
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    """A temporary FLYWHEEL_HOME with its own Spark server (UI on, for the stage metrics)."""

    def __init__(self, home: Path):
        from flywheel_assets.local_spark import SparkServer

        self.home = home
        self.ui_port = free_port()
        self.server = SparkServer(home / "spark", "local[2]", "4g",
                                  conf={"spark.ui.enabled": "true", "spark.ui.port": str(self.ui_port)})
        self.watchdog = self.server.stop_with_caller()  # a killed benchmark leaves no server to slow the next one
        self.url = self.server.ensure()

    def session(self):
        from flywheel_assets.catalog.local import _session

        return _session(self.url)

    def catalog(self, database: str):
        from flywheel_assets.catalog.local import LocalCatalog
        from flywheel_assets.local_spark import LocalSpark

        return LocalCatalog(database=database, server=LocalSpark(home=str(self.home / "spark"), remote=self.url))

    def _api(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/api/v1/{path}", timeout=30) as r:
            return json.loads(r.read())

    def stage_totals(self) -> dict[str, int]:
        """Counters of the server so far (take a difference around a block): shuffle bytes summed
        over its completed stages, and the bytes its JVM read (``rchar`` of /proc/<pid>/io: every
        read, from disk or page cache; Spark's own input metrics undercount coalesced parquet scans)."""
        app = self._api("applications")[0]["id"]
        stages = self._api(f"applications/{app}/stages?status=complete")
        totals = {k: sum(s.get(k, 0) for s in stages) for k in ("shuffleWriteBytes", "shuffleReadBytes")}
        pid = json.loads(self.server.state_file.read_text())["pid"]
        io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return {**totals, "readBytes": int(io["rchar"])}

    def close(self) -> None:
        from flywheel_assets.catalog.local import close_sessions

        close_sessions()
        self.server.stop()


@contextmanager
def bench_home(root: Path):
    bench = Bench(root)
    try:
        yield bench
    finally:
        bench.close()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - started, value


def median_time(fn, trials: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(trials))


def machine() -> str:
    memory = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, AttributeError):
        pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    except (OSError, IndexError):
        java = "java unknown"
    import pyarrow
    import pyspark
    import dagster

    cpu = ""
    try:
        cpu = re.search(r"model name\s+:\s+(.*)", Path("/proc/cpuinfo").read_text()).group(1) + ", "
    except (OSError, AttributeError):
        pass
    return (f"{cpu}{os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {java}; PySpark {pyspark.__version__}; "
            f"pyarrow {pyarrow.__version__}; Dagster {dagster.__version__}")


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of docs/benchmarks.md."""
    DOCS.parent.mkdir(exist_ok=True)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    sections = re.split(r"(?m)^(?=## )", text)
    head, rest = sections[0], [s for s in sections[1:] if not s.startswith(f"## {title}\n")]
    new = f"## {title}\n\n{body.strip()}\n\n"
    order = [s.split("\n", 1)[0][3:] for s in sections[1:]]
    if title in order:  # keep the section where it was
        rest.insert(order.index(title), new)
    else:
        rest.append(new)
    DOCS.write_text(head.rstrip() + "\n\n" + "".join(s.rstrip() + "\n\n" for s in rest).rstrip() + "\n")


def table(header: list[str], rows: list[list]) -> str:
    align = ["---:" if all(isinstance(r[i], (int, float)) or str(r[i])[:1].isdigit() for r in rows) else "---"
             for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
