"""Tables of independent records <-> the float matrix the tabular denoiser sees.

Numeric columns (floats, integers) pass through as they are; dates and durations become days
(``data.table_times``) and come back in the dtype, time zone and resolution seen at ``fit``;
categorical columns (pandas
``category``, ``object``/``str``, ``bool``) become one channel per level holding 0 or 1, missing
together when the cell is missing (TabCSDI's one-hot encoding). Decoding takes, per draw, the
level with the largest channel. Levels are those observed at ``fit``; a level first seen later
is an error, not a silent guess, because it is an observed value the model cannot represent;
so is an infinite number, which is neither a value nor a missing cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api import types

from diffimpute._validation import check_finite
from diffimpute.data.table_times import from_days, is_time, time_unit, to_days

MAX_LEVELS = 64  # one-hot channels per categorical column; more is usually an identifier
ColumnKind = Literal["numeric", "categorical"]


def _plain(value):
    """A level as a JSON-able Python scalar (NumPy scalars become their Python types)."""
    return value.item() if isinstance(value, np.generic) else value


def _kind_of(name: str, column: pd.Series) -> ColumnKind:
    if types.is_bool_dtype(column.dtype) or isinstance(column.dtype, pd.CategoricalDtype):
        return "categorical"
    if is_time(column.dtype):
        return "numeric"
    if types.is_complex_dtype(column.dtype):
        raise ValueError(f"column {name!r} holds complex numbers; split it into real and imaginary parts")
    if types.is_numeric_dtype(column.dtype):
        return "numeric"
    return "categorical"


def most_frequent(codes: np.ndarray) -> np.ndarray:
    """The most frequent value along axis 0 (the draws); ties: the smaller. Runs of equal values
    in the sorted draws are measured instead of counting per level, so memory and time depend on
    the number of draws, never on how large the values are (a code is a level's index, but a
    stray numeric value of 10^9 must not allocate 10^9 counters)."""
    ordered = np.sort(np.asarray(codes, dtype=np.float64), axis=0)
    steps = np.arange(len(ordered)).reshape(-1, *([1] * (ordered.ndim - 1)))
    starts = np.ones(ordered.shape, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    run_length = steps - np.maximum.accumulate(np.where(starts, steps, 0), axis=0) + 1
    longest = run_length.argmax(axis=0)[None]  # the first longest run ends first: the smaller value
    return np.take_along_axis(ordered, longest, axis=0)[0]


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its name, kind, the dtype it came with, (categorical) its levels in order and
    (dates, durations) the unit its given values are written in (``table_times.time_unit``)."""

    name: str
    kind: ColumnKind
    dtype: str
    levels: tuple = ()
    unit: str | None = None

    @property
    def is_time(self) -> bool:
        return self.kind == "numeric" and is_time(self.dtype)

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.levels)


