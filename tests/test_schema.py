"""A frame's index as the times of a series: labels written as dates are times, offsets that change
(daylight saving) compare in UTC, and an index that cannot order the rows is refused with the fix,
by every estimator alike, while results keep the user's own rows and labels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from diffimpute import DiffusionImputer, ImDiffusionDetector
from diffimpute.data.schema import time_positions, time_ticks, to_panel


def _frame(index) -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(len(index), dtype=float)}, index=index)


def test_labels_written_as_dates_are_times() -> None:
    stamps = ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00", "2024-01-01 05:00"]
    as_text = _frame(pd.Index(stamps))
    np.testing.assert_array_equal(time_ticks(as_text), time_ticks(_frame(pd.DatetimeIndex(stamps))))
    np.testing.assert_array_equal(time_positions(as_text), [0.0, 1.0, 2.0, 5.0])


@pytest.mark.parametrize("as_objects", [False, True])
def test_offsets_that_change_at_daylight_saving_compare_in_utc(as_objects: bool) -> None:
    # Europe/Berlin on 2024-03-31: 01:00+01:00, then 03:00+02:00 an hour later, then 04:00+02:00
    stamps = ["2024-03-31 01:00+01:00", "2024-03-31 03:00+02:00", "2024-03-31 04:00+02:00", "2024-03-31 07:00+02:00"]
    index = pd.Index([pd.Timestamp(s) for s in stamps], dtype=object) if as_objects else pd.Index(stamps)
    frame = _frame(index)
    to_panel(frame)
    utc = pd.to_datetime(stamps, utc=True).as_unit("ns")
    np.testing.assert_array_equal(time_ticks(frame), utc.asi8.astype(np.float64))
    np.testing.assert_array_equal(time_positions(frame), [0.0, 1.0, 2.0, 5.0])


def test_ticks_are_nanoseconds_whatever_the_index_resolution() -> None:
    stamps = pd.date_range("2024-01-01", periods=3, freq="min")
    np.testing.assert_array_equal(time_ticks(_frame(stamps.as_unit("s"))), time_ticks(_frame(stamps.as_unit("ns"))))


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (pd.DatetimeIndex(["2024-01-01", "2024-01-03", "2024-01-02", "2024-01-04"]),
         r"not sorted: 2 of 4 rows are out of place, the first '2024-01-02 00:00:00' after '2024-01-03 00:00:00' "
         r"\(row 2\); sort the rows by time first \(df.sort_index\(\)\); .*--dayfirst"),
        (pd.Index(["2024-01-03", "2024-01-01", "2024-01-02"]),  # text would sort as text: parse first
         r"not sorted: 3 of 3 rows .*pd.to_datetime\(df.index, utc=True\), then df.sort_index\(\)"),
        (pd.Index([3.0, 1.0, 2.0]), r"not sorted: 3 of 3 rows .*\(df.sort_index\(\)\)$"),
    ],
)
def test_times_out_of_order_are_refused_saying_how_many_and_how_to_sort(index: pd.Index, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_panel(_frame(index))


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03", "2024-01-03"]),
         r"row 2 \('2024-01-02 00:00:00'\) repeats the time of row 1 .*as 2 of its 5 rows do; "
         r"keep one row per time \(df\[~df.index.duplicated\(\)\]\)"),
        # the hour repeated when clocks go back: different labels, one instant
        (pd.Index(["2024-10-27 01:30+02:00", "2024-10-27 02:30+02:00", "2024-10-27 01:30+01:00"]),
         r"row 2 \('2024-10-27 01:30\+01:00'\) repeats the time of row 1 \('2024-10-27 02:30\+02:00'\)"),
    ],
)
def test_a_time_twice_is_refused_naming_the_first_repeat(index: pd.Index, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_panel(_frame(index))


def test_rows_without_a_time_are_refused() -> None:
    with pytest.raises(ValueError, match=r"1 rows without a time .* at row 1; drop them"):
        to_panel(_frame(pd.Index(["2024-01-01", None, "2024-01-03"])))


@pytest.mark.parametrize("labels", [["a", "b", "c"], ["1a", "2a", "3a"], ["2024-01-01", "01/02/2024", "x"]])
def test_labels_that_are_not_times_are_taken_as_steps_with_a_warning(labels: list[str]) -> None:
    frame = _frame(pd.Index(labels))
    with pytest.warns(UserWarning, match=rf"index labels are not times \(e.g. '{labels[0]}'\).*evenly spaced"):
        to_panel(frame)
    assert time_ticks(frame) is None
    np.testing.assert_array_equal(time_positions(frame), [0.0, 1.0, 2.0])


@pytest.mark.parametrize(
    "index",
    [pd.RangeIndex(3), pd.date_range("2024-01-01", periods=3, freq="h"), pd.Index([0.5, 1.0, 4.0]),
     pd.period_range("2024-01", periods=3, freq="M"), pd.to_timedelta([0, 1, 5], unit="s")],
)
def test_indexes_that_are_times_pass_quietly(index: pd.Index) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_panel(_frame(index))


def test_periods_are_evenly_spaced_steps() -> None:
    months = pd.PeriodIndex(["2024-01", "2024-02", "2024-03", "2024-05"], freq="M")  # 29, 31 days: still months
    np.testing.assert_array_equal(time_positions(_frame(months)), [0.0, 1.0, 2.0, 4.0])


@pytest.mark.parametrize("estimator", [DiffusionImputer, ImDiffusionDetector])
def test_every_estimator_refuses_times_out_of_order_before_training(estimator) -> None:
    shuffled = pd.date_range("2024-01-01", periods=64, freq="h").strftime("%Y-%m-%d %H:%M")[::-1]
    data = pd.DataFrame(np.random.default_rng(0).normal(size=(64, 2)), index=shuffled, columns=["a", "b"])
    with pytest.raises(ValueError, match="not sorted: 64 of 64 rows"):
        estimator(pretrained=None, max_epochs=1, device="cpu", verbose=False).fit(data)


def test_imputing_a_frame_indexed_by_text_times_uses_those_times_and_keeps_its_labels(
        fitted: DiffusionImputer, frame: pd.DataFrame) -> None:
    hours = np.arange(len(frame)) + 5 * (np.arange(len(frame)) >= 100)  # a 6-hour step at row 100
    utc = pd.Timestamp("2024-03-25", tz="UTC") + pd.to_timedelta(hours, unit="h")  # across 31 March
    local = utc.tz_convert("Europe/Berlin").strftime("%Y-%m-%d %H:%M:%S%z")  # offsets +0100, then +0200
    as_text = frame.set_axis(pd.Index(local, name="time"))
    as_times = frame.set_axis(utc)
    median = fitted.impute(as_text, seed=3).median()
    assert median.index.equals(as_text.index) and median.index.dtype == as_text.index.dtype
    expected = fitted.impute(as_times, seed=3).median()
    np.testing.assert_array_equal(median.to_numpy(), expected.to_numpy())
    by_row = fitted.impute(as_times.reset_index(drop=True), seed=3).median()
    assert not np.array_equal(median.to_numpy(), by_row.to_numpy())  # the step at row 100 matters
