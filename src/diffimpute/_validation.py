"""Input checks: every bad input becomes one clear error here, naming the cause and the fix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype


class NotNumericError(ValueError, TypeError):
    """Values that must be numbers are not. A ValueError, as scikit-learn raises for text in numeric
    data and as every estimator here does; also a TypeError, which earlier versions raised."""


def check_data(X: object, *, name: str = "X") -> np.ndarray:
    """Validate user data and return it as a float64 panel ``(series, time, features)`` with NaNs.

    Accepts a DataFrame (rows are time, columns features), a NumPy ``(time, features)`` array or a
    NumPy panel ``(series, time, features)``. NaN, None and pd.NA all mean missing.
    """
    if isinstance(X, pd.DataFrame):
        return _frame_to_panel(X, name)
    if isinstance(X, np.ndarray):
        return _array_to_panel(X, name)
    raise TypeError(
        f"{name} must be a pandas DataFrame or a NumPy array of shape (time, features) or "
        f"(series, time, features), got {type(X).__name__}"
    )


def _frame_to_panel(frame: pd.DataFrame, name: str) -> np.ndarray:
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{name} is empty ({frame.shape[0]} rows x {frame.shape[1]} columns); pass data with rows and columns")
    bad = [str(c) for c, dtype in frame.dtypes.items() if not is_numeric_dtype(dtype) or is_bool_dtype(dtype)]
    if bad:
        raise NotNumericError(
            f"{name} has non-numeric columns {bad}; drop them or encode them as numbers "
            f"(e.g. df.drop(columns={bad}))"
        )
    _check_index(frame.index, name)
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    check_finite(values, name, [str(c) for c in frame.columns])
    return values[None]


def _array_to_panel(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{name} must have 2 dimensions (time, features) or 3 (series, time, features), got shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass data with time steps and features")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == object) or array.dtype == bool:
        raise NotNumericError(f"{name} must hold numbers, got dtype {array.dtype}")
    try:
        values = np.asarray(pd.DataFrame(array.reshape(-1, array.shape[-1])).to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError) as error:
        raise NotNumericError(f"{name} holds values that are not numbers ({error}); convert them to float") from None
    values = values.reshape(array.shape)
    check_finite(values, name, [str(i) for i in range(array.shape[-1])])
    return values if array.ndim == 3 else values[None]


def check_finite(values: np.ndarray, name: str, columns: Sequence[str]) -> None:
    """An infinite cell is neither a value to learn from nor a missing one: refuse it, naming the
    columns, rather than let it turn every draw of its row into NaN."""
    infinite = np.isinf(values).reshape(-1, values.shape[-1]).any(axis=0)
    if infinite.any():
        bad = [c for c, flag in zip(columns, infinite) if flag]
        raise ValueError(
            f"{name} has infinite values in columns {bad}; replace them with NaN to impute them "
            "(e.g. df.replace([np.inf, -np.inf], np.nan))"
        )


def _check_index(index: pd.Index, name: str) -> None:
    """Repeated labels of any kind (times are checked further by ``data.schema.check_time_index``)."""
    if not index.is_unique:
        dupes = index[index.duplicated()].unique()[:3].tolist()
        raise ValueError(
            f"{name} has duplicate index values (e.g. {dupes}); aggregate or drop duplicates first "
            "(e.g. df[~df.index.duplicated()])"
        )


def check_all_columns_observed(panel: np.ndarray, columns: Sequence[str], name: str = "X") -> None:
    """A column with no observed value gives the model nothing to learn from."""
    empty = np.isnan(panel).reshape(-1, panel.shape[-1]).all(axis=0)
    if empty.any():
        bad = [c for c, flag in zip(columns, empty) if flag]
        raise ValueError(f"{name} has columns that are entirely missing: {bad}; drop them before fitting")


def check_columns(columns: Sequence[str], fitted: Sequence[str], name: str = "X") -> None:
    """Data given after fitting must have the columns seen at fit, in the same order."""
    columns, fitted = list(columns), list(fitted)
    if columns == fitted:
        return
    missing = [c for c in fitted if c not in columns]
    extra = [c for c in columns if c not in fitted]
    if not missing and not extra:
        raise ValueError(f"{name} has the fitted columns in a different order; reorder with X[{fitted}]")
    raise ValueError(
        f"{name}'s columns differ from those seen at fit: missing {missing}, unexpected {extra}; "
        "pass the same columns as at fit"
    )


def check_choice(value: object, options: tuple, name: str) -> None:
    """An unknown string option is a ValueError naming the valid set."""
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")


def check_positive_int(value: object, name: str) -> int:
    """Counts such as ``n_samples`` must be integers >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_seed(value: object) -> int:
    """A seed given as a number is a non-negative integer: every run is reproducible from it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"the seed must be an integer >= 0 (it makes a run reproducible), got {value!r}"
        )
    return int(value)


def check_random_state(value: object) -> None:
    """``random_state``: an int (reproducible), a NumPy ``Generator``/``RandomState`` or None (fresh)."""
    if value is None or isinstance(value, (np.random.Generator, np.random.RandomState)):
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"random_state must be an integer >= 0 (reproducible runs), a numpy Generator or None (a fresh "
            f"seed each fit), got {value!r}"
        )


def resolve_seed(value: object) -> int:
    """The integer seed a fit runs on: ``random_state`` itself, or one drawn from the Generator
    (advancing it, as scikit-learn does) or from the operating system's entropy for None."""
    check_random_state(value)
    if isinstance(value, np.random.Generator):
        return int(value.integers(2**31))
    if isinstance(value, np.random.RandomState):
        return int(value.randint(2**31))
    if value is None:
        return int(np.random.SeedSequence().entropy % 2**31)
    return int(value)


def check_probability(value: float, name: str) -> float:
    """Quantile levels and similar must lie strictly inside (0, 1)."""
    if not 0 < value < 1:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
    return float(value)
