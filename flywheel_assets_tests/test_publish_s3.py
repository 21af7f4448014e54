"""Publishing at production scale, on the S3 stand-in of benchmark 7 (small shapes, same code)."""

from __future__ import annotations

from benchmarks.s3_publish import MIB, after, before, figures, part


def test_publishing_the_current_snapshot_costs_requests_per_table_not_per_file_or_byte():
    small, many_files, big_files = (figures(*after(5, 4, MIB)), figures(*after(5, 40, MIB)),
                                    figures(*after(5, 4, 6 * 1024 * MIB)))
    assert small["requests"] == many_files["requests"] == big_files["requests"]
    assert small["seconds"] == big_files["seconds"] and small["copied_gb"] == 0
    assert figures(*after(10, 4, MIB))["requests"] - small["requests"] == 5 * (small["requests"] - figures(
        *after(4, 4, MIB))["requests"])  # linear in the tables
    # a reader checking every table after every request never sees one empty, partial or mixed
    assert many_files["observations"] > 0 and many_files["bad_reads"] == 0


def test_the_replaced_publication_copied_every_object_twice_and_readers_saw_empty_tables():
    old = figures(*before(5, 4, MIB))
    assert old["by_kind"]["COPY"] == 2 * 5 * 4 and old["bad_reads"] > 0


def test_a_part_snapshot_new_or_re_published_costs_requests_per_table_and_copies_nothing():
    new = figures(*part(5, 40, MIB, republish=False, old=False))
    assert new["copied_gb"] == 0 and new["requests"] == figures(*part(5, 4, 6 * 1024 * MIB, False, old=False))["requests"]
    assert figures(*part(5, 40, MIB, republish=False, old=True))["by_kind"]["COPY"] == 5 * 40  # it was copied
    again = figures(*part(5, 40, MIB, republish=True, old=False))
    assert again["copied_gb"] == 0 and again["requests"] == figures(*part(5, 4, MIB, True, old=False))["requests"]
    assert again["observations"] > 0 and again["bad_reads"] == 0  # readers: the old files or the new, whole
    replaced = figures(*part(5, 4, MIB, republish=True, old=True))
    assert replaced["by_kind"]["COPY"] == 2 * 5 * 4 and replaced["bad_reads"] > 0
