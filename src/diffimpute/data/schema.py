"""What the user's data looked like, so every result goes back in the same form.

A DataFrame comes back with the same index, columns, order and dtypes; arrays come back with the
same shape. Only missing cells are written, so observed cells are bit-identical by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_integer_dtype

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
    """Validated float64 panel ``(series, time, features)``; NaN marks missing."""
    return check_data(X, name=name)


Clock = tuple[float, float]  # (first tick, typical step) of a whole series, in its ticks' units


def time_ticks(X: pd.DataFrame | np.ndarray) -> np.ndarray | None:
    """Each row's time as float64 (a DatetimeIndex's integer ticks or a numeric index's values), or
    None where rows are only ordered (arrays, a RangeIndex, labels that are not times)."""
    index = X.index if isinstance(X, pd.DataFrame) else None
    if index is None:
        return None
    if isinstance(index, pd.DatetimeIndex):
        return index.asi8.astype(np.float64)
    if pd.api.types.is_numeric_dtype(index.dtype) and not isinstance(index, pd.RangeIndex):
        return index.to_numpy(dtype=np.float64)
    return None


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
