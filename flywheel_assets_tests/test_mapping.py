import pytest

from flywheel_assets.spark_jobs.errors import FlywheelInputError
from flywheel_assets.spark_jobs.mapping import check_against_source, load_mapping, parse_mapping


def test_header_is_case_insensitive_spaced_and_extra_columns_ignored():
    text = " Notes , TABLE_NAME ,Column_Name \nx,IBE_01, Attr_A \ny,IBE_01,attr_b\nz,IBE_02,Attr_C\n"
    m = parse_mapping(text, "m.csv")
    assert m.tables == {"IBE_01": ["attr_a", "attr_b"], "IBE_02": ["attr_c"]}
    assert m.lines[("IBE_02", "attr_c")] == 4


def test_key_column_may_be_listed_and_is_not_duplicated():
    m = parse_mapping("table_name,column_name\nT,customer_user_id\nT,a\n", "m.csv")
    assert m.tables == {"T": ["a"]}


def test_blank_lines_are_skipped():
    m = parse_mapping("table_name,column_name\n\nT,a\n,\nT,b\n", "m.csv")
    assert m.tables == {"T": ["a", "b"]}


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "m.csv: mapping file is empty"),
        ("   \n", "m.csv: mapping file is empty"),
        ("table,column\nT,a\n", "m.csv, line 1: header must contain table_name and column_name; missing table_name, column_name"),
        ("table_name,col\nT,a\n", "missing column_name"),
        ("table_name,column_name\n", "m.csv: mapping file has a header but no rows"),
        ("table_name,column_name\nT,a\nT,b\nT,A\n", "m.csv, line 4: column 'a' listed twice for table T (first on line 2)"),
        ("table_name,column_name\n../etc,a\n", "m.csv, line 2: table name '../etc' is not allowed"),
        ("table_name,column_name\nibe-01,a\n", "table name 'ibe-01' is not allowed"),
        ("table_name,column_name\nT;DROP TABLE x,a\n", "is not allowed"),
        ("table_name,column_name\nT,\n", "m.csv, line 2: empty column_name for table T"),
        ("table_name,column_name\nT,snapshot_dt\n", "m.csv, line 2: column 'snapshot_dt' is reserved"),
        ("table_name,column_name\nT\n", "m.csv, line 2: expected table_name and column_name"),
        ("table_name,column_name\nIBE_01,a\nibe_01,b\n", "tables 'IBE_01' and 'ibe_01' differ only in case"),
    ],
)
def test_rejected_mapping_names_file_line_and_problem(text, message):
    with pytest.raises(FlywheelInputError) as err:
        parse_mapping(text, "m.csv")
    assert message in str(err.value)


def test_same_column_in_two_tables_is_allowed():
    m = parse_mapping("table_name,column_name\nA,x\nB,x\n", "m.csv")
    assert m.tables == {"A": ["x"], "B": ["x"]}


def test_column_missing_from_source_names_line_and_table():
    m = parse_mapping("table_name,column_name\nA,x\nB,nope\n", "m.csv")
    with pytest.raises(FlywheelInputError, match=r"m.csv, line 3: column 'nope' \(table B\) is not in the source snapshot"):
        check_against_source(m, ["customer_user_id", "x"])


def test_unmapped_source_columns_are_returned_in_source_order():
    m = parse_mapping("table_name,column_name\nA,x\n", "m.csv")
    assert check_against_source(m, ["customer_user_id", "z", "x", "y"]) == ["z", "y"]


def test_load_mapping_missing_file(tmp_path):
    with pytest.raises(FlywheelInputError, match="mapping file not found: .*nope.csv"):
        load_mapping(str(tmp_path / "nope.csv"))


def test_load_mapping_strips_utf8_bom(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes("\ufefftable_name,column_name\nT,a\n".encode("utf-8"))
    assert load_mapping(str(path)).tables == {"T": ["a"]}
