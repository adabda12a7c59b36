"""Simple imputation baselines that the diffusion imputer has to beat.

Each baseline is a scikit-learn transformer that takes the same inputs as the diffusion imputer
and gives back the same type: a DataFrame ``(time, features)``, an array ``(time, features)`` or a
panel ``(series, time, features)``. Only missing cells are written; observed cells come back
bit-identical.

Two families, which differ in what they treat as a sample:

- along time (``locf``, ``nocb``, ``linear``, ``time``): fill each series along its time axis,
  never across series. A feature with no observed value in a whole series falls back to the
  feature's mean seen in ``fit``.
- across rows (``mean``, ``median``, ``knn``, ``mice``, ``missforest``): every ``(series, time)``
  row is one sample for a scikit-learn imputer.

A column that is entirely missing in the data passed to ``fit`` raises ``ValueError`` for every
baseline: none of them can learn a fill value from nothing, and silently dropping or zero-filling
the column would flatter the baseline in a comparison.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (unlocks IterativeImputer)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import BayesianRidge
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:
    from sklearn.utils import Tags

Data = TypeVar("Data", pd.DataFrame, np.ndarray)

# --------------------------------------------------------------------------------------------
# helpers: caller's data <-> float64 panel (series, time, features)
# --------------------------------------------------------------------------------------------


def _frame_values(frame: pd.DataFrame) -> np.ndarray:
    """Column by column, so a non-numeric column can be named in the error."""
    columns = []
    for name, column in frame.items():
        try:
            columns.append(column.to_numpy(dtype=np.float64, na_value=np.nan))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"column {name!r} has non-numeric dtype {column.dtype}; "
                "encode it as numbers or drop it before imputing"
            ) from error
    return np.stack(columns, axis=1)


def _to_panel(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Float64 copy of ``X`` shaped ``(series, time, features)``; NaN, None and pd.NA become NaN."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 0:
            raise ValueError("X has no columns; pass at least one feature")
        values = _frame_values(X)[None]
    else:
        array = np.asarray(X)
        if array.ndim not in (2, 3):
            raise ValueError(
                f"X must be 2-D (time, features) or 3-D (series, time, features); got {array.ndim}-D"
            )
        try:
            values = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"X has non-numeric dtype {array.dtype}; pass numbers") from error
        if values.ndim == 2:
            values = values[None]
    if 0 in values.shape:
        raise ValueError(f"X is empty (shape {np.shape(X)}); pass at least one row and feature")
    return values


def _feature_names(X: pd.DataFrame | np.ndarray, n_features: int) -> Sequence[Hashable]:
    """Names for error messages: DataFrame column labels, otherwise column positions."""
    return list(X.columns) if isinstance(X, pd.DataFrame) else list(range(n_features))


def _like(X: Data, panel: np.ndarray) -> Data:
    """Give ``panel`` back in the caller's type and shape.

    Float columns keep their precision (float32 stays float32, which round-trips observed values
    exactly); anything else (ints, nullable or object columns) comes back as float64, because a
    filled cell need not be an integer.
    """
    if isinstance(X, pd.DataFrame):
        dtypes = [
            dtype if isinstance(dtype, np.dtype) and dtype.kind == "f" else np.dtype(np.float64)
            for dtype in X.dtypes
        ]
        data = {i: panel[0, :, i].astype(dtype) for i, dtype in enumerate(dtypes)}
        frame = pd.DataFrame(data, index=X.index)
        frame.columns = X.columns
        return frame
    array = np.asarray(X)
    dtype = array.dtype if array.dtype.kind == "f" else np.dtype(np.float64)
    return (panel if array.ndim == 3 else panel[0]).astype(dtype)


def _rows(panel: np.ndarray) -> np.ndarray:
    """Every ``(series, time)`` row as one sample: ``(series * time, features)``."""
    return panel.reshape(-1, panel.shape[-1])


# --------------------------------------------------------------------------------------------
# the shared contract
# --------------------------------------------------------------------------------------------


class BaselineImputer(TransformerMixin, BaseEstimator):
    """Common contract of every baseline: validate, reshape to a panel, fill, give back like X.

    Subclasses implement ``_fit(panel)`` to learn state and ``_fill(panel, time_index)`` to return
    a NaN-free panel of the same shape; this class keeps the observed cells from the input.
    """

    def fit(self, X: pd.DataFrame | np.ndarray, y: Any = None) -> BaselineImputer:
        """Learn what the baseline needs from ``X``; ``y`` is ignored (scikit-learn API)."""
        values = _to_panel(X)
        empty = np.isnan(values).all(axis=(0, 1))
        if empty.any():
            names = _feature_names(X, values.shape[-1])
            listed = ", ".join(repr(names[i]) for i in np.flatnonzero(empty))
            raise ValueError(
                f"column(s) {listed} entirely missing in the data passed to fit; drop them "
                "before imputing, there is no observed value to learn a fill value from"
            )
        self.n_features_in_ = values.shape[-1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        else:
            # a refit on an array must not keep checking names from an earlier DataFrame
            self.__dict__.pop("feature_names_in_", None)
        self._fit(values)
        return self

    def transform(self, X: Data) -> Data:
        """Fill the missing cells of ``X``; same type, shape, index and columns as ``X``."""
        check_is_fitted(self)
        values = _to_panel(X)
        if values.shape[-1] != self.n_features_in_:
            raise ValueError(
                f"X has {values.shape[-1]} features but {type(self).__name__} was fitted with "
                f"{self.n_features_in_}; pass the same columns as in fit"
            )
        if (
            isinstance(X, pd.DataFrame)
            and hasattr(self, "feature_names_in_")
            and list(X.columns) != list(self.feature_names_in_)
        ):
            raise ValueError(
                f"X columns {list(X.columns)} differ from those seen in fit "
                f"{list(self.feature_names_in_)}; pass the same columns in the same order"
            )
        time_index = X.index if isinstance(X, pd.DataFrame) else None
        filled = self._fill(values, time_index)
        return _like(X, np.where(np.isnan(values), filled, values))

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.three_d_array = True
        return tags

    def _fit(self, panel: np.ndarray) -> None:
        raise NotImplementedError

    def _fill(self, panel: np.ndarray, time_index: pd.Index | None) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# along time: each series on its own
# --------------------------------------------------------------------------------------------


class _AlongTime(BaselineImputer):
    """Fills each series along time with pandas; learns per-feature means as the last resort."""

    def _fit(self, panel: np.ndarray) -> None:
        self.fill_values_ = np.nanmean(_rows(panel), axis=0)

    def _fill(self, panel: np.ndarray, time_index: pd.Index | None) -> np.ndarray:
        filled = np.stack(
            [
                self._fill_series(pd.DataFrame(series, index=time_index)).to_numpy(np.float64)
                for series in panel
            ]
        )
        # only a feature with no observation in the whole series is still missing here
        return np.where(np.isnan(filled), self.fill_values_, filled)

    def _fill_series(self, frame: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError


class LOCFBaseline(_AlongTime):
    """Last observation carried forward; a leading gap takes the first observation after it."""

    def _fill_series(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.ffill().bfill()


class NOCBBaseline(_AlongTime):
    """Next observation carried backward; a trailing gap keeps the last observation before it."""

    def _fill_series(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.bfill().ffill()


class LinearInterpolationBaseline(_AlongTime):
    """Straight lines between neighbouring observations, treating time steps as equally spaced.

    Gaps before the first or after the last observation take the nearest observed value.
    """

    def _fill_series(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.interpolate(method="linear").ffill().bfill()


class TimeInterpolationBaseline(_AlongTime):
    """Linear interpolation weighted by the timestamps of a DataFrame's DatetimeIndex.

    Irregularly sampled series need this: a gap between two readings a day apart is not filled
    like one between readings a minute apart. Without a DatetimeIndex (arrays, panels, other
    indexes) it is plain linear interpolation. Edge gaps take the nearest observed value.
    """

    def _fill_series(self, frame: pd.DataFrame) -> pd.DataFrame:
        method = "time" if isinstance(frame.index, pd.DatetimeIndex) else "linear"
        return frame.interpolate(method=method).ffill().bfill()


# --------------------------------------------------------------------------------------------
# across rows: every (series, time) row is a sample for a scikit-learn imputer
# --------------------------------------------------------------------------------------------


class _AcrossRows(BaselineImputer):
    """Delegates to the scikit-learn imputer built by ``_make_imputer``."""

    def _fit(self, panel: np.ndarray) -> None:
        with warnings.catch_warnings():  # MICE and MissForest-style run a fixed number of rounds by design
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.imputer_ = self._make_imputer().fit(_rows(panel))

    def _fill(self, panel: np.ndarray, time_index: pd.Index | None) -> np.ndarray:
        return self.imputer_.transform(_rows(panel)).reshape(panel.shape)

    def _make_imputer(self) -> Any:
        raise NotImplementedError


class MeanBaseline(_AcrossRows):
    """Each missing cell takes its feature's mean over all rows seen in fit."""

    def _make_imputer(self) -> SimpleImputer:
        return SimpleImputer(strategy="mean")


