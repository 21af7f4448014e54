"""The benchmark suite: `make bench` or `python -m benchmarks [--rows N ...] [--only split,join]`.

Every benchmark reports ratios against a baseline measured in the same run and replaces its own
section of docs/benchmarks.md; the header records the machine, the sizes and the total time.
The generated source lake is kept in --work (default ~/.cache/flywheel/bench) and reused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import bucketed_join, definitions_load, end_to_end, publish_history, s3_publish, sensor_tick, split_floor
from benchmarks.harness import DOCS, bench_home, machine, timed, write_section

TITLES = {
    "split": "1. Split job vs the pyarrow floor",
    "join": "2. Bucketed join vs the ext-table join",
    "publish": "3. Publishing snapshot N+1 as history grows",
    "e2e": "4. End to end: `flywheel run` on the sample lake",
    "sensor": "5. Sensor tick",
    "defs": "6. Loading the definitions (one asset per table)",
    "s3": "7. Publishing on S3 at production scale (S3 stand-in)",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=75_000,
                        help="rows of the production-shaped sample (27 tables, 1,744 columns)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--only", default=",".join(TITLES), help=f"comma-separated: {', '.join(TITLES)}")
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "flywheel" / "bench"))
    args = parser.parse_args(argv)
    chosen = [c.strip() for c in args.only.split(",")]
    unknown = set(chosen) - set(TITLES)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(TITLES)}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    lake_s, lake = timed(split_floor.make_lake, work / f"lake-production-{args.rows}", args.rows)
    print(f"source lake ready in {lake_s:.0f} s: {lake}", flush=True)
    figures = {}
    with tempfile.TemporaryDirectory(dir=work) as tmp, bench_home(Path(tmp)) as bench:
        for name in chosen:
            print(f"running {name} ...", flush=True)
            t0 = time.perf_counter()
            if name == "split":
                body, figures[name] = split_floor.run(bench, Path(tmp), lake)
            elif name == "join":
                body, figures[name] = bucketed_join.run(bench, lake, trials=args.trials)
            elif name == "publish":
                body, figures[name] = publish_history.run(bench, Path(tmp), trials=max(args.trials, 5))
            elif name == "e2e":
                body, figures[name] = end_to_end.run(bench, Path(tmp))
            elif name == "s3":
                body, figures[name] = s3_publish.run()
            elif name == "defs":
                body, figures[name] = definitions_load.run(Path(tmp), trials=args.trials)
            else:
                body, figures[name] = sensor_tick.run(Path(tmp), trials=max(args.trials, 5))
            took = time.perf_counter() - t0
            write_section(TITLES[name], body + f"\n\n_{took:.0f} s to measure._")
            print(body + "\n", flush=True)
    total = time.perf_counter() - started
    header = (f"# Benchmarks\n\nWritten by `make bench` (`python -m benchmarks`) on {dt.date.today().isoformat()}: "
              f"{total / 60:.1f} min in all ({', '.join(chosen)}), production-shaped sample `--rows {args.rows}`.\n\nMachine: {machine()}.\n")
    text = DOCS.read_text()
    if set(chosen) == set(TITLES) or "\n## " not in text:  # a partial run keeps the full run's header
        DOCS.write_text(header + "\n" + text[text.index("\n## "):].lstrip("\n") if "\n## " in text else header)
    (work / "last_figures.json").write_text(json.dumps(figures, indent=1, default=str))
    print(f"done in {total / 60:.1f} min; results in {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
