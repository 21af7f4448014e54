"""``flywheel``: the command line over the local Dagster instance under FLYWHEEL_HOME."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flywheel_assets.settings import Settings, get_settings


def prepare_instance(settings: Settings) -> Path:
    """Point Dagster at FLYWHEEL_HOME/dagster (the instance `flywheel ui` opens too), configured
    from the settings (instance.py)."""
    from flywheel_assets.instance import write_instance_config

    home = write_instance_config(settings)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_demo_data(args, settings: Settings) -> int:
    import datetime as dt

    from flywheel_assets.demo_data import DemoSpec, recent_first_snapshot, write_demo_lake

    root = args.root or settings.data_root
    first = args.first_snapshot or recent_first_snapshot(args.snapshots, dt.date.today())
    spec = DemoSpec(rows=args.rows, snapshots=args.snapshots, seed=args.seed, first_snapshot=first)
    info = write_demo_lake(root, spec)
    print(f"sample lake at {info['root']}: infobase snapshots {', '.join(info['snapshots'])}, addressable "
          f"snapshots {', '.join(info['addressable_snapshots'])}; {info['rows']} rows x {info['attributes']} "
          f"attribute columns, {info['tables']} tables in the production-format mapping")
    return 0


def cmd_run(args, settings: Settings) -> int:
    from flywheel_assets.orchestration import retry_failed, run_snapshot

    prepare_instance(settings)
    if args.retry_failed:
        return 0 if retry_failed(settings, args.snapshot) else 1
    selection = [s.strip() for s in args.select.split(",")] if args.select else None
    return 0 if run_snapshot(settings, args.snapshot, selection, load_run_config(args.config)) else 1


def load_run_config(path: str | None) -> dict:
    """Run config from a YAML/JSON file: {ops: {<asset>: {config: {...}}}}, as in the UI's launchpad."""
    if not path:
        return {}
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read run config {path}: {exc}")
    if not isinstance(config, dict) or set(config) - {"ops"}:
        raise ValueError(f"{path}: run config must be a mapping with an 'ops' key")
    return config


def cmd_backfill(args, settings: Settings) -> int:
    from flywheel_assets.orchestration import backfill

    prepare_instance(settings)
    selection = [s.strip() for s in args.select.split(",")] if args.select else None
    listed = [s.strip() for s in args.snapshots.split(",")] if args.snapshots else None
    return 0 if backfill(settings, args.date_from, args.date_to, listed, selection, load_run_config(args.config)) else 1


def catalog_for(settings: Settings):
    from flywheel_assets.resources import resources_for

    return resources_for(settings)["catalog"]


