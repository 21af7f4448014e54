import pytest

from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.snapshots import list_snapshots, parse_date, resolve_snapshot


@pytest.fixture
def source(tmp_path):
    for name in ("snapshot_dt=2024-01-15", "snapshot_dt=2024-03-01", "snapshot_dt=2023-12-31",
                 "_temporary", "snapshot_dt=bad", "snapshot_dt=2024-13-45", "snapshot_dt=2024-1-5",
                 "other=2025-01-01"):
        (tmp_path / name).mkdir()
    (tmp_path / "snapshot_dt=2025-01-01").write_text("a file, not a folder")
    (tmp_path / "_SUCCESS").write_text("")
    return str(tmp_path)


def test_only_valid_snapshot_folders_are_listed_sorted(source):
    assert list_snapshots(source) == ["2023-12-31", "2024-01-15", "2024-03-01"]


def test_latest_is_picked_for_none_and_latest(source):
    assert resolve_snapshot(source, "_NONE_") == ("2024-03-01", "2024-03-01")
    assert resolve_snapshot(source, "latest") == ("2024-03-01", "2024-03-01")


def test_explicit_snapshot(source):
    assert resolve_snapshot(source, "2024-01-15") == ("2024-01-15", "2024-01-15")
    # a source that landed earlier serves a later partition with its newest snapshot on or before it
    assert resolve_snapshot(source, "2024-02-20", "at_or_before") == ("2024-02-20", "2024-01-15")


def test_missing_snapshot_lists_available(source):
    with pytest.raises(FlywheelInputError) as err:
        resolve_snapshot(source, "2024-02-01")
    assert "snapshot_dt=2024-02-01 not found under" in str(err.value)
    assert "available snapshots: 2023-12-31, 2024-01-15, 2024-03-01" in str(err.value)


def test_no_snapshots_at_all(tmp_path):
    with pytest.raises(FlywheelInputError, match="no snapshot_dt=YYYY-MM-DD folders under"):
        resolve_snapshot(str(tmp_path / "absent"), "_NONE_")


@pytest.mark.parametrize("bad", ["2024-02-30", "20240115", "2024/01/15", "../2024-01-15", "2024-01-15,2024-01-16", ""])
def test_malformed_dates_are_rejected(bad):
    with pytest.raises(FlywheelInputError, match="must be a date YYYY-MM-DD"):
        parse_date(bad) if bad else parse_date(None)


def test_partition_dates_follow_the_infobase_and_earlier_sources():
    from flywheel_assets.core.snapshots import partition_dates, unsatisfied

    listed = {"ib": ("exact", ["2024-01-15", "2024-02-15", "2024-03-15"]),
              "ad": ("at_or_before", ["2024-02-14", "2024-03-16"])}
    # 2024-01-15: the addressable source has nothing that early; 2024-03-15 takes 2024-02-14
    assert partition_dates(listed) == ["2024-02-15", "2024-03-15"]
    assert unsatisfied("2024-01-15", listed) == ["ad has no snapshot on or before 2024-01-15 (it has: 2024-02-14, 2024-03-16)"]
    assert unsatisfied("2024-03-16", listed) == ["ib has no snapshot_dt=2024-03-16 (it has: 2024-01-15, 2024-02-15, 2024-03-15)"]