class MedianBaseline(_AcrossRows):
    """Each missing cell takes its feature's median over all rows seen in fit; robust to outliers."""

    def _make_imputer(self) -> SimpleImputer:
        return SimpleImputer(strategy="median")


class KNNBaseline(_AcrossRows):
    """Mean (or distance-weighted mean) of the ``n_neighbors`` most similar rows seen in fit.

    Distances are taken on standardised features, so a feature in large units (pascals next to
    degrees) does not decide on its own which rows are neighbours.

    Args:
        n_neighbors: rows averaged per missing cell.
        weights: ``"uniform"`` or ``"distance"`` (closer rows count more).
    """

    def __init__(
        self, n_neighbors: int = 5, weights: Literal["uniform", "distance"] = "uniform"
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights

    def _fit(self, panel: np.ndarray) -> None:
        rows = _rows(panel)
        self.scaler_ = StandardScaler().fit(rows)
        self.imputer_ = self._make_imputer().fit(self.scaler_.transform(rows))

    def _fill(self, panel: np.ndarray, time_index: pd.Index | None) -> np.ndarray:
        scaled = self.imputer_.transform(self.scaler_.transform(_rows(panel)))
        return self.scaler_.inverse_transform(scaled).reshape(panel.shape)

    def _make_imputer(self) -> KNNImputer:
        return KNNImputer(n_neighbors=self.n_neighbors, weights=self.weights)


class MICEBaseline(_AcrossRows):
    """Multiple imputation by chained equations: each feature regressed on the others in turn.

    Uses ``IterativeImputer`` with ``BayesianRidge``. ``transform`` returns one point estimate;
    with ``sample_posterior=True`` it is one posterior draw instead of the posterior mean, which
    is what you want when calling it repeatedly with different seeds to get several imputations.

    Args:
        max_iter: rounds over all features.
        sample_posterior: draw from the predictive posterior instead of taking its mean.
        random_state: seed for the feature order and posterior draws.
    """

    def __init__(
        self,
        max_iter: int = 10,
        sample_posterior: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.max_iter = max_iter
        self.sample_posterior = sample_posterior
        self.random_state = random_state

    def _make_imputer(self) -> IterativeImputer:
        return IterativeImputer(
            estimator=BayesianRidge(),
            max_iter=self.max_iter,
            sample_posterior=self.sample_posterior,
            random_state=self.random_state,
        )


_FORESTS = {"extra_trees": ExtraTreesRegressor, "random_forest": RandomForestRegressor}


class MissForestBaseline(_AcrossRows):
    """MissForest-style imputation: chained equations with a tree ensemble per feature.

    Catches non-linear relations between features that MICE's linear model misses. Defaults are
    small (10 trees, 5 rounds) to keep benchmark runs fast; the original MissForest uses 100
    random-forest trees and up to 10 rounds.

    Args:
        n_estimators: trees per ensemble.
        max_iter: rounds over all features.
        forest: ``"extra_trees"`` (faster) or ``"random_forest"`` (as in the original paper).
        random_state: seed for the trees and the imputation order.
    """

    def __init__(
        self,
        n_estimators: int = 10,
        max_iter: int = 5,
        forest: Literal["extra_trees", "random_forest"] = "extra_trees",
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_iter = max_iter
        self.forest = forest
        self.random_state = random_state

    def _make_imputer(self) -> IterativeImputer:
        if self.forest not in _FORESTS:
            raise ValueError(f"forest must be one of {sorted(_FORESTS)}; got {self.forest!r}")
        trees = _FORESTS[self.forest](
            n_estimators=self.n_estimators, random_state=self.random_state
        )
        return IterativeImputer(
            estimator=trees, max_iter=self.max_iter, random_state=self.random_state
        )


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------

BASELINES: dict[str, type[BaselineImputer]] = {
    "mean": MeanBaseline,
    "median": MedianBaseline,
    "locf": LOCFBaseline,
    "nocb": NOCBBaseline,
    "linear": LinearInterpolationBaseline,
    "time": TimeInterpolationBaseline,
    "knn": KNNBaseline,
    "mice": MICEBaseline,
    "missforest": MissForestBaseline,
}


def make_baseline(name: str, **params: Any) -> BaselineImputer:
    """Build a baseline by its registry name, e.g. ``make_baseline("knn", n_neighbors=3)``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; valid names are {sorted(BASELINES)}")
    return BASELINES[name](**params)
