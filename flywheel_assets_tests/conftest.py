"""Shared fixtures: one SparkSession per test process, small lakes written per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flywheel_assets.demo_data import DemoSpec, write_demo_lake

# The job library reads these; set before any session is built.
os.environ.setdefault("FLYWHEEL_SPARK_RUNTIME", "local")
os.environ.setdefault("FLYWHEEL_SPARK_MASTER", "local[2]")
os.environ.setdefault("FLYWHEEL_SPARK_DRIVER_MEMORY", "2g")

SMALL = DemoSpec(rows=300, attributes=24, tables=4, unmapped=3, snapshots=2, files_per_snapshot=2, seed=11)


@pytest.fixture(scope="session")
def spark():
    from flywheel_assets.spark_jobs.runtime import spark_session

    session = spark_session("flywheel-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def _small_lake_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lake-template")
    write_demo_lake(root, SMALL)
    return root


@pytest.fixture
def lake(_small_lake_template, tmp_path) -> Path:
    """A fresh copy of the small sample lake (2 snapshots, 4 tables, 3 unmapped columns)."""
    root = tmp_path / "lake"
    shutil.copytree(_small_lake_template, root)
    return root
