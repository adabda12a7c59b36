"""Reading real-world CSV files: the separator and decimal mark found from the file, overrides,
and parses that cannot be the file's table refused with the options that fix them."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from diffimpute.data.schema import to_panel
from diffimpute.io.files import read_table

SKAB = """datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure
2020-02-08 13:30:47;0.202394;0.275154;2.16975;0.382638
2020-02-08 13:30:48;0.203153;0.277857;2.07999;-0.273216
2020-02-08 13:30:50;0.202054;0.27496;2.52577;0.054711
"""


def _write(tmp_path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_skab_style_semicolon_file_reads_as_its_columns_and_times(tmp_path) -> None:
    frame = read_table(_write(tmp_path, SKAB))
    assert list(frame.columns) == ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure"]
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index[2] == pd.Timestamp("2020-02-08 13:30:50")
    assert frame.to_numpy()[1].tolist() == [0.203153, 0.277857, 2.07999, -0.273216]


@pytest.mark.parametrize("quote", ["", '"'])
def test_a_european_file_with_decimal_commas_reads_as_numbers(tmp_path, quote: str) -> None:
    q = quote
    text = (f"Zeit;Temperatur;Druck\n11.01.2024 13:00;{q}10,4{q};{q}1013,2{q}\n12.01.2024 13:00;{q}-3,5{q};\n"
            f"13.01.2024 13:00;{q}0,25{q};998\n")
    frame = read_table(_write(tmp_path, text))
    times = pd.date_range("2024-01-11 13:00", periods=3, freq="D", name="Zeit")  # 11.01.2024: 11 January
    expected = pd.DataFrame({"Temperatur": [10.4, -3.5, 0.25], "Druck": [1013.2, np.nan, 998.0]}, index=times)
    pd.testing.assert_frame_equal(frame, expected, check_index_type=False, check_freq=False)
    assert frame.index.equals(times)


@pytest.mark.parametrize("quote", ['"', "'"])
def test_quotes_of_either_kind_are_found_and_a_dated_series_stays_numbers(tmp_path, quote: str) -> None:
    q = quote
    text = f"{q}Datum{q};{q}Wert{q}\n{q}13.01.2020{q};{q}10,4{q}\n{q}14.01.2020{q};{q}-1,25{q}\n"
    frame = read_table(_write(tmp_path, text))
    assert frame["Wert"].tolist() == [10.4, -1.25]
    assert frame.index.equals(pd.DatetimeIndex(["2020-01-13", "2020-01-14"], name="Datum"))


@pytest.mark.parametrize("rows", [1, 2, 150])
def test_a_semicolon_file_with_a_comma_in_its_header_splits_at_semicolons(tmp_path, rows: int) -> None:
    # ',' also splits header and rows in two, alike: '01.01.2020;10' | '4'
    days = pd.date_range("2020-01-01", periods=rows).strftime("%d.%m.%Y")
    text = "Zeit;Wert (°C, Mittel)\n" + "".join(f"{day};10,{i % 10}\n" for i, day in enumerate(days))
    frame = read_table(_write(tmp_path, text))
    assert list(frame.columns) == ["Wert (°C, Mittel)"] and frame.iloc[:, 0].tolist()[:2] == [10.0, 10.1][:rows]
    assert isinstance(frame.index, pd.DatetimeIndex)


def test_a_column_of_numbers_with_a_few_placeholders_reads_as_numbers_with_a_warning(tmp_path) -> None:
    text = "t;v;w\n1;10,4;x\n2;-;y\n3;11,1;2\n4;#DIV/0!;z\n5;12;\n6;13,5;w\n"
    with pytest.warns(UserWarning, match=r"column 'v' .*2 of its 6 values are not \('-', '#DIV/0!'\): read as missing"):
        frame = read_table(_write(tmp_path, text))
    assert frame["v"].tolist() == pytest.approx([10.4, np.nan, 11.1, np.nan, 12, 13.5], nan_ok=True)
    assert frame["w"].tolist() == ["x", "y", "2", "z", np.nan, "w"]  # mostly text: stays text


def test_a_placeholder_far_down_a_long_file_does_not_leave_numbers_as_text(tmp_path) -> None:
    rows = 300_000  # pandas parses in chunks: floats in the first, text in the one with '-'
    text = "t;v\n" + "".join(f"{i};{i % 7},5\n" for i in range(rows)) + f"{rows};-\n"
    with pytest.warns(UserWarning, match=r"1 of its 300001 values are not \('-'\)"):
        frame = read_table(_write(tmp_path, text))
    assert frame["v"].dtype == np.float64 and frame["v"].iloc[-2] == (rows - 1) % 7 + 0.5


def test_a_tab_separated_file_reads_as_its_columns(tmp_path) -> None:
    frame = read_table(_write(tmp_path, "time\ta b\tc\n2024-01-01\t1.5\t2\n2024-01-02\t2.5\t3\n", "data.tsv"))
    assert list(frame.columns) == ["a b", "c"] and frame["a b"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("a;b\n1,250;1\n2,500;2\n", {}, {"a": [1.25, 2.5], "b": [1, 2]}),  # sniffed: a decimal comma
        ("a;b\n1,250;1\n2,500;2\n", {"decimal": "."}, {"a": [1250, 2500], "b": [1, 2]}),  # thousands
        ("x,y;z\n1,5;2\n3,5;4\n", {}, {"x,y": [1.5, 3.5], "z": [2, 4]}),  # ',' leaves ';' in fields
        ("x,y;z\n1,5;2\n3,5;4\n", {"sep": ","}, {"x": [1, 3], "y;z": ["5;2", "5;4"]}),
        ("name;v\tw\nab;1\t2\n", {}, {"name": ["ab"], "v\tw": ["1\t2"]}),  # both split it: ';' before tab
        ("name;v\tw\nab;1\t2\n", {"sep": "tab"}, {"name;v": ["ab;1"], "w": [2]}),  # tab as typed on the CLI
    ],
)
def test_sep_and_decimal_given_override_what_the_file_suggests(tmp_path, text: str, options: dict,
                                                               expected: dict) -> None:
    frame = read_table(_write(tmp_path, text), **options)
    pd.testing.assert_frame_equal(frame, pd.DataFrame(expected), check_dtype=False)


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        (SKAB, {"sep": ","}, "single column 'datetime;Acc"),
        ("a,b,c\n1,2,3\n", {"sep": ";"}, "single column 'a,b,c'"),
        ("t;a;b\n1;10,4;2,5\n", {"sep": ","}, "more fields than its header"),
        ("t;a;b\n1;10,4;2\n2;10,4;2,5,1\n", {"sep": ","}, "Expected 2 fields in line 3, saw 4\\)"),
    ],
)
def test_a_parse_into_the_wrong_columns_is_refused_naming_the_options(tmp_path, text: str, options: dict,
                                                                      message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        read_table(_write(tmp_path, text), **options)
    assert "--sep" in str(refused.value) and "--decimal" in str(refused.value)


def test_numbers_left_as_text_are_converted_when_the_decimal_mark_is_known_else_refused(tmp_path) -> None:
    quoted = _write(tmp_path, 'a,b\n"10,4",1\n"3,2",2\n')  # a decimal comma under a comma separator
    with pytest.raises(ValueError, match=r"column 'a' .*'10,4'.*--decimal ,"):
        read_table(quoted)
    assert read_table(quoted, decimal=",")["a"].tolist() == [10.4, 3.2]
    grouped = read_table(_write(tmp_path, "a;b\n1.234,5;0,5\n3,5;1,5\n"))  # pandas leaves '1.234,5' as text
    assert grouped["a"].tolist() == [1234.5, 3.5]
    unsure = _write(tmp_path, 'a,b\n"1,234",1\n"3,200",2\n')  # thousands, or decimals? nothing else tells
    with pytest.raises(ValueError, match=r"column 'a' .*'1,234'.*--decimal \..*--decimal ,"):
        read_table(unsure)
    assert read_table(unsure, decimal=".")["a"].tolist() == [1234, 3200]
    mixed = _write(tmp_path, "a;b\n10,4;1,5\n10.5;2,5\n")
    with pytest.raises(ValueError, match=r"column 'a' .*'10\.5'.*--decimal \."):
        read_table(mixed)
    assert read_table(_write(tmp_path, "a;b\nx1;1,5\n2;2,5\n"))["a"].tolist() == ["x1", "2"]  # text stays text


@pytest.mark.parametrize(
    ("stamps", "dayfirst", "expected"),
    [
        (["12/01/2024 13:00", "13/01/2024 13:00"], None, ["2024-01-12 13:00", "2024-01-13 13:00"]),  # 13 shows it
        (["01/02/2024 13:00", "03/02/2024 13:00"], True, ["2024-02-01 13:00", "2024-02-03 13:00"]),
        (["01/02/2024 13:00", "01/03/2024 13:00"], None, ["2024-01-02 13:00", "2024-01-03 13:00"]),  # pandas' way
        (["2024-01-02", "2024-01-03"], True, ["2024-01-02", "2024-01-03"]),  # ISO dates are never swapped
    ],
)
def test_day_first_dates_read_in_their_order(tmp_path, stamps: list[str], dayfirst: bool | None,
                                             expected: list[str]) -> None:
    path = _write(tmp_path, "time,a\n" + "".join(f"{stamp},{i}\n" for i, stamp in enumerate(stamps)))
    assert read_table(path, dayfirst=dayfirst).index.equals(pd.DatetimeIndex(expected, name="time"))


def test_dates_that_read_either_way_are_day_first_when_only_that_is_in_time_order(tmp_path) -> None:
    path = _write(tmp_path, "date,v\n12/01/2020,1\n01/02/2020,2\n02/02/2020,3\n")  # month first: Dec, Jan, Feb
    with pytest.warns(UserWarning, match=r"day first \('12/01/2020' is 2020-01-12\).*--monthfirst"):
        frame = read_table(path)
    assert frame.index.equals(pd.DatetimeIndex(["2020-01-12", "2020-02-01", "2020-02-02"], name="date"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_table(path, dayfirst=False).index[0] == pd.Timestamp("2020-12-01")  # as told, quietly


def test_dates_in_order_neither_way_are_refused_naming_dayfirst(tmp_path) -> None:
    frame = read_table(_write(tmp_path, "date,v\n12/01/2020,1\n01/02/2020,2\n01/01/2020,3\n"))
    with pytest.raises(ValueError, match=r"not sorted: .*--dayfirst or --monthfirst"):
        to_panel(frame)


def test_a_table_column_of_dates_reads_as_dates_and_other_text_stays_text(tmp_path) -> None:
    text = ("name,visit,code,version,ward\n"
            "ann,31/01/2024,06-12-34,3.11.4,a\n"
            "bob,,07-11-22,3.12.0,b\n"
            "cy,02/02/2024,01-01-01,1.2.3,a\n")
    frame = read_table(_write(tmp_path, text))
    assert pd.api.types.is_datetime64_any_dtype(frame["visit"].dtype)
    assert frame["visit"].tolist()[::2] == [pd.Timestamp("2024-01-31"), pd.Timestamp("2024-02-02")]
    assert pd.isna(frame.loc[1, "visit"])
    for codes in ("code", "version", "ward"):  # no four-digit year: codes and versions, not dates
        assert not pd.api.types.is_datetime64_any_dtype(frame[codes].dtype), codes
    assert frame["version"].tolist() == ["3.11.4", "3.12.0", "1.2.3"]
