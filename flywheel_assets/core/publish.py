"""Publishing a split job's output all at once: write aside, commit, then move into place.

The current-snapshot layout keeps one snapshot in place (``<target>/<table>/``), which the ext tables read;
the snapshot-folder layout replaces one ``snapshot_dt=<d>/`` folder per table. A run writes every folder
under ``<target>/_staging/<run>/`` first. Only when all are written (and the blocking checks pass)
does it write the run's manifest, the commit point, and move each folder into place.
- A run stopped before its manifest exists leaves the published tables untouched; the next run
  deletes its staging folder.
- A run stopped after it is rolled forward by the next run (every step below can be repeated).
Runs of one target never overlap in the current-snapshot layout (a Dagster pool of 1); in the snapshot-folder layout
runs of different snapshots may, so a run only recovers its own snapshot's leftovers.
Spark, Hive and the table discovery all skip ``_staging/`` (leading underscore).

What each publication holds travels with the data: every published folder carries
``_PUBLICATION.json`` (the partition and the source snapshot read, which is older for a source that
landed earlier); a table skipped for missing columns is recorded in ``metadata/skipped_tables.json``
(current-snapshot layout, whose folder for it is retired) or as ``<table>/_SKIPPED_snapshot_dt=<d>.json``
(snapshot-folder layout). Readers (Spark, Hive, Athena) ignore files whose names start with ``_``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field

from flywheel_assets.core import storage

STAGING = "_staging"
MANIFEST = "_COMMITTED.json"
RETIRED = "_retired"  # the tables' previous files, deleted once the run is published
METADATA_FILE = "metadata/snapshot_dt.txt"  # current-snapshot layout: the snapshot (partition) it holds
SOURCE_FILE = "metadata/source_snapshot_dt.txt"  # current-snapshot layout: the source snapshot that was read
SKIPPED_FILE = "metadata/skipped_tables.json"  # current-snapshot layout: tables left out of the snapshot
RECORD = "_PUBLICATION.json"  # in every published folder


@dataclass
class Publication:
    """What one run published: the partition, the source snapshot it was read from (at or before
    the partition for the addressable sources), and the tables it skipped (missing columns), by
    the folder (relative to the target) that would hold them."""

    snapshot_dt: str
    source_snapshot_dt: str
    skipped_tables: dict[str, str] = field(default_factory=dict)  # table -> why
    skipped_folders: dict[str, str] = field(default_factory=dict)  # table root (snapshot-folder layout) -> why

    def folder_json(self) -> str:
        """What RECORD holds in each published folder."""
        return json.dumps({"snapshot_dt": self.snapshot_dt, "source_snapshot_dt": self.source_snapshot_dt})


def folder_publication(folder: str) -> Publication | None:
    """The record of the publication a folder holds (None: written before records existed)."""
    text = storage.read_text(storage.join(folder, RECORD))
    if not text:
        return None
    data = json.loads(text)
    return Publication(data["snapshot_dt"], data["source_snapshot_dt"])


def skipped_marker(table_root: str, snapshot: str) -> str:
    return storage.join(table_root, f"_SKIPPED_snapshot_dt={snapshot}.json")


def skipped_tables(target: str, snapshot: str) -> dict[str, str]:
    """Current-snapshot layout: the tables the publication of ``snapshot`` left out, and why."""
    text = storage.read_text(storage.join(target, SKIPPED_FILE))
    data = json.loads(text) if text else {}
    return data.get("tables", {}) if data.get("snapshot_dt") == snapshot else {}


def part_table_skipped(table_root: str, snapshot: str) -> str | None:
    """Snapshot-folder layout: why the split left this table out of ``snapshot`` (None: it did not)."""
    text = storage.read_text(skipped_marker(table_root, snapshot))
    return json.loads(text)["why"] if text else None


def published_snapshot(target: str) -> str | None:
    """The snapshot a current-snapshot-layout target holds, or None if nothing was published there."""
    text = storage.read_text(storage.join(target, METADATA_FILE))
    return text.strip() if text else None


def new_run(target: str, snapshot: str) -> str:
    """A fresh staging folder for one run."""
    return storage.join(target, STAGING, f"{snapshot}_{uuid.uuid4().hex[:12]}")


def commit(target: str, run: str, folders: list[str], record: Publication, whole_target: bool) -> None:
    """Publish the run's ``folders`` (relative to target). ``whole_target`` (the current-snapshot layout,
    which holds one snapshot): other table folders are retired (a table dropped from the mapping
    or skipped) and the snapshot is recorded in metadata/snapshot_dt.txt."""
    manifest = {**asdict(record), "folders": folders, "whole_target": whole_target}
    storage.write_text(storage.join(run, MANIFEST), json.dumps(manifest))
    roll_forward(target, run)


def roll_forward(target: str, run: str) -> str:
    """Move a committed run's tables into place and record its snapshot; returns the snapshot."""
    manifest = json.loads(storage.read_text(storage.join(run, MANIFEST)))
    folders = manifest["folders"]
    for i, folder in enumerate(folders):
        current, staged = storage.join(target, folder), storage.join(run, folder)
        retired = storage.join(run, RETIRED, str(i))
        if storage.read_text(retired + ".done") is None:  # not yet moved aside
            if storage.folder_exists(current):
                storage.move_tree(current, retired)
            storage.write_text(retired + ".done", "")
        if storage.folder_exists(staged):
            storage.move_tree(staged, current)
    if manifest["whole_target"]:
        for entry in storage.list_dir(target):
            if entry.is_dir and entry.name not in folders and entry.name != "metadata" and entry.name[0] not in "_.":
                storage.move_tree(storage.join(target, entry.name), storage.join(run, RETIRED, f"dropped_{entry.name}"))
        storage.write_text(storage.join(target, SKIPPED_FILE), json.dumps(
            {"snapshot_dt": manifest["snapshot_dt"], "tables": manifest.get("skipped_tables", {})}))
        storage.write_text(storage.join(target, SOURCE_FILE), manifest.get("source_snapshot_dt", manifest["snapshot_dt"]) + "\n")
        storage.write_text(storage.join(target, METADATA_FILE), manifest["snapshot_dt"] + "\n")
    for root, why in manifest.get("skipped_folders", {}).items():
        storage.write_text(skipped_marker(storage.join(target, root) if root else target, manifest["snapshot_dt"]),
                           json.dumps({"why": why}))
    discard(run)
    return manifest["snapshot_dt"]


def discard(run: str) -> None:
    storage.delete_tree(run)
    storage.remove_if_empty(run.rsplit("/", 1)[0])


def recover(target: str, snapshot: str | None = None, say=lambda msg: None) -> None:
    """Finish or discard what interrupted runs left under ``<target>/_staging/``: all of them, or
    only those of ``snapshot`` (runs of other snapshots may be running right now)."""
    root = storage.join(target, STAGING)
    for entry in sorted(storage.list_dir(root), key=lambda e: e.name):
        run = storage.join(root, entry.name)
        if not entry.is_dir or (snapshot and not entry.name.startswith(f"{snapshot}_")):
            continue
        if storage.read_text(storage.join(run, MANIFEST)) is not None:
            say(f"{target}: finishing the publication of snapshot_dt={roll_forward(target, run)} "
                f"that an interrupted run had committed")
        else:
            discard(run)
            say(f"{target}: removed the partial output of an interrupted run ({entry.name})")
