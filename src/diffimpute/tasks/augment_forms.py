"""The augmenter's data forms: tables, series windows and images <-> samples as the network sees them.

Tables travel as the table encoder's channels; generated codes come back as columns with the
dtype (and, for categories, the full level list) each column had at ``fit``, which must survive
a JSON round trip so that a loaded augmenter writes the same frames. Class labels become class
indices here too. ``SampleForms`` holds these conversions for ``DiffusionAugmenter``, which keeps
only the model, the fit and the drawing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from pandas.api import types

from diffimpute.data.domain import FeatureDomain
from diffimpute.data.schema import to_panel
from diffimpute.data.table import TableEncoder
from diffimpute.data.table_times import from_days, is_time, time_unit


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
    if is_time(column.dtype):
        return {"dtype": str(column.dtype), "unit": time_unit(column)}
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
    if is_time(pd.api.types.pandas_dtype(dtype)):
        return from_days(values, dtype, info.get("unit")).array
    if types.is_integer_dtype(pd.api.types.pandas_dtype(dtype)):
        return pd.array(np.round(values).astype(np.int64), dtype=dtype)
    return pd.array(values, dtype=dtype if types.is_float_dtype(pd.api.types.pandas_dtype(dtype)) else "float64")


class SampleForms:
    """Conversions between the data a user passes and scaled samples ``(n, channels, length)``.

    A mixin of ``DiffusionAugmenter``: it reads the augmenter's ``kind`` and ``keep_integers`` and
    sets or reads its fitted ``input_kind_``, ``encoder_``, ``dtypes_``, ``sample_shape_``,
    ``scaler_``, ``value_range_``, ``domain_``, ``classes_`` and ``class_prior_``.
    """

    # ------------------------------------------------------------------ data forms
    def _kind_of(self, X) -> str:
        """The form of ``X``: ``"frame"``, ``"array"`` (2-D table), ``"series"`` or ``"image"``."""
        if isinstance(X, pd.DataFrame):
            if self.kind not in ("auto", "table"):
                raise ValueError(f"a DataFrame is a table, but kind={self.kind!r}; pass kind='table' or 'auto'")
            return "frame"
        if not isinstance(X, np.ndarray):
            raise TypeError(f"X must be a pandas DataFrame or a NumPy array, got {type(X).__name__}")
        dims = {"table": (2,), "series": (3,), "image": (3, 4), "auto": (2, 3, 4)}[self.kind]
        if X.ndim not in dims:
            raise ValueError(
                f"X has {X.ndim} dimensions (shape {X.shape}); kind={self.kind!r} takes {' or '.join(map(str, dims))}-D "
                "arrays: tables (rows, columns), series windows (n, time, features), images (n, height, width[, colours])")
        if self.kind == "image" or X.ndim == 4:
            return "image"
        return "array" if X.ndim == 2 else "series"

    def _encode(self, X, fitting: bool = False) -> Encoded:
        """``X`` in its fitted form -> encoded samples (before scaling); at ``fit`` also learns the form."""
        kind = self._kind_of(X)
        if not fitting and kind != self.input_kind_:
            raise ValueError(f"the augmenter was fitted on {self.input_kind_} data; got {kind} data")
        if kind in ("frame", "array"):
            frame = self._frame(X)
            if fitting:
                self.encoder_ = TableEncoder.of(frame)
                self.dtypes_ = [column_dtype(column) for _, column in frame.items()] if kind == "frame" else None
            codes = self.encoder_.codes(frame)
            if np.isinf(codes).any():
                raise ValueError("X has infinite values; replace them with NaN (missing) or drop those rows")
            return Encoded(self.encoder_.encode(codes)[:, :, None])
        panel = to_panel(X.reshape(X.shape[0], -1, X.shape[-1]) if kind == "image" and X.ndim == 4 else X)
        if kind == "image" and X.ndim == 3:
            panel = panel.reshape(X.shape[0], -1, 1)
        shape = tuple(X.shape[1:])
        if fitting:
            self.sample_shape_ = shape
        elif shape != self.sample_shape_:
            raise ValueError(f"each sample has shape {shape}, but the augmenter was fitted on {self.sample_shape_}")
        return Encoded(panel.transpose(0, 2, 1))

    def _frame(self, X) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            if X.shape[0] == 0 or X.shape[1] == 0:
                raise ValueError(f"X is empty (shape {X.shape}); pass at least one row and column")
            if X.columns.duplicated().any():
                raise ValueError(f"X has duplicated column names {list(X.columns[X.columns.duplicated()])}; rename them")
            return X
        try:
            array = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"an array X must be numeric (got {X.dtype}); pass a DataFrame for categorical columns") from None
        if array.size == 0:
            raise ValueError(f"X is empty (shape {array.shape}); pass at least one row and column")
        return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])

    def _scaled(self, encoded: Encoded) -> np.ndarray:
        """Encoded samples standardised per channel, ``(n, channels, length)``."""
        n, channels, length = encoded.values.shape
        return self.scaler_.transform(encoded.flat).reshape(n, length, channels).transpose(0, 2, 1)

    def _as_given(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled draws as a user gets them (a category's level picked, values inside their range and
        domain), scaled again: compared raw with real samples, the continuous one-hot channels of a
        draw tell it from a real row at once, whatever its quality."""
        codes = self._codes(scaled)
        table = self.input_kind_ in ("frame", "array")
        return self._scaled(Encoded(self.encoder_.encode(codes)[:, :, None] if table else codes.transpose(0, 2, 1)))

    def _length(self) -> int:
        """Cells per channel of one sample: 1 for a table row, time steps, or pixels."""
        if self.input_kind_ in ("frame", "array"):
            return 1
        return self.sample_shape_[0] if self.input_kind_ == "series" else self.sample_shape_[0] * self.sample_shape_[1]

    def _codes(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled samples ``(n, channels, length)`` -> values in the data's units, inside each column's
        observed range and domain: ``(n, columns)`` codes for tables, ``(n, length, features)`` otherwise."""
        flat = self.scaler_.inverse_transform(scaled.transpose(0, 2, 1))
        if self.input_kind_ in ("frame", "array"):
            flat = self.encoder_.decode(flat[:, 0])
        low, high = self.value_range_
        clipped = np.where(np.isnan(low), flat, np.clip(flat, np.nan_to_num(low), np.nan_to_num(high)))
        return self.domain_.apply(clipped)

    def _output(self, codes: np.ndarray, index: pd.Index | None = None):
        """Values in the data's units -> the fitted form: a DataFrame with the fitted columns and dtypes,
        or an array ``(n, *sample_shape)`` of the fitted dtype."""
        if self.input_kind_ == "frame":
            columns = {spec.name: rebuild_column(codes[:, j], info, spec.levels, spec.kind == "numeric")
                       for j, (spec, info) in enumerate(zip(self.encoder_.columns, self.dtypes_))}
            frame = pd.DataFrame(columns, index=index if index is not None else pd.RangeIndex(len(codes)))
            frame.columns = self.column_index_
            return frame
        if self.input_kind_ == "array":
            shaped = codes
            if self._pandas_output():
                return pd.DataFrame(shaped, index=index, columns=self.get_feature_names_out())
        else:
            shaped = codes.reshape(len(codes), *self.sample_shape_)
        return (np.round(shaped) if self.dtype_.kind in "iu" else shaped).astype(self.dtype_)

    # ------------------------------------------------------------------ labels
    def _label_indices(self, y, n: int, name: str = "y") -> torch.Tensor | None:
        """``y`` (one label for all, or ``n`` labels) -> class indices ``(n,)``; None for no label."""
        if y is None:
            return None
        if self.classes_ is None:
            raise ValueError(f"the augmenter was fitted without labels; pass {name}=None, or refit with fit(X, y)")
        labels = np.asarray(y, dtype=object)
        if labels.ndim == 0:
            labels = np.full(n, labels.item(), dtype=object)
        if labels.ndim != 1 or len(labels) != n:
            raise ValueError(f"{name} must be one label or {n} labels (one per sample), got shape {labels.shape}")
        index = pd.Index(list(self.classes_)).get_indexer([plain(v) for v in labels])
        if (index < 0).any():
            unknown = sorted({str(v) for v, i in zip(labels, index) if i < 0})[:5]
            raise ValueError(f"{name} holds labels not seen at fit: {unknown}; known classes are {list(self.classes_)}")
        return torch.from_numpy(index.astype(np.int64))

    def _fit_labels(self, y, n: int) -> torch.Tensor | None:
        """Learn ``classes_`` (sorted) and ``class_prior_`` from ``y``; its class indices ``(n,)``."""
        self.classes_, self.class_prior_ = None, None
        if y is None:
            return None
        labels = np.asarray(y, dtype=object)
        if labels.ndim != 1 or len(labels) != n:
            raise ValueError(f"y must hold one label per sample of X ({n}), got shape {labels.shape}")
        missing = pd.isna(labels)
        if missing.any():
            raise ValueError(f"y has {int(missing.sum())} missing label(s); drop those samples or label them")
        try:
            classes, counts = np.unique(np.asarray([plain(v) for v in labels]), return_counts=True)
        except TypeError:
            raise ValueError("y mixes labels of different types (e.g. numbers and strings); use one type") from None
        self.classes_ = np.asarray([plain(c) for c in classes])
        self.class_prior_ = counts / counts.sum()
        return self._label_indices(labels, n)


    def _fit_domain(self, encoded: Encoded) -> None:
        """Observed range and whole-number flag of each numeric column (tables) or feature (series, images)."""
        if self.input_kind_ in ("frame", "array"):
            values = self.encoder_.decode(encoded.values[:, :, 0])
            numeric = self.encoder_.numeric
        else:
            values = encoded.flat
            numeric = np.ones(values.shape[1], dtype=bool)
        with np.errstate(invalid="ignore"):
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        self.value_range_ = (np.where(numeric, low, np.nan), np.where(numeric, high, np.nan))
        domain = FeatureDomain.of(values, nonnegative=False, integer=self.keep_integers)
        self.domain_ = FeatureDomain(domain.nonnegative, domain.integer & numeric)


    def _fill(self, X, codes: np.ndarray):
        """``X`` with only its missing cells set from ``codes``."""
        if self.input_kind_ == "frame":
            return self.encoder_.to_frame(codes, X)
        if self.input_kind_ == "array":
            filled = np.asarray(X).copy()
            missing = pd.isna(filled)
            filled[missing] = codes[missing]
            return filled.astype(self.dtype_) if filled.dtype == object else filled
        filled = np.asarray(X).copy()
        values = codes.reshape(filled.shape)
        missing = pd.isna(filled)
        filled[missing] = values[missing]
        return filled