@dataclass(frozen=True)
class TableEncoder:
    """The columns of a fitted table and their channels in the encoded matrix."""

    columns: tuple[ColumnSpec, ...]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> TableEncoder:
        """Learn kinds and levels from ``frame``; raises ValueError for a column it cannot encode."""
        specs = []
        for name, column in frame.items():
            kind = _kind_of(str(name), column)
            levels: tuple = ()
            if kind == "categorical":
                seen = column.dropna().unique()
                if isinstance(column.dtype, pd.CategoricalDtype):
                    seen = [level for level in column.cat.categories if level in set(seen)]
                else:
                    seen = sorted(seen, key=lambda v: (str(type(v)), v))
                if len(seen) > MAX_LEVELS:
                    raise ValueError(
                        f"column {name!r} has {len(seen)} distinct values; categorical columns may have at most "
                        f"{MAX_LEVELS} levels (each is one input channel). Group rare levels into one, pass the "
                        "column as numbers if it is ordinal, or drop it if it is an identifier"
                    )
                levels = tuple(_plain(v) for v in seen)
            unit = time_unit(column) if is_time(column.dtype) else None
            specs.append(ColumnSpec(str(name), kind, str(column.dtype), levels, unit))
        return cls(tuple(specs))

    # ------------------------------------------------------------------ layout (computed once: read per batch)
    @cached_property
    def n_channels(self) -> int:
        return sum(spec.width for spec in self.columns)

    @cached_property
    def channel_column(self) -> np.ndarray:
        """``(n_channels,)`` the column each channel belongs to."""
        return np.repeat(np.arange(len(self.columns)), [spec.width for spec in self.columns])

    @cached_property
    def first_channel(self) -> np.ndarray:
        """``(n_columns,)`` each column's first channel: its cells are observed or missing together."""
        return np.cumsum([0] + [spec.width for spec in self.columns[:-1]])

    @cached_property
    def numeric(self) -> np.ndarray:
        """``(n_columns,)`` True for numeric columns."""
        return np.array([spec.kind == "numeric" for spec in self.columns], dtype=bool)

    @cached_property
    def numeric_channels(self) -> np.ndarray:
        """``(n_channels,)`` True for the channels of numeric columns."""
        return self.numeric[self.channel_column]

    # ------------------------------------------------------------------ frame <-> arrays
    def check_columns(self, frame: pd.DataFrame) -> None:
        names = [str(c) for c in frame.columns]
        expected = [spec.name for spec in self.columns]
        if names != expected:
            missing = [n for n in expected if n not in names]
            extra = [n for n in names if n not in expected]
            raise ValueError(
                f"the table's columns do not match those seen at fit (missing {missing}, unexpected {extra}); "
                f"pass the columns {expected} in that order"
            )

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """``(rows, columns)`` float64: numeric values, level indices for categorical cells, NaN where missing."""
        self.check_columns(frame)
        out = np.empty(frame.shape, dtype=np.float64)
        for j, (spec, (_, column)) in enumerate(zip(self.columns, frame.items())):
            if spec.kind == "numeric" and spec.is_time != is_time(column.dtype) and column.notna().any():
                held = "dates or durations" if spec.is_time else "numbers"
                raise ValueError(f"column {spec.name!r} held {held} at fit but now holds {column.dtype}")
            if spec.is_time:
                out[:, j] = to_days(column) if is_time(column.dtype) else np.nan
                continue
            if spec.kind == "numeric":
                try:
                    out[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
                except (TypeError, ValueError):
                    raise ValueError(f"column {spec.name!r} was numeric at fit but now holds {column.dtype}") from None
                continue
            present = column.notna().to_numpy()
            index = pd.Index(spec.levels).get_indexer(column[present].map(_plain)) if present.any() else []
            if np.any(np.asarray(index) < 0):
                unseen = sorted({str(v) for v, i in zip(column[present], index) if i < 0})[:5]
                raise ValueError(
                    f"column {spec.name!r} holds levels not seen at fit: {unseen}; refit on data that has them, "
                    "or set those cells missing to impute them"
                )
            out[:, j] = np.nan
            out[present, j] = index
        check_finite(out, "X", [spec.name for spec in self.columns])
        return out

    def encode(self, codes: np.ndarray) -> np.ndarray:
        """``(rows, columns)`` codes -> ``(rows, n_channels)`` float64 with one-hot levels, NaN where missing."""
        parts = []
        for j, spec in enumerate(self.columns):
            column = codes[:, j]
            if spec.kind == "numeric":
                parts.append(column[:, None])
                continue
            hot = (column[:, None] == np.arange(spec.width)[None]).astype(np.float64)
            parts.append(np.where(np.isnan(column)[:, None], np.nan, hot))
        return np.concatenate(parts, axis=1)

    def decode(self, channels: np.ndarray) -> np.ndarray:
        """``(..., n_channels)`` -> ``(..., columns)`` codes: numeric values, the largest level's index."""
        out, start = [], 0
        for spec in self.columns:
            block = channels[..., start:start + spec.width]
            out.append(block[..., 0] if spec.kind == "numeric" else np.argmax(block, axis=-1).astype(np.float64))
            start += spec.width
        return np.stack(out, axis=-1)

    def to_frame(self, codes: np.ndarray, like: pd.DataFrame) -> pd.DataFrame:
        """``like`` with its missing cells set from ``codes (rows, columns)``, each column in its own dtype
        where it can hold the values (an integer column with gaps comes back as nullable ``Int64``)."""
        out = like.copy()
        for j, (spec, name) in enumerate(zip(self.columns, like.columns)):
            column = like[name]
            missing = column.isna().to_numpy()
            if not missing.any():
                continue
            if spec.kind == "categorical":
                filled = column.astype(object).copy()
                filled[missing] = [spec.levels[int(c)] for c in codes[missing, j]]
                out[name] = filled.astype(column.dtype) if not types.is_object_dtype(column.dtype) else filled
                continue
            if spec.is_time:  # in the dtype seen at fit, also where the column came all missing
                filled = from_days(np.where(missing, codes[:, j], np.nan), spec.dtype, spec.unit)
                filled.index = column.index
                out[name] = filled.where(missing, column) if is_time(column.dtype) else filled
                continue
            filled = column.to_numpy(dtype=np.float64, na_value=np.nan).copy()
            filled[missing] = codes[missing, j]
            if types.is_integer_dtype(column.dtype):  # nullable Int64 and friends
                out[name] = pd.array(np.round(filled).astype(np.int64), dtype=column.dtype)
            else:
                out[name] = filled.astype(column.dtype if types.is_float_dtype(column.dtype) else np.float64)
        return out

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"columns": [{"name": s.name, "kind": s.kind, "dtype": s.dtype, "levels": list(s.levels),
                             "unit": s.unit} for s in self.columns]}

    @classmethod
    def from_dict(cls, state: dict) -> TableEncoder:
        return cls(tuple(ColumnSpec(c["name"], c["kind"], c["dtype"], tuple(c["levels"]), c.get("unit"))
                         for c in state["columns"]))
