"""The augmenter's samples as the network sees them, and its outputs rebuilt in the data's own types.

Tables travel as the table encoder's channels; generated codes come back as columns with the
dtype (and, for categories, the full level list) each column had at ``fit``, which must survive
a JSON round trip so that a loaded augmenter writes the same frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types


def plain(value):
    """A label or level as a JSON-able Python scalar."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Encoded:
    """Samples as the network sees them, before scaling: ``values (n, channels, length)`` with NaN
    where missing, and the per-channel view ``flat (n * length, channels)`` the scaler is fitted on."""

    values: np.ndarray

    @property
    def flat(self) -> np.ndarray:
        return self.values.transpose(0, 2, 1).reshape(-1, self.values.shape[1])


def check_guidance(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"guidance_scale must be a finite number >= 0 (1: no guidance, 0: ignore the label), "
                         f"got {value!r}")
    return float(value)


def check_strength(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value <= 1:
        raise ValueError(f"strength must be a number between 0 (a copy) and 1 (a fresh sample), got {value!r}")
    return float(value)


def column_dtype(column: pd.Series) -> dict:
    """What it takes to rebuild ``column``'s dtype from JSON (a category's full level list included)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return {"dtype": "category", "categories": [plain(c) for c in column.cat.categories],
                "ordered": bool(column.cat.ordered)}
    return {"dtype": str(column.dtype)}


def rebuild_column(values: np.ndarray, info: dict, levels: tuple, numeric: bool):
    """Column ``codes (rows,)`` -> an array of values in the column's own dtype."""
    dtype = info["dtype"]
    if not numeric:
        labels = np.empty(len(values), dtype=object)
        labels[:] = [levels[int(c)] for c in values]
        if dtype == "category":
            return pd.Categorical(labels, categories=info["categories"], ordered=info["ordered"])
        return labels if dtype == "object" else pd.array(labels, dtype=dtype)
    if types.is_integer_dtype(pd.api.types.pandas_dtype(dtype)):
        return pd.array(np.round(values).astype(np.int64), dtype=dtype)
    return pd.array(values, dtype=dtype if types.is_float_dtype(pd.api.types.pandas_dtype(dtype)) else "float64")
