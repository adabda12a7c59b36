"""What the user's data looked like, so every result goes back in the same form.

A DataFrame comes back with the same index, columns, order and dtypes; arrays come back with the
same shape. Only missing cells are written, so observed cells are bit-identical by construction.
A frame's index says when each row was observed: it is read as times here (``time_ticks``), and
checked once (``check_time_index``, from ``to_panel``) so that every estimator refuses the same
indexes that cannot order a series' rows, with the same message.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype

from diffimpute._validation import check_columns, check_data

InputKind = Literal["frame", "array", "panel"]


@dataclass(frozen=True)
class Schema:
    """Column names and the container type of the data an estimator was fitted on."""

    kind: InputKind
    columns: tuple[str, ...]

    @classmethod
    def of(cls, X: pd.DataFrame | np.ndarray) -> Schema:
        if isinstance(X, pd.DataFrame):
            return cls("frame", tuple(str(c) for c in X.columns))
        kind: InputKind = "panel" if X.ndim == 3 else "array"
        return cls(kind, tuple(str(i) for i in range(X.shape[-1])))

    def check_matches(self, X: pd.DataFrame | np.ndarray, panel: np.ndarray, fitted: str) -> None:
        """Data given after fitting must have the fitted features (by name for frames)."""
        if isinstance(X, pd.DataFrame) and self.kind == "frame":
            check_columns(column_names(X), self.columns)
        elif panel.shape[-1] != len(self.columns):
            raise ValueError(
                f"X has {panel.shape[-1]} features but the {fitted} was fitted on {len(self.columns)}; "
                "pass data with the same features as at fit"
            )

    def to_dict(self) -> dict:
        return {"kind": self.kind, "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, state: dict) -> Schema:
        return cls(state["kind"], tuple(state["columns"]))


def column_names(X: pd.DataFrame | np.ndarray) -> list[str]:
    return list(Schema.of(X).columns)


def to_panel(X: pd.DataFrame | np.ndarray, name: str = "X") -> np.ndarray:
    """Validated float64 panel ``(series, time, features)``; NaN marks missing. A frame's rows
    stay in their order: an index that is not in time order is refused (``check_time_index``)."""
    if isinstance(X, pd.DataFrame):
        check_time_index(X.index, name)
    return check_data(X, name=name)


def _parse_times(labels: pd.Index) -> pd.DatetimeIndex | None:
    """Labels written as dates (or datetime objects) as a DatetimeIndex, in UTC where they carry
    different offsets (a daylight-saving change); None where pandas finds no one format for them."""
    with warnings.catch_warnings():
        # pandas then guesses value by value with dateutil, which reads '1a' as 1 am
        warnings.filterwarnings("error", "Could not infer format", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)  # pandas 2: mixed offsets give an object Index
        for utc in (False, True):  # different offsets parse only as UTC
            try:
                stamps = pd.to_datetime(labels, utc=utc)
            except (ValueError, TypeError, OverflowError, UserWarning):
                continue
            if isinstance(stamps, pd.DatetimeIndex):
                return stamps
    return None


def _times(index: pd.Index) -> pd.Index | None:
    """``index`` as times that order and space rows: datetimes (parsed from text where written as
    dates), time deltas, periods or numbers; None for labels that are not times."""
    if isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex, pd.PeriodIndex)):
        return index
    if is_numeric_dtype(index.dtype) and not is_bool_dtype(index.dtype):
        return index
    if not isinstance(index, pd.MultiIndex) and index.inferred_type in ("string", "datetime", "date"):
        return _parse_times(index)
    return None


def _ticks(times: pd.Index) -> np.ndarray:
    """float64 ticks of ``_times``: nanoseconds (UTC for zoned times), period numbers, or the numbers."""
    if isinstance(times, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        return times.asi8.astype(np.float64) * (np.timedelta64(1, times.unit) / np.timedelta64(1, "ns"))
    if isinstance(times, pd.PeriodIndex):
        return times.asi8.astype(np.float64)
    return times.to_numpy(dtype=np.float64)


def check_time_index(index: pd.Index, name: str = "X") -> None:
    """Refuse an index that cannot order a series' rows: missing times, a time twice, times out
    of order (results keep the rows' order, so they are not sorted here). Warn where the labels
    are not times, so that rows taken as evenly spaced steps in their given order is no surprise."""
    if index.empty:
        return
    times = _times(index)
    if times is None:
        warnings.warn(f"{name}'s index labels are not times (e.g. '{index[0]}'): its rows are taken as evenly "
                      "spaced steps in their order; give it times (df.index = pd.to_datetime(df.index, "
                      "format=...)) or df.reset_index(drop=True) to drop the labels", UserWarning, stacklevel=3)
        return
    missing = np.flatnonzero(times.isna())
    if missing.size:
        raise ValueError(f"{name} has {missing.size} rows without a time in its index (NaT or NaN), the first "
                         f"at row {missing[0]}; drop them (df[df.index.notna()])")
    repeated = np.flatnonzero(times.duplicated())
    if repeated.size:
        row = repeated[0]
        earlier = np.flatnonzero(times[:row] == times[row])[0]
        raise ValueError(f"{name} has duplicate index values: row {row} ('{index[row]}') repeats the time of row "
                         f"{earlier} ('{index[earlier]}'), as {repeated.size} of its {len(index)} rows do; keep one "
                         "row per time (df[~df.index.duplicated()]) or aggregate them (df.groupby(level=0).mean())")
    if times.is_monotonic_increasing:
        return
    ticks = _ticks(times)
    moved = int((np.argsort(ticks) != np.arange(ticks.size)).sum())
    row = np.flatnonzero(np.diff(ticks) < 0)[0] + 1
    parsed = times is not index  # text sorts as text: parse it first
    fix = "df.index = pd.to_datetime(df.index, utc=True), then df.sort_index()" if parsed else "df.sort_index()"
    dates = "; for dates read from a file, check that day and month are not swapped (--dayfirst or " \
        "--monthfirst, dayfirst= in read_table)" if isinstance(times, pd.DatetimeIndex) else ""
    raise ValueError(f"{name}'s time index is not sorted: {moved} of {ticks.size} rows are out of place, the "
                     f"first '{index[row]}' after '{index[row - 1]}' (row {row}); sort the rows by time first "
                     f"({fix}){dates}")


Clock = tuple[float, float]  # (first tick, typical step) of a whole series, in its ticks' units


def time_ticks(X: pd.DataFrame | np.ndarray) -> np.ndarray | None:
    """Each row's time as float64 (nanoseconds of a datetime index, in UTC where zoned or where
    labels written as dates carry different offsets; period numbers; a numeric index's values),
    or None where rows are only ordered (arrays, a RangeIndex, labels that are not times)."""
    if not isinstance(X, pd.DataFrame) or isinstance(X.index, pd.RangeIndex):
        return None
    times = _times(X.index)
    return None if times is None else _ticks(times)


def series_clock(ticks: np.ndarray | None) -> Clock | None:
    """The first tick and the median step of a whole series; None when positions are 0, 1, 2..."""
    if ticks is None or len(ticks) < 2:
        return None
    step = float(np.median(np.diff(ticks)))
    return (float(ticks[0]), step) if step > 0 else None


def time_positions(X: pd.DataFrame | np.ndarray, clock: Clock | None = None) -> np.ndarray:
    """Time of each row in units of the typical step, so irregular timestamps reach the model.

    A DatetimeIndex or numeric index gives ``(t - t0) / median step``; anything else gives 0, 1, 2...
    ``clock``: the whole series' ``(t0, step)`` (``series_clock``) when ``X`` is a part of it, so
    the part's positions are the whole's, bit for bit; positions 0, 1, 2... need none (windows see
    times relative to their first step).
    """
    n_time = X.shape[-2]
    ticks = time_ticks(X)
    clock = series_clock(ticks) if clock is None else clock
    if ticks is None or clock is None:
        return np.arange(n_time, dtype=np.float64)
    origin, step = clock
    return (ticks - origin) / step


def from_panel(panel: np.ndarray, like: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
    """Write ``panel``'s values into the missing cells of ``like``; returns a new object of its type."""
    if isinstance(like, pd.DataFrame):
        return _fill_frame(like, panel[0])
    original = np.asarray(like)
    filled = panel if original.ndim == 3 else panel[0]
    out = original.astype(np.float64 if original.dtype == object else original.dtype, copy=True)
    missing = pd.isna(original)
    out[missing] = filled[missing].astype(out.dtype)
    return out


def _fill_frame(frame: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    columns = {}
    for j, (_, series) in enumerate(frame.items()):
        missing = series.isna().to_numpy()
        array = series.array.copy()
        if missing.any():
            new = values[missing, j]
            if is_integer_dtype(series.dtype):
                new = np.round(new)
            if isinstance(series.dtype, np.dtype):
                new = new.astype(series.dtype)
            array[missing] = new
        columns[j] = array
    out = pd.DataFrame(columns, index=frame.index.copy())
    out.columns = frame.columns.copy()
    out.attrs = dict(frame.attrs)
    return out
