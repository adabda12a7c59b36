"""Dates and durations in a table, as the numbers of days the tabular models see.

A model imputes or generates a number; a date column must come back as dates, in its own dtype and
time zone, and as finely as its given values are written (a column of birth dates gets no time of
day). Arithmetic runs in microseconds, the unit pandas reads CSV dates in, so that sentinel dates
such as 9999-12-31 do not overflow pandas' nanosecond range.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types

_MICROSECONDS_PER_DAY = 86_400_000_000
_EPOCH = np.datetime64(0, "us")


def is_time(dtype) -> bool:
    """Whether a column of ``dtype`` (a dtype or its name) holds dates or durations."""
    dtype = pd.api.types.pandas_dtype(dtype)
    return types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype)


def _wall_clock(column: pd.Series) -> pd.Series:
    """Dates as written where they were recorded (a zoned column loses its zone, not its clock)."""
    return column.dt.tz_localize(None) if column.dt.tz is not None else column


def to_days(column: pd.Series) -> np.ndarray:
    """Dates as days since 1970-01-01 UTC (naive ones read as UTC), durations as days; NaN where missing."""
    if types.is_timedelta64_dtype(column.dtype):
        return column.dt.total_seconds().to_numpy(np.float64, na_value=np.nan) / 86_400
    utc = column.dt.tz_convert("UTC").dt.tz_localize(None) if column.dt.tz is not None else column
    since = utc.astype("datetime64[us]") - pd.Timestamp(_EPOCH)
    return since.dt.total_seconds().to_numpy(np.float64, na_value=np.nan) / 86_400


def time_unit(column: pd.Series) -> str | None:
    """``"D"`` or ``"s"``: the coarsest of whole days and whole seconds (on the local clock) that every
    given value of a date or duration ``column`` is written in; None: finer, or nothing given."""
    seen = column.dropna()
    if types.is_datetime64_any_dtype(column.dtype):
        seen = _wall_clock(seen).astype("datetime64[us]") - pd.Timestamp(_EPOCH)
    return next((unit for unit in ("D", "s") if len(seen) and (seen.dt.floor(unit) == seen).all()), None)


def from_days(days: np.ndarray, dtype, unit: str | None = None) -> pd.Series:
    """``to_days``' inverse in ``dtype``: dates or durations rounded to ``unit`` on the local clock
    (a zoned date of whole days lands on local midnight), to the microsecond without one."""
    days = np.asarray(days, dtype=np.float64)
    micro = np.round(np.nan_to_num(days) * _MICROSECONDS_PER_DAY).astype(np.int64).astype("timedelta64[us]")
    micro[np.isnan(days)] = np.timedelta64("NaT")
    dtype = pd.api.types.pandas_dtype(dtype)
    if types.is_timedelta64_dtype(dtype):
        delta = pd.Series(micro)
        return (delta.dt.round(unit) if unit else delta).astype(dtype)
    stamps = pd.Series(_EPOCH + micro)
    zone = getattr(dtype, "tz", None)
    if zone is not None:
        stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)
    if unit:
        stamps = stamps.dt.round(unit)
    if zone is not None:
        stamps = stamps.dt.tz_localize(zone, ambiguous=False, nonexistent="shift_forward")
    return stamps.astype(dtype)