def print_table(columns: list[str], rows: list[tuple]) -> None:
    cells = [[("NULL" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def cmd_assets(args, settings: Settings) -> int:
    """The asset graph as loaded now: each step and its tables, and where each job's table list
    came from (its mapping file, or the cache when the mapping could not be read)."""
    prepare_instance(settings)
    from flywheel_assets.orchestration import steps
    from flywheel_assets.tables import read_table_set

    for job, origin in read_table_set(settings.data_root, settings.home).origin.items():
        print(f"{job}: tables from {origin}")
    for step, keys in steps().items():
        print(f"\n{step} ({len(keys)}): {', '.join(keys)}")
    return 0


def cmd_tables(args, settings: Settings) -> int:
    catalog = catalog_for(settings)
    database = args.database or catalog.database
    tables = catalog.list_tables(database)
    rows = [
        (t.name, t.location, t.snapshot or "-",
         t.source_snapshot if t.source_snapshot and t.source_snapshot != t.snapshot else "-",
         t.partitions if t.partition_keys else "-",
         f"{','.join(t.bucket_columns)} x {t.num_buckets}" if t.num_buckets else "-", len(t.columns))
        for t in tables
    ]
    print(f"database {database} on {catalog.engine()}")
    print_table(["table", "location", "snapshot_dt", "read from", "partitions", "buckets", "columns"], rows)
    return 0


def cmd_query(args, settings: Settings) -> int:
    columns, rows = catalog_for(settings).query(args.sql)
    print_table(columns, rows[: args.max_rows])
    if len(rows) > args.max_rows:
        print(f"(showing {args.max_rows} of {len(rows)} rows)")
    return 0


def cmd_spark(args, settings: Settings) -> int:
    from flywheel_assets.local_spark import SparkServer

    server = SparkServer(settings.spark_home, settings.spark_master, settings.spark_driver_memory)
    if args.action == "stop":
        print("stopped the local Spark server" if server.stop() else "no local Spark server was running")
    elif args.action == "start":
        print(f"local Spark server at {server.ensure()} (log: {settings.spark_home / 'server.log'})")
    else:
        url = server.running_url()
        print(f"local Spark server at {url}" if url else "local Spark server not running")
    return 0


def cmd_report(args, settings: Settings) -> int:
    from flywheel_assets.pipelines.reporting import generate

    from flywheel_assets.resources import resources_for

    resources = resources_for(settings)
    catalog = resources["catalog"]
    report, files = generate(catalog, resources["reporting"], args.database or catalog.database, args.prefix,
                             args.membership_id)
    rows = [(r["table_name"], r["partitions"], r["latest_snapshot"], r["ready_for_analysis"], r["reason"])
            for r in report["tables_report"]]
    print_table(["table", "partitions", "latest_snapshot", "ready", "reason"], rows)
    for name, section in report["sections"].items():
        print(f"section {name}: {section['status']}" + (f" ({section['reason']})" if section["reason"] else ""))
    for path in files.values():
        print(f"wrote {path}")
    return 0


def cmd_monitor(args, settings: Settings) -> int:
    from flywheel_assets.orchestration import print_monitor, run_monitor_job

    prepare_instance(settings)
    config = {k: v for k, v in {"as_of": args.as_of, "freshness_days": args.freshness_days,
                                "database": args.database}.items() if v is not None}
    ok, report = run_monitor_job(settings, config)
    if not ok or report is None:
        print("flywheel: the data monitor run failed (see its run in `make ui`)", file=sys.stderr)
        return 1
    print_monitor(report)
    return 0 if report["status"] == "green" else 1


def cmd_status(args, settings: Settings) -> int:
    import json

    from flywheel_assets.monitor import as_of_date
    from flywheel_assets.status import gather, render

    status = gather(settings, as_of_date(args.as_of))
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0 if status["healthy"] else 1


def cmd_deploy(args, settings: Settings) -> int:
    from flywheel_assets.deploy import deploy

    result = deploy(settings, dry_run=args.dry_run)
    for line in result.describe():
        print(("would " if args.dry_run and not line.startswith("unchanged") else "") + line)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_ui(args, settings: Settings) -> int:
    prepare_instance(settings)
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-m", "flywheel_assets.definitions", "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {settings.dagster_home})")
    # `dagster dev` says it is superseded by `dg dev`, which needs a dg project layout; it still works.
    os.environ["PYTHONWARNINGS"] = "ignore:Function `dev_command` is superseded"
    os.execv(command[0], command)


def cmd_serve(args, settings: Settings) -> int:
    """One process of a production deployment, in the foreground (for systemd, a container, ECS)."""
    prepare_instance(settings)
    host, _, port = settings.code_server.rpartition(":")
    grpc = ["--grpc-host", host, "--grpc-port", port]
    bin_dir = Path(sys.executable).parent
    commands = {
        # the code location (loads the definitions; runs are launched from it)
        "code-server": [str(bin_dir / "dagster"), "code-server", "start", "-h", host, "-p", port,
                        "-m", "flywheel_assets.definitions", "--location-name", "flywheel"],
        # sensors, schedules, the run queue, run monitoring, alerts
        "daemon": [str(bin_dir / "dagster-daemon"), "run", *grpc],
        "webserver": [str(bin_dir / "dagster-webserver"), "-h", args.host, "-p", str(args.port), *grpc],
    }
    command = commands[args.component]
    print(f"flywheel serve {args.component}: {' '.join(command[1:])} (instance {settings.dagster_home})", flush=True)
    os.execv(command[0], command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flywheel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-data", help="write the built-in sample lake (deterministic)")
    demo.add_argument("--root", help="lake root (default: FLYWHEEL_DATA_ROOT)")
    demo.add_argument("--rows", type=int, default=1000, help="rows per snapshot (the columns are production's)")
    demo.add_argument("--snapshots", type=int, default=2, help="number of snapshots (monthly)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--first-snapshot", help="the oldest snapshot date (default: monthly up to the newest 15th)")
    demo.set_defaults(func=cmd_demo_data)

    run = sub.add_parser("run", help="materialize the graph for one snapshot")
    run.add_argument("--snapshot", default="latest", help="YYYY-MM-DD or 'latest' (default)")
    run.add_argument("--select", help="comma-separated asset keys (bucketed_ibe_01, split_part/ibe_01) or steps "
                     "(ext_tables: all its tables); default: all. `flywheel assets` lists them")
    run.add_argument("--config", help="run config file (YAML/JSON): ops: {<asset>: {config: {...}}}")
    run.add_argument("--retry-failed", action="store_true",
                     help="re-execute the snapshot's last failed run from its failed steps (and what is downstream)")
    run.set_defaults(func=cmd_run)

    backfill = sub.add_parser("backfill", help="materialize several snapshots, one run each, oldest first")
    backfill.add_argument("--from", dest="date_from", help="first snapshot date (inclusive)")
    backfill.add_argument("--to", dest="date_to", help="last snapshot date (inclusive)")
    backfill.add_argument("--snapshots", help="comma-separated snapshot dates instead of a range")
    backfill.add_argument("--select", help="comma-separated asset keys or steps, as for run (default: all)")
    backfill.add_argument("--config", help="run config file (YAML/JSON), as for run")
    backfill.set_defaults(func=cmd_backfill)

    assets = sub.add_parser("assets", help="list the steps and their table assets (for --select)")
    assets.set_defaults(func=cmd_assets)
    tables = sub.add_parser("tables", help="list catalog tables: location, snapshot, partitions, buckets")
    tables.add_argument("--database", help="default: FLYWHEEL_DATABASE (omc_flywheel_prod)")
    tables.set_defaults(func=cmd_tables)

    query = sub.add_parser("query", help="run SQL on the configured engine and print the result")
    query.add_argument("sql")
    query.add_argument("--max-rows", type=int, default=100)
    query.set_defaults(func=cmd_query)

    spark = sub.add_parser("spark", help="the local Spark server (Spark Connect + Hive metastore)")
    spark.add_argument("action", choices=["status", "start", "stop"])
    spark.set_defaults(func=cmd_spark)

    report = sub.add_parser("report", help="write the Clean Rooms readiness report (JSON + 2 CSV)")
    report.add_argument("--database", help="default: FLYWHEEL_DATABASE")
    report.add_argument("--prefix", default="part_", help="tables to report on (default part_)")
    report.add_argument("--membership-id", help="the Clean Rooms membership to report on "
                        "(default: FLYWHEEL_CLEANROOMS_MEMBERSHIP_ID, or every membership)")
    report.set_defaults(func=cmd_report)

    monitor = sub.add_parser("monitor", help="run the data monitor now (exit 1 when a table fails)")
    monitor.add_argument("--as-of", help="judge freshness as of this date (default today)")
    monitor.add_argument("--freshness-days", type=int, help="default FLYWHEEL_FRESHNESS_DAYS (45)")
    monitor.add_argument("--database", help="default: FLYWHEEL_DATABASE")
    monitor.set_defaults(func=cmd_monitor)

    status = sub.add_parser("status", help="live snapshots, their age, runs, failing checks, monitor and Clean Rooms "
                            "readiness; exit 1 when something needs a person")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--as-of", help="judge freshness as of this date (default today)")
    status.set_defaults(func=cmd_status)

    deploy = sub.add_parser("deploy", help="upload the job bundle and create/update the Glue jobs (AWS)")
    deploy.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    deploy.set_defaults(func=cmd_deploy)

    serve = sub.add_parser("serve", help="run one process of a production deployment: the code server, the "
                           "daemon or the webserver (see README, Deploy the platform)")
    serve.add_argument("component", choices=["code-server", "daemon", "webserver"])
    serve.add_argument("--host", default="127.0.0.1", help="webserver host")
    serve.add_argument("--port", type=int, default=3000, help="webserver port")
    serve.set_defaults(func=cmd_serve)

    ui = sub.add_parser("ui", help="open the Dagster UI on the local instance")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        return args.func(args, settings)
    except (ValueError, FileNotFoundError) as exc:  # FlywheelInputError included
        print(f"flywheel: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__module__.startswith(("pyspark", "botocore", "dagster_aws")):  # engine errors: message only
            print(f"flywheel: {engine_message(exc)}", file=sys.stderr)
            return 1
        raise


def engine_message(exc: Exception) -> str:
    """An engine's error without the JVM stack trace."""
    text = str(exc).split("JVM stacktrace:")[0].strip()
    return text[:2000]


if __name__ == "__main__":
    sys.exit(main())
