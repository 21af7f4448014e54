"""Benchmark 7: publishing a production-shaped snapshot on S3, before and after version folders.

No AWS account and no 550 GB here, so an S3 stand-in: an in-memory object store that holds each
object's simulated size, counts every request the publishing code makes (LIST per 1,000 keys, GET,
PUT, HEAD, COPY, DELETE per 1,000 keys) and charges each a modelled time. The real
``flywheel_assets.core.publish`` runs against it: ``storage``'s functions are swapped for the
stand-in's while a scenario runs.

The model, from S3's published performance guidelines: 100 ms per request (the low end of their
"100-200 ms" first-byte latency for small objects) and 85 MB/s per connection for data (their
"one concurrent request per 85-90 MB/s"), so a server-side copy of an object costs 100 ms plus
its size at 85 MB/s. Catalog updates (Glue UpdateTable per ext table, GetPartition and
UpdatePartition per part table) are charged one request each.

A reader checks every table after every request: each must be the old snapshot's files or the new
one's, all of them; an empty, partial or mixed table is counted.

Before: the code this replaced (``git show 4487dcd:flywheel_assets/core/publish.py``) wrote each run
under ``_staging/<run>/``, then for every table moved the published folder aside and the staged
one in, each a sequential copy of every object plus deletes. After: the split stages its version
folders (one PUT), the catalog step points each ext table at its version and records the switch;
a part snapshot is written in place, or, re-published, into a version its partition is pointed at.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field

from benchmarks.harness import table
from flywheel_assets.core import publish, storage

LATENCY_S = 0.100
BYTES_PER_S = 85 * 1000**2
MIB = 1024**2
COPY_LIMIT = 5 * 1000**3  # CopyObject refuses larger objects: the replaced code's copies failed there


@dataclass
class Store:
    """Objects by key (``s3://bucket/key``): (size, content). Requests counted and timed."""

    objects: dict[str, tuple[int, str]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    copied_bytes: int = 0
    observe: object = None  # called after every request that changes something

    def charge(self, kind: str, count: int = 1, data_bytes: int = 0) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + count
        self.seconds += count * LATENCY_S + data_bytes / BYTES_PER_S

    def changed(self) -> None:
        if self.observe:
            self.observe()

    def keys_under(self, uri: str) -> list[str]:
        prefix = uri.rstrip("/") + "/"
        return sorted(k for k in self.objects if k.startswith(prefix))

    # storage's functions, as S3 serves them
    def list_dir(self, uri):
        prefix = uri.rstrip("/") + "/"
        children = {}
        for key in self.keys_under(uri):
            name, _, rest = key[len(prefix):].partition("/")
            children.setdefault(name, (bool(rest), self.objects[key][0]))
        self.charge("LIST", max(1, math.ceil(len(children) / 1000)))
        return [storage.Entry(n, d, 0 if d else s) for n, (d, s) in sorted(children.items())]

    def list_files(self, uri):
        keys = self.keys_under(uri)
        self.charge("LIST", max(1, math.ceil(len(keys) / 1000)))
        return [(k[len(uri.rstrip('/')) + 1:], self.objects[k][0]) for k in keys]

    def read_text(self, uri):
        self.charge("GET")
        found = self.objects.get(uri)
        return found[1] if found else None

    def write_text(self, uri, text):
        self.charge("PUT")
        self.objects[uri] = (len(text), text)
        self.changed()

    def delete_file(self, uri):
        self.charge("DELETE")
        self.objects.pop(uri, None)
        self.changed()

    def delete_tree(self, uri):
        keys = self.keys_under(uri)
        self.charge("LIST", max(1, math.ceil(len(keys) / 1000)))
        for batch in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys
            self.charge("DELETE")
            for k in keys[batch:batch + 1000]:
                self.objects.pop(k)
            self.changed()

    def folder_exists(self, uri):
        self.charge("HEAD")
        self.charge("LIST")
        return bool(self.keys_under(uri))

    def remove_if_empty(self, uri):
        self.folder_exists(uri)

    def copy_object(self, src: str, dst: str) -> None:
        """One server-side CopyObject (the replaced code's pyarrow copy_file)."""
        size, content = self.objects[src]
        if size > COPY_LIMIT:
            self.requests["refused (over 5 GB)"] = self.requests.get("refused (over 5 GB)", 0) + 1
        self.charge("COPY", data_bytes=size)
        self.objects[dst] = (size, content)
        self.copied_bytes += size
        self.changed()

    def move_tree(self, src, dst):
        """The replaced storage.move_tree on S3: list, copy every object one after the other, delete."""
        for relative, _ in self.list_files(src):
            self.copy_object(f"{src.rstrip('/')}/{relative}", f"{dst.rstrip('/')}/{relative}")
        self.delete_tree(src)


@contextmanager
def serving(store: Store):
    """``storage``'s functions answered by the stand-in while the block runs."""
    names = ["list_dir", "list_files", "read_text", "write_text", "delete_file", "delete_tree", "folder_exists",
             "remove_if_empty"]
    saved = {n: getattr(storage, n) for n in names}
    for n in names:
        setattr(storage, n, getattr(store, n))
    try:
        yield store
    finally:
        for n, f in saved.items():
            setattr(storage, n, f)


@dataclass
class Reader:
    """What a query of each table would read at this instant: must be one snapshot, whole."""

    store: Store
    folders: dict  # table -> the folder a query reads (the ext table's location, or a callable)
    expected: dict[str, set[str]]  # snapshot -> the file contents one table holds
    observations: int = 0
    bad: list = field(default_factory=list)

    def __call__(self) -> None:
        for t, folder in self.folders.items():
            folder = folder() if callable(folder) else folder
            prefix = folder.rstrip("/") + "/"
            seen = {c for k, (_, c) in self.store.objects.items()
                    if k.startswith(prefix) and "/" not in k[len(prefix):] and not k[len(prefix):].startswith("_")}
            self.observations += 1
            if not any(seen == {f"{t}:{c}" for c in contents} for contents in self.expected.values()):
                self.bad.append((t, len(seen)))


ROOT = "s3://lake/omc_cleanroom_data/split_cluster/infobase_attributes"


def files(snapshot: str, count: int) -> set[str]:
    return {f"{snapshot}/part-{i:05d}.snappy.parquet" for i in range(count)}


def before(tables: int, per_table: int, size: int) -> tuple[Store, Reader]:
    """The replaced publication: staged copies moved into place, table by table."""
    store = Store()
    names = [f"IBE_{i:02d}" for i in range(1, tables + 1)]
    run = f"{ROOT}/_staging/2024-07-01_abc"
    for t in names:
        for f in files("old", per_table):
            store.objects[f"{ROOT}/{t}/{f.split('/')[1]}"] = (size, f"{t}:old/{f.split('/')[1]}")
        for f in files("new", per_table):
            store.objects[f"{run}/{t}/{f.split('/')[1]}"] = (size, f"{t}:new/{f.split('/')[1]}")
    expected = {s: {f"{s}/{f.split('/')[1]}" for f in files(s, per_table)} for s in ("old", "new")}
    reader = Reader(store, {t: f"{ROOT}/{t}" for t in names}, expected)
    store.observe = reader
    with serving(store):
        # publish.commit + roll_forward as they were, with the sequential move of that code
        storage.write_text(f"{run}/_COMMITTED.json", json.dumps({"folders": names}))
        for i, t in enumerate(names):
            store.move_tree(f"{ROOT}/{t}", f"{run}/_retired/{i}")
            storage.write_text(f"{run}/_retired/{i}.done", "")
            store.move_tree(f"{run}/{t}", f"{ROOT}/{t}")
        for name in ("skipped_tables.json", "source_snapshot_dt.txt", "snapshot_dt.txt"):
            storage.write_text(f"{ROOT}/metadata/{name}", "2024-07-01")
        storage.delete_tree(run)
        storage.remove_if_empty(f"{ROOT}/_staging")
    return store, reader


def after(tables: int, per_table: int, size: int) -> tuple[Store, Reader]:
    """Version folders: the split stages them, the catalog step switches the ext tables to them."""
    store = Store()
    names = [f"IBE_{i:02d}" for i in range(1, tables + 1)]
    catalog = {}
    written = {}  # the new version's files, written by the split's Spark job (not publishing)
    for snapshot, version in (("older", "v2024-05-01_zzz"), ("old", "v2024-06-01_aaa"), ("new", "v2024-07-01_bbb")):
        for t in names:
            objects = store.objects if snapshot != "new" else written
            for f in files(snapshot, per_table):
                objects[f"{ROOT}/{t}/{version}/{f.split('/')[1]}"] = (size, f"{t}:{f}")
            objects[f"{ROOT}/{t}/{version}/{publish.RECORD}"] = (10, "{}")
    old = publish.Publication("2024-06-01", "2024-06-01", tables={t: f"{t}/v2024-06-01_aaa" for t in names})
    new = publish.Publication("2024-07-01", "2024-07-01", tables={t: f"{t}/v2024-07-01_bbb" for t in names})
    older = publish.Publication("2024-05-01", "2024-05-01", tables={t: f"{t}/v2024-05-01_zzz" for t in names})
    with serving(store):  # the published state, with the version it replaced: not measured
        publish.switch(ROOT, older)
        publish.switch(ROOT, old)
    assert all(f"{ROOT}/{t}/v2024-05-01_zzz/{publish.RECORD}" in store.objects for t in names)
    catalog.update({t: f"{ROOT}/{old.tables[t]}" for t in names})
    store.requests, store.seconds = {}, 0.0
    expected = {s: {f"{s}/{f.split('/')[1]}" for f in files(s, per_table)} for s in ("old", "new")}
    reader = Reader(store, {t: (lambda t=t: catalog[t]) for t in names}, expected)
    store.observe = reader
    with serving(store):
        publish.remove_orphans(ROOT)  # the split, before it writes
        store.objects.update(written)
        publish.stage(ROOT, new, whole_target=True)  # the split's commit
        for t in names:  # ext_tables: one catalog update per table (Glue UpdateTable)
            store.charge("catalog update")
            catalog[t] = f"{ROOT}/{new.tables[t]}"
            reader()
        publish.switch(ROOT, publish.staged(ROOT))
    return store, reader


PART = "s3://lake/omc_cleanroom_data/split_part/infobase_attributes"


def part(tables: int, per_table: int, size: int, republish: bool, old: bool) -> tuple[Store, Reader]:
    """Snapshot-folder layout, one snapshot's folders published; ``old``: as the replaced code did
    (staged, then moved aside and in, one object at a time). A new snapshot has no reader (its
    partition is registered after); readers of a re-published one are checked, through the catalog."""
    store = Store()
    names = [f"IBE_{i:02d}" for i in range(1, tables + 1)]
    folders = [f"{t}/snapshot_dt=2024-07-01" for t in names]
    with serving(store):
        run, version = publish.new_run(PART, "2024-07-01"), publish.new_part_version()
    for t, folder in zip(names, folders):
        if old:
            where = f"{run}/{folder}"
        else:
            where = f"{PART}/{folder}/{version}" if republish else f"{PART}/{folder}"
        for f in files("new", per_table):
            store.objects[f"{where}/{f.split('/')[1]}"] = (size, f"{t}:{f}")
        if republish:
            for f in files("old", per_table):
                store.objects[f"{PART}/{folder}/old-{f.split('/')[1]}"] = (size, f"{t}:{f}")
    catalog = {t: f"{PART}/{folder}" for t, folder in zip(names, folders)}  # the registered partitions
    expected = {s: {f"{s}/{f.split('/')[1]}" for f in files(s, per_table)} for s in ("old", "new")}
    reader = Reader(store, {t: (lambda t=t: catalog[t]) for t in names} if republish else {}, expected)
    store.observe = reader
    store.requests, store.seconds = {}, 0.0
    with serving(store):
        if old:
            storage.write_text(f"{run}/_COMMITTED.json", json.dumps({"folders": folders}))
            for i, folder in enumerate(folders):
                if storage.folder_exists(f"{PART}/{folder}"):
                    store.move_tree(f"{PART}/{folder}", f"{run}/_retired/{i}")
                storage.write_text(f"{run}/_retired/{i}.done", "")
                store.move_tree(f"{run}/{folder}", f"{PART}/{folder}")
            storage.delete_tree(run)
            storage.remove_if_empty(f"{PART}/_staging")
            return store, reader
        publish.claim(run, [f"{f}/{version}" if republish else f for f in folders])  # before the split writes
        publish.commit(PART, run, {f: version for f in folders} if republish else {},
                       publish.Publication("2024-07-01", "2024-07-01"))
        for t, folder in zip(names, folders):  # part_tables: register, or point at the version
            store.charge("catalog update")
            if republish:
                held, catalog[t] = catalog[t], publish.data_folder(f"{PART}/{folder}")
                store.charge("catalog update")
                reader()
                publish.prune_snapshot_folder(f"{PART}/{folder}", {catalog[t], held})
    return store, reader


def figures(store: Store, reader: Reader) -> dict:
    return {"requests": sum(store.requests.values()), "by_kind": dict(sorted(store.requests.items())),
            "seconds": round(store.seconds, 1), "copied_gb": round(store.copied_bytes / 1000**3, 1),
            "observations": reader.observations, "bad_reads": len(reader.bad)}


def run(tables: int = 27, per_table: int = 40, size: int = 512 * MIB) -> tuple[str, dict]:
    shapes = [(tables, per_table, size), (tables, per_table // 4, size), (tables, per_table, size // 8)]
    results = {}
    for shape in shapes:
        for name, scenario in (("before", before), ("after", after)):
            results[name, shape] = figures(*scenario(*shape))
    rows = []
    for shape in shapes:
        t, n, s = shape
        b, a = results["before", shape], results["after", shape]
        rows.append([f"{t} x {n} x {s // MIB} MB", f"{t * n * s / 1000**3:,.0f} GB",
                     f"{b['requests']:,}", f"{b['seconds']:,.0f}", f"{b['bad_reads']:,} of {b['observations']:,}",
                     f"{a['requests']:,}", f"{a['seconds']:,.1f}", f"{a['bad_reads']:,} of {a['observations']:,}",
                     f"{b['seconds'] / a['seconds']:,.0f}x"])
    body = ("Current-snapshot layout (split_cluster, what the ext and bucketed tables are built from), one "
            "snapshot replacing the previous:\n\n")
    body += table(["tables x files x size", "data", "before: requests", "before: s (modelled)",
                   "before: bad reads", "after: requests", "after: s (modelled)", "after: bad reads", "speed-up"], rows)
    main = results["after", shapes[0]]
    body += ("\n\nRequests by kind, production shape: before "
             + ", ".join(f"{k} {v:,}" for k, v in results["before", shapes[0]]["by_kind"].items())
             + "; after " + ", ".join(f"{k} {v:,}" for k, v in main["by_kind"].items())
             + f". Data copied: before {results['before', shapes[0]]['copied_gb']:,} GB, after "
             f"{main['copied_gb']} GB.")
    shape = shapes[0]
    part_rows = []
    for case, republish in (("new snapshot", False), ("re-published snapshot", True)):
        b, a = figures(*part(*shape, republish, old=True)), figures(*part(*shape, republish, old=False))
        results[f"part {case}"] = {"before": b, "after": a}
        part_rows.append([case, f"{b['requests']:,}", f"{b['seconds']:,.0f}", f"{b['copied_gb']:,}",
                          f"{b['bad_reads']:,} of {b['observations']:,}", f"{a['requests']:,}", f"{a['seconds']:,.1f}",
                          f"{a['copied_gb']:,}", f"{a['bad_reads']:,} of {a['observations']:,}"])
    body += ("\n\nSnapshot-folder layout (split_part, the part tables), 27 x 40 x 512 MB. A new snapshot's folders "
             "are now written where they stay (no reader sees them before `part_tables` registers the partition); "
             "a re-published snapshot is written into a hidden version inside its folder, and `part_tables` points "
             "the partition at it:\n\n")
    body += table(["publishing", "before: requests", "before: s", "before: GB copied", "before: bad reads",
                   "after: requests", "after: s", "after: GB copied", "after: bad reads"], part_rows)
    body += (f"\n\nModel: {LATENCY_S * 1000:.0f} ms per request, {BYTES_PER_S / 1000**2:.0f} MB/s per connection "
             "(S3's performance guidelines); a reader checks every table after every request that changes "
             "something (a bad read: a table empty, partial or mixing two snapshots). Before: the replaced "
             "staging-and-move publication (sequential copies; in the current-snapshot layout two per object, the old "
             "files moved aside and the new ones in); "
             "after: version folders staged by the split and switched by `ext_tables` or `part_tables`. The after "
             "figures do not change with the files or their sizes: O(tables) requests, no data copied.")
    flat = {f"{k[0]}_{k[1][0]}x{k[1][1]}x{k[1][2] // MIB}": v for k, v in results.items() if isinstance(k, tuple)}
    return body, flat | {k: v for k, v in results.items() if isinstance(k, str)}


if __name__ == "__main__":
    text, _ = run()
    print(text)
