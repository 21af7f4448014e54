"""Publishing a split job's output without moving data: files are written once, where they stay.

Current-snapshot layout (``<target>/<TABLE>/``, one snapshot at a time, what the ext tables read).
Every run writes each table into a fresh version folder ``<target>/<TABLE>/v<snapshot>_<id>/``.
When all are written and the blocking checks pass, the run records them in
``metadata/staged.json`` (its commit; one small PUT). Readers see none of it yet: the catalog step
(``ext_tables``) points each ext table at its new version, for every split_cluster root at once,
then records the switch in ``metadata/current.json`` (and ``snapshot_dt.txt``,
``source_snapshot_dt.txt``, ``skipped_tables.json``) and deletes the versions older than the one
it replaced (kept for queries still reading it). A failed run deletes its version folders; a
killed one leaves folders no record names, which the next split of the target deletes. On S3
publishing costs a few requests per table, whatever the bytes.

Snapshot-folder layout (``<table>/snapshot_dt=<d>/``, every snapshot kept, the part tables). A
snapshot folder that does not exist yet is written in place: no catalog reader sees it before the
catalog step registers its partition. Re-publishing a snapshot that exists writes a hidden version
folder inside it, ``snapshot_dt=<d>/_v<id>/``; the run's commit points the folder's record at it,
and the catalog step points the partition there (one catalog update) and deletes the versions older
than the one it replaced. The run lists the folders it creates in ``_staging/<run>/_IN_PLACE.json``
before writing, so a failed or killed run's folders are removed (by itself, or by the next run of
that snapshot); its commit (``_COMMITTED.json``, the pointers to set) is finished by the next run
if it was interrupted.

What each publication holds travels with the data: every written folder carries
``_PUBLICATION.json`` (the partition and the source snapshot read, which is older for a source that
landed earlier); a table skipped for missing columns is recorded in the staged/current record
(current-snapshot layout) or as ``<table>/_SKIPPED_snapshot_dt=<d>.json`` (snapshot-folder layout).
Spark, Hive and Athena skip names starting with ``_``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field

from flywheel_assets.core import storage

STAGING = "_staging"
MANIFEST = "_COMMITTED.json"
IN_PLACE = "_IN_PLACE.json"  # snapshot-folder layout: the folders a run creates
STAGED_FILE = "metadata/staged.json"  # current-snapshot layout: written by the split, not yet switched to
CURRENT_FILE = "metadata/current.json"  # current-snapshot layout: what the ext tables read
METADATA_FILE = "metadata/snapshot_dt.txt"  # current-snapshot layout: the snapshot (partition) it holds
SOURCE_FILE = "metadata/source_snapshot_dt.txt"  # current-snapshot layout: the source snapshot that was read
SKIPPED_FILE = "metadata/skipped_tables.json"  # current-snapshot layout: tables left out of the snapshot
RECORD = "_PUBLICATION.json"  # in every published folder
VERSION_PREFIX = "v"


@dataclass
class Publication:
    """What one run published: the partition, the source snapshot it was read from (at or before
    the partition for the addressable sources), and the tables it skipped (missing columns), by
    the folder (relative to the target) that would hold them."""

    snapshot_dt: str
    source_snapshot_dt: str
    skipped_tables: dict[str, str] = field(default_factory=dict)  # table -> why
    skipped_folders: dict[str, str] = field(default_factory=dict)  # table root (snapshot-folder layout) -> why
    tables: dict[str, str] = field(default_factory=dict)  # current-snapshot layout: table -> folder under target
    folder: str = ""  # snapshot-folder layout: the version holding a re-published snapshot's files
    previous: dict[str, str] = field(default_factory=dict)  # current.json: the folders it replaced (still read)

    def folder_json(self, folder: str = "") -> str:
        """What RECORD holds in each published folder (``folder``: its files are in that version)."""
        data = {"snapshot_dt": self.snapshot_dt, "source_snapshot_dt": self.source_snapshot_dt}
        return json.dumps({**data, "folder": folder} if folder else data)


def folder_publication(folder: str) -> Publication | None:
    """The record of the publication a folder holds (None: written before records existed)."""
    text = storage.read_text(storage.join(folder, RECORD))
    if not text:
        return None
    data = json.loads(text)
    return Publication(data["snapshot_dt"], data["source_snapshot_dt"], folder=data.get("folder", ""))


# --- current-snapshot layout: version folders, staged by the split, switched by the catalog step ---

def new_version(snapshot: str) -> str:
    """The name of one run's version folders (one per table)."""
    return f"{VERSION_PREFIX}{snapshot}_{uuid.uuid4().hex[:12]}"


def _record(target: str, name: str) -> Publication | None:
    text = storage.read_text(storage.join(target, name))
    if not text:
        return None
    data = json.loads(text)
    return Publication(data["snapshot_dt"], data["source_snapshot_dt"], data.get("skipped_tables", {}),
                       tables=data["tables"], previous=data.get("previous", {}))


