import pytest

from flywheel_assets.core.errors import FlywheelInputError
from flywheel_assets.core.mapping import load_mapping, missing_columns, parse_mapping


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
        ("table,column\nT,a\n", "m.csv, line 1: no recognisable header; expected one with OMC_FLYWHEEL_TABLE,"
                                "OMC_FLYWHEEL_COLUMN or table_name,column_name"),
        ("table_name,col\nT,a\n", "no recognisable header"),
        # a derived copy without its header: refused, not read as data
        ("IBE_01,customer_user_id,Customer User ID,CUSTOMER_USER_ID,CUSTOMER_BASE_ID\n", "no recognisable header"),
        ("table_name,column_name\n", "m.csv: mapping file has a header but no rows"),
        ("table_name,column_name\nT,a\nT,b\nT,A\n", "m.csv, line 4: column 'a' listed twice for table T (first on line 2)"),
        ("table_name,column_name\n../etc,a\n", "m.csv, line 2: table name '../etc' is not allowed"),
        ("table_name,column_name\nibe-01,a\n", "table name 'ibe-01' is not allowed"),
        ("table_name,column_name\nT;DROP TABLE x,a\n", "is not allowed"),
        ("table_name,column_name\nT,\n", "m.csv, line 2: empty column name for table T"),
        ("table_name,column_name\nT,Spend $\n", "m.csv, line 2: column 'spend $' (table T) is not allowed"),
        ("table_name,column_name\nT,snapshot_dt\n", "m.csv, line 2: column 'snapshot_dt' is reserved"),
        ("table_name,column_name\nT\n", "m.csv, line 2: 1 fields, the header has 2"),
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


def test_missing_columns_listed_per_table_with_lines():
    m = parse_mapping("table_name,column_name\nA,x\nB,nope\nB,gone\nA,customer_user_id\n", "m.csv")
    missing = missing_columns(m, {"customer_user_id", "x"})
    assert missing.by_table == {"B": [("nope", 3), ("gone", 4)]}
    assert missing.describe() == "B: nope (line 3), gone (line 4)"


PRODUCTION = ("\ufeffOMC_FLYWHEEL_TABLE,OMC_FLYWHEEL_COLUMN,FUNCTION_DESCRIPTION,OPUS_COLUMN,ELEMENT_NUMBER\r\n"
              "IBE_01,customer_user_id,Customer User ID,CUSTOMER_USER_ID,CUSTOMER_BASE_ID\r\n"
              "IBE_01,ibe1802,Family Ties - Adult with Senior Parent - Person,IBE1802,1802\r\n"
              'IBE_01,ibe2025,"Super Category - Automotive, Auto Parts and Accessories",IBE2025,2025\r\n'
              "IBE_01_A,customer_user_id,Customer User ID,CUSTOMER_USER_ID,CUSTOMER_BASE_ID\r\n"
              "IBE_01_A,ibe3543,Buying Activity - Number of Orders - Home D\u221a\u00a9cor,IBE3543,3543\r\n"
              "IBE_04_B,ibe7632_01,,IBE7632_01,\r\n")


def test_production_format_bom_crlf_quoted_commas_and_a_table_without_key_row(tmp_path):
    path = tmp_path / "omc_flywheel_infobase_table_split_part.csv"
    # mis-encoded bytes in a free-text field do not matter (they are never read as names)
    path.write_bytes(PRODUCTION.encode("utf-8").replace(b"Person", b"Person \xe9"))
    m = load_mapping(str(path))
    assert m.tables == {"IBE_01": ["ibe1802", "ibe2025"], "IBE_01_A": ["ibe3543"], "IBE_04_B": ["ibe7632_01"]}
    assert m.lines[("IBE_01", "ibe2025")] == 4 and m.lines[("IBE_04_B", "ibe7632_01")] == 7


def test_broken_quoting_is_an_error_naming_the_line_not_fewer_columns():
    # cut with a text tool: an opening quote never closed swallows the following lines
    broken = PRODUCTION.replace('"Super Category - Automotive, Auto Parts and Accessories"',
                                '"Super Category - Automotive, Auto Parts')
    with pytest.raises(FlywheelInputError, match=r"m.csv, line 4: a quoted field runs over lines 4-7"):
        parse_mapping(broken, "m.csv")


def test_every_problem_is_reported_at_once():
    text = "table_name,column_name\nIBE_01,a\n../x,b\nIBE_01,a\nIBE_02\nIBE_02,snapshot_dt\n"
    with pytest.raises(FlywheelInputError) as err:
        parse_mapping(text, "m.csv")
    message = str(err.value)
    assert message.startswith("m.csv: 4 problems:")
    for expected in ("line 3: table name '../x'", "line 4: column 'a' listed twice", "line 5: 1 fields",
                     "line 6: column 'snapshot_dt' is reserved"):
        assert expected in message


def test_unquoted_comma_in_a_description_is_caught():
    text = "OMC_FLYWHEEL_TABLE,OMC_FLYWHEEL_COLUMN,FUNCTION_DESCRIPTION,OPUS_COLUMN,ELEMENT_NUMBER\n" \
           "IBE_01,ibe2025,Super Category - Automotive, Auto Parts,IBE2025,2025\n"
    with pytest.raises(FlywheelInputError, match="line 2: 6 fields, the header has 5"):
        parse_mapping(text, "m.csv")


def test_load_mapping_missing_file(tmp_path):
    with pytest.raises(FlywheelInputError, match="mapping file not found: .*nope.csv"):
        load_mapping(str(tmp_path / "nope.csv"))


def test_load_mapping_strips_utf8_bom(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes("\ufefftable_name,column_name\nT,a\n".encode("utf-8"))
    assert load_mapping(str(path)).tables == {"T": ["a"]}
