"""data.table: the most frequent level of draws, dates as days, and the cells a table may not hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from diffimpute.data.table import TableEncoder, most_frequent


def test_most_frequent_counts_levels_and_breaks_ties_towards_the_smaller() -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, size=(9, 40, 3)).astype(np.float64)  # (draws, rows, columns)
    counts = np.stack([(codes == level).sum(axis=0) for level in range(5)])
    assert np.array_equal(most_frequent(codes), counts.argmax(axis=0).astype(np.float64))
    assert np.array_equal(most_frequent(np.array([[2.0], [0.0], [2.0], [0.0]])), [0.0])


def test_most_frequent_does_not_grow_with_the_size_of_the_values() -> None:
    """One counter per value up to the largest took 10^9 of them for a numeric column near 10^9."""
    codes = np.array([[1e9, -2.0, 999_000.0], [7.0, -2.0, 1_001_000.0], [1e9, 3.0, 1_001_000.0]])
    assert np.array_equal(most_frequent(codes), [1e9, -2.0, 1_001_000.0])


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_numbers_are_refused_with_the_columns_and_the_fix(value) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1, 2, 3], "c": ["p", "q", "p"],
                          "d": [0.5, 0.1, 0.2]})
    encoder = TableEncoder.of(frame)
    bad = frame.assign(d=[0.5, value, 0.2])
    bad.loc[0, "a"] = value
    message = r"infinite values in columns \['a', 'd'\].*replace\(\[np.inf, -np.inf\], np.nan\)"
    with pytest.raises(ValueError, match=message):
        encoder.codes(bad)
    assert np.isnan(encoder.codes(bad.replace([np.inf, -np.inf], np.nan))[0, 0])


def test_dates_and_durations_are_days_and_come_back_in_their_dtype_zone_and_resolution() -> None:
    frame = pd.DataFrame({
        "day": pd.to_datetime(["2020-01-01", None, "2020-03-01"]),
        "stamp": pd.to_datetime(["2020-01-01 10:00:00", "2020-01-02 11:30:15", None]).tz_localize("Europe/Berlin"),
        "wait": pd.to_timedelta([1.5, None, 3.0], unit="h"),
        "local_day": pd.Series(pd.to_datetime(["2024-03-01", None, "2024-04-01"])).dt.tz_localize("Europe/Berlin"),
        "far": pd.to_datetime(["9999-12-31", "2000-01-01", None]).as_unit("us"),  # past pandas' nanosecond range
    })
    encoder = TableEncoder.of(frame)
    assert encoder.numeric.all()
    codes = encoder.codes(frame)
    assert codes[0, 0] == 18262.0  # days since 1970-01-01
    assert codes[0, 1] == pytest.approx(18262 + 9 / 24)  # 10:00 in Berlin is 09:00 UTC
    assert codes[0, 2] == pytest.approx(1.5 / 24)
    assert codes[0, 4] == 2932896.0
    codes[1, 0], codes[2, 1], codes[1, 2], codes[1, 3], codes[2, 4] = 18300.4, 18263.3, 0.1, codes[0, 3] + 40, 11000.2
    filled = encoder.to_frame(codes, frame)
    assert filled.dtypes.equals(frame.dtypes)
    assert filled.loc[1, "day"] == pd.Timestamp("2020-02-08")  # given dates are whole days: so is the filled one
    assert filled.loc[2, "stamp"] == pd.Timestamp("2020-01-02 07:12", tz="UTC")  # 08:12 in Berlin
    assert filled.loc[1, "wait"] == pd.Timedelta(hours=2.4)
    assert filled.loc[1, "local_day"] == pd.Timestamp("2024-04-10", tz="Europe/Berlin")  # local midnight, in summer time
    assert filled.loc[2, "far"] == pd.Timestamp("2000-02-13")
    assert filled.loc[[0, 2], "day"].equals(frame.loc[[0, 2], "day"])


def test_a_date_column_keeps_what_fit_saw_when_it_comes_all_missing_or_changes_kind() -> None:
    frame = pd.DataFrame({"day": pd.to_datetime(["2020-01-01", "2020-01-03", None]), "x": [1.0, 2.0, 3.0]})
    encoder = TableEncoder.from_dict(TableEncoder.of(frame).to_dict())  # as a saved model has it
    blank = frame.assign(day=np.nan)  # an all-missing column reads from a CSV as floats
    codes = encoder.codes(blank)
    codes[:, 0] = 18262.7
    filled = encoder.to_frame(codes, blank)
    assert filled["day"].dtype == frame["day"].dtype and (filled["day"] == pd.Timestamp("2020-01-02")).all()
    with pytest.raises(ValueError, match="'day' held dates or durations at fit but now holds float64"):
        encoder.codes(frame.assign(day=[1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="'x' held numbers at fit but now holds datetime64"):
        encoder.codes(frame.assign(x=pd.to_datetime(["2020-01-01"] * 3)))