def current(target: str) -> Publication | None:
    """What readers of a current-snapshot target see (None: nothing switched to yet). A target
    published before version folders holds its tables in ``<TABLE>/`` itself."""
    record = _record(target, CURRENT_FILE)
    if record is None and (snapshot := published_snapshot(target)):
        source = (storage.read_text(storage.join(target, SOURCE_FILE)) or snapshot).strip()
        record = Publication(snapshot, source, skipped_tables(target, snapshot), tables={
            e.name: e.name for e in storage.list_dir(target)
            if e.is_dir and e.name != "metadata" and not storage.is_hidden(e.name)})
    return record


def staged(target: str) -> Publication | None:
    """What the last split wrote and the catalog step has not switched to yet."""
    return _record(target, STAGED_FILE)


def latest(target: str) -> Publication | None:
    """The newest publication of a target: staged if there is one, else current."""
    return staged(target) or current(target)


def for_snapshot(target: str, snapshot: str) -> Publication | None:
    """The publication of ``snapshot`` in a target, staged or current (staged wins: it is newer)."""
    return next((p for p in (staged(target), current(target)) if p and p.snapshot_dt == snapshot), None)


def stage(target: str, record: Publication, whole_target: bool) -> None:
    """Record a run's tables (``record.tables``) as the target's next publication. A run of some
    tables only (``whole_target`` False) replaces those in the latest publication of its snapshot."""
    if not whole_target:
        base = latest(target)
        record.tables = {**base.tables, **record.tables}
        record.skipped_tables = {t: w for t, w in {**base.skipped_tables, **record.skipped_tables}.items()
                                 if t not in record.tables}
    storage.write_text(storage.join(target, STAGED_FILE), json.dumps(asdict(record)))


def switch(target: str, record: Publication) -> None:
    """Make ``record`` what the target holds: called by the catalog step once the catalog points
    at its folders. The versions it replaces stay for queries still reading them; those they
    replaced are deleted."""
    before = _record(target, CURRENT_FILE)
    if before and before.tables == record.tables:  # switched to already (a re-run): nothing is replaced
        replaced = before.previous
    else:
        replaced = before.tables if before else (current(target) or record).tables
    data = {**{k: v for k, v in asdict(record).items() if k != "skipped_folders"}, "previous": replaced}
    storage.write_text(storage.join(target, CURRENT_FILE), json.dumps(data))
    storage.write_text(storage.join(target, SKIPPED_FILE), json.dumps(
        {"snapshot_dt": record.snapshot_dt, "tables": record.skipped_tables}))
    storage.write_text(storage.join(target, SOURCE_FILE), record.source_snapshot_dt + "\n")
    storage.write_text(storage.join(target, METADATA_FILE), record.snapshot_dt + "\n")
    pending = staged(target)
    if pending and pending.tables == record.tables:
        storage.delete_file(storage.join(target, STAGED_FILE))
        pending = None
    keep = {*record.tables.values(), *replaced.values(), *(pending.tables.values() if pending else ())}
    for folder in set(before.previous.values() if before else ()) - keep:  # no listing: the record names them
        _delete_version(target, folder)


def _delete_version(target: str, folder: str) -> None:
    if "/" in folder:  # <TABLE>/v<snapshot>_<id>
        storage.delete_tree(storage.join(target, folder))
        return
    # a table folder written before version folders: its own files only, its versions stay
    for e in storage.list_dir(storage.join(target, folder)):
        if not e.is_dir:
            storage.delete_file(storage.join(target, folder, e.name))


def remove_orphans(target: str, say=lambda msg: None) -> None:
    """Delete the version folders no record names (left by failed or killed runs), and the files
    of a table folder written before version folders once nothing reads them. Only a split of
    the target calls it: no other one is writing then (a pool of 1)."""
    held = _record(target, CURRENT_FILE)
    if held is None and published_snapshot(target):  # published before version folders: all of it is read
        return
    keep = {folder for record in (held, staged(target)) if record
            for folder in (*record.tables.values(), *record.previous.values())}
    for table in storage.list_dir(target):
        if not table.is_dir or table.name == "metadata" or storage.is_hidden(table.name):
            continue
        folder = storage.join(target, table.name)
        for e in storage.list_dir(folder):
            if e.is_dir and e.name.startswith(VERSION_PREFIX) and f"{table.name}/{e.name}" not in keep:
                storage.delete_tree(storage.join(folder, e.name))
                say(f"{target}: removed {table.name}/{e.name}, written by a run that did not publish it")
            elif not e.is_dir and table.name not in keep:  # written before version folders, replaced since
                storage.delete_file(storage.join(folder, e.name))


def published_snapshot(target: str) -> str | None:
    """The snapshot a current-snapshot-layout target holds (switched to), or None."""
    text = storage.read_text(storage.join(target, METADATA_FILE))
    return text.strip() if text else None


def skipped_tables(target: str, snapshot: str) -> dict[str, str]:
    """Current-snapshot layout: the tables the switched publication of ``snapshot`` left out, and why."""
    text = storage.read_text(storage.join(target, SKIPPED_FILE))
    data = json.loads(text) if text else {}
    return data.get("tables", {}) if data.get("snapshot_dt") == snapshot else {}


# --- snapshot-folder layout: new snapshot folders in place, re-publications in hidden versions ---

PART_VERSION_PREFIX = "_v"


def new_part_version() -> str:
    return f"{PART_VERSION_PREFIX}{uuid.uuid4().hex[:12]}"


def data_folder(snapshot_folder: str) -> str:
    """Where a snapshot folder's newest files are: the folder itself, or the version a
    re-publication wrote in it."""
    record = folder_publication(snapshot_folder)
    return storage.join(snapshot_folder, record.folder) if record and record.folder else snapshot_folder


def prune_snapshot_folder(snapshot_folder: str, keep: set[str]) -> None:
    """Delete the versions in a snapshot folder (and its own data files) that are not in ``keep``
    (folders, as ``storage.normalize`` gives them): what a partition no longer points at."""
    keep = {storage.normalize(k) for k in keep}
    entries = storage.list_dir(snapshot_folder)
    for e in entries:
        if e.is_dir and e.name.startswith(PART_VERSION_PREFIX):
            if storage.normalize(storage.join(snapshot_folder, e.name)) not in keep:
                storage.delete_tree(storage.join(snapshot_folder, e.name))
        elif not e.is_dir and not storage.is_hidden(e.name) and storage.normalize(snapshot_folder) not in keep:
            storage.delete_file(storage.join(snapshot_folder, e.name))


def skipped_marker(table_root: str, snapshot: str) -> str:
    return storage.join(table_root, f"_SKIPPED_snapshot_dt={snapshot}.json")


def part_table_skipped(table_root: str, snapshot: str) -> str | None:
    """Snapshot-folder layout: why the split left this table out of ``snapshot`` (None: it did not)."""
    text = storage.read_text(skipped_marker(table_root, snapshot))
    return json.loads(text)["why"] if text else None


def new_run(target: str, snapshot: str) -> str:
    """A fresh staging folder for one run (its claims and commit; no data)."""
    return storage.join(target, STAGING, f"{snapshot}_{uuid.uuid4().hex[:12]}")


def claim(run: str, folders: list[str]) -> None:
    """Record, before writing any byte, the folders (relative to the target) a run creates."""
    storage.write_text(storage.join(run, IN_PLACE), json.dumps(folders))


def commit(target: str, run: str, versions: dict[str, str], record: Publication) -> None:
    """Publish the run: each re-published snapshot folder (relative to target) gets its version."""
    manifest = {**asdict(record), "versions": versions}
    storage.write_text(storage.join(run, MANIFEST), json.dumps(manifest))
    roll_forward(target, run)


def roll_forward(target: str, run: str) -> str:
    """Point the re-published snapshot folders of a committed run at their versions and record
    its skipped tables; returns its snapshot."""
    manifest = json.loads(storage.read_text(storage.join(run, MANIFEST)))
    record = Publication(manifest["snapshot_dt"], manifest["source_snapshot_dt"])
    for folder, version in manifest.get("versions", {}).items():
        storage.write_text(storage.join(target, folder, RECORD), record.folder_json(version))
    for root, why in manifest.get("skipped_folders", {}).items():
        storage.write_text(skipped_marker(storage.join(target, root) if root else target, manifest["snapshot_dt"]),
                           json.dumps({"why": why}))
    storage.delete_file(storage.join(run, IN_PLACE))  # they are published now
    discard(target, run)
    return manifest["snapshot_dt"]


def discard(target: str, run: str) -> None:
    """Remove a run's staging folder and the folders it created (not after its commit)."""
    text = storage.read_text(storage.join(run, IN_PLACE))
    for folder in json.loads(text) if text else []:
        storage.delete_tree(storage.join(target, folder))
    storage.delete_tree(run)
    storage.remove_if_empty(run.rsplit("/", 1)[0])


def recover(target: str, snapshot: str, say=lambda msg: None) -> None:
    """Finish or discard what interrupted runs of ``snapshot`` left (runs of other snapshots may
    be running right now)."""
    root = storage.join(target, STAGING)
    for entry in sorted(storage.list_dir(root), key=lambda e: e.name):
        run = storage.join(root, entry.name)
        if not entry.is_dir or not entry.name.startswith(f"{snapshot}_"):
            continue
        if storage.read_text(storage.join(run, MANIFEST)) is not None:
            say(f"{target}: finishing the publication of snapshot_dt={roll_forward(target, run)} "
                f"that an interrupted run had committed")
        else:
            discard(target, run)
            say(f"{target}: removed the partial output of an interrupted run ({entry.name})")
