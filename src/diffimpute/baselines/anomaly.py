"""Anomaly scorers that a diffusion detector has to beat, behind one small interface.

Each scorer is a scikit-learn estimator: ``fit(X)`` on normal (training) data ``(time, features)``
and ``score(X)`` gives one anomaly score per time step ``(time,)``, higher meaning more anomalous.
Features are standardised with a ``StandardScaler`` fitted on the training data, so a scorer is
not dominated by whichever feature has the largest units. Scores are raw: turn them into
decisions with a threshold from ``diffimpute.postprocess``.

``random`` is the floor every benchmark table needs: whatever a protocol (point adjustment,
oracle thresholds) gives to noise is not skill. ``pca-window``, ``diff`` and ``rollvar`` are the
kind of simple scorers that TSB-AD (Liu & Paparrizos, NeurIPS 2024) found hard to beat: each
looks at a short stretch of time rather than a single row, so it sees spikes, bursts of noise
and broken dynamics that a row-wise scorer misses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted

AnomalyBaselineName = Literal["random", "pca", "iforest", "kmeans", "pca-window", "diff", "rollvar"]

# ---------------------------------------------------------------------------- helpers


def _check_window(window: object, smallest: int) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < smallest:
        raise ValueError(f"window must be an integer >= {smallest}, got {window!r}")
    return int(window)


def _windows(Z: np.ndarray, window: int) -> np.ndarray:
    """Every run of ``window`` rows, flattened ``(time - window + 1, window * features)``."""
    return sliding_window_view(Z, window, axis=0).reshape(len(Z) - window + 1, -1)


def _centred(per_window: np.ndarray, window: int) -> np.ndarray:
    """One value per step from one per window: each step takes the window centred on it, and the
    first and last ``window // 2`` steps, which have no such window, the nearest whole one."""
    length = len(per_window) + window - 1
    return per_window[np.clip(np.arange(length) - window // 2, 0, len(per_window) - 1)]


def _changes(Z: np.ndarray) -> np.ndarray:
    """Step-to-step change of every feature ``(time, features)``; the first step, which has no
    predecessor, takes the second's."""
    change = np.diff(Z, axis=0)
    return np.concatenate((change[:1], change))


def _fit_pca(rows: np.ndarray, n_components: int | float, what: str) -> PCA:
    """PCA of ``rows`` ``(n, dims)`` keeping fewer than ``dims`` components, or every error is 0.

    A variance fraction that only all components reach (dimensions that barely correlate, such
    as independent sensors) keeps all but one instead; a count that keeps all is an error.
    """
    pca = PCA(n_components=n_components).fit(rows)
    if pca.n_components_ < rows.shape[1]:
        return pca
    if isinstance(n_components, float) and rows.shape[1] > 1:
        return PCA(n_components=rows.shape[1] - 1).fit(rows)
    raise ValueError(
        f"n_components={n_components!r} keeps all {rows.shape[1]} {what}, so every "
        "reconstruction error would be 0; pass fewer components"
    )


def _reconstruction_error(pca: PCA, rows: np.ndarray) -> np.ndarray:
    residual = rows - pca.inverse_transform(pca.transform(rows))
    return np.sum(residual**2, axis=1)


# ---------------------------------------------------------------------------- the shared contract


class AnomalyScorer(BaseEstimator, ABC):
    """Validate and standardise in ``fit`` / ``score``; subclasses score standardised rows."""

    def fit(self, X: np.ndarray, y: None = None) -> AnomalyScorer:
        """Learn normal behaviour from ``X`` ``(time, features)``; ``y`` is ignored."""
        values = self._rows(X)
        self.scaler_ = StandardScaler().fit(values)
        self.n_features_in_ = values.shape[1]
        self._fit(self.scaler_.transform(values))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per time step ``(time,)`` for ``X`` ``(time, features)``."""
        check_is_fitted(self, "scaler_")
        values = self._rows(X)
        if values.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {values.shape[1]} features but {type(self).__name__} was fitted with "
                f"{self.n_features_in_}; pass the same features as at fit"
            )
        return self._score(self.scaler_.transform(values))

    def _min_rows(self) -> int:
        """Fewest rows ``fit`` and ``score`` accept; a scorer of stretches of time needs more."""
        return 1

    def _rows(self, X: np.ndarray) -> np.ndarray:
        values = check_array(X, dtype=np.float64, input_name="X")
        needed = self._min_rows()
        if len(values) < needed:
            raise ValueError(
                f"X has {len(values)} rows but {type(self).__name__} needs at least {needed} with "
                f"its parameters {self.get_params()}; pass a longer series or a shorter window"
            )
        return values

    @abstractmethod
    def _fit(self, Z: np.ndarray) -> None:
        """Learn from standardised training rows ``(time, features)``."""

    @abstractmethod
    def _score(self, Z: np.ndarray) -> np.ndarray:
        """Scores ``(time,)`` for standardised rows ``(time, features)``."""


# ---------------------------------------------------------------------------- scorers


class RandomScorer(AnomalyScorer):
    """Uniform random scores: the floor, and a reference for how much a protocol flatters noise.

    Args:
        seed: seed of the NumPy generator; the same seed and length give the same scores.
    """

    def __init__(self, seed: int | None = 0) -> None:
        self.seed = seed

    def _fit(self, Z: np.ndarray) -> None:
        pass  # nothing to learn beyond the shared validation

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(Z))


class PCAReconstruction(AnomalyScorer):
    """Squared error of reconstructing each row from the main principal components.

    Normal rows lie near the subspace the training data span; a row that breaks the usual
    correlations between features does not.

    Args:
        n_components: components kept, as a count or, below 1, the fraction of variance to
            explain (scikit-learn's ``PCA``). It must keep fewer than all features, or every
            reconstruction is exact and every score 0: a count that keeps all is an error, a
            fraction that needs all keeps all but one.
    """

    def __init__(self, n_components: int | float = 0.9) -> None:
        self.n_components = n_components

    def _fit(self, Z: np.ndarray) -> None:
        self.pca_ = _fit_pca(Z, self.n_components, "features")

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return _reconstruction_error(self.pca_, Z)


class IsolationForestScorer(AnomalyScorer):
    """Isolation forest (Liu et al., 2008): rows isolated by few random splits score high.

    Args:
        n_estimators: number of trees.
        random_state: seed of the forest, for repeatable scores.
    """

    def __init__(self, n_estimators: int = 100, random_state: int | None = 0) -> None:
        self.n_estimators = n_estimators
        self.random_state = random_state

    def _fit(self, Z: np.ndarray) -> None:
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state
        ).fit(Z)

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return -self.forest_.score_samples(Z)  # scikit-learn's is higher for normal rows


class KMeansDistance(AnomalyScorer):
    """Distance from each row to the nearest k-means centroid of the training data.

    Args:
        n_clusters: number of centroids (normal operating modes).
        random_state: seed of the k-means initialisation.
    """

    def __init__(self, n_clusters: int = 8, random_state: int | None = 0) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state

    def _fit(self, Z: np.ndarray) -> None:
        self.kmeans_ = KMeans(
            n_clusters=self.n_clusters, n_init=10, random_state=self.random_state
        ).fit(Z)

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return self.kmeans_.transform(Z).min(axis=1)


class WindowPCA(AnomalyScorer):
    """PCA reconstruction error of sub-sequences: ``window`` rows of every feature, flattened.

    A row-wise PCA sees how features relate at one instant; a window also holds how each of them
    moves, so a changed frequency or a channel that leaves its partners' dynamics leaves a
    residual even when every single row looks normal. It works on one feature too. Each
    step gets the error of the window centred on it (as TSB-AD scores sub-sequences).

    Args:
        window: rows per sub-sequence; ``fit`` and ``score`` need at least this many.
        n_components: components kept, as a count or, below 1, the fraction of variance to
            explain; as for ``pca``, fewer than the ``window * features`` values of a window.
    """

    def __init__(self, window: int = 16, n_components: int | float = 0.9) -> None:
        self.window = window
        self.n_components = n_components

    def _min_rows(self) -> int:
        return _check_window(self.window, 1)

    def _fit(self, Z: np.ndarray) -> None:
        self.pca_ = _fit_pca(_windows(Z, self.window), self.n_components, "window values")

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return _centred(_reconstruction_error(self.pca_, _windows(Z, self.window)), self.window)


class FirstDifference(AnomalyScorer):
    """Squared step-to-step change summed over standardised features: ``sum_f (z_t - z_{t-1})^2``.

    The cheapest detector of spikes and sudden jumps; the first step, which has no predecessor,
    takes the second step's score.
    """

    def _min_rows(self) -> int:
        return 2

    def _fit(self, Z: np.ndarray) -> None:
        pass  # nothing to learn beyond the shared standardisation

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return np.sum(_changes(Z) ** 2, axis=1)


class RollingVariance(AnomalyScorer):
    """Rolling variance of each standardised feature's step-to-step changes over the ``window``
    steps centred on each step, over its mean in the training data, summed over features.

    Catches bursts of noise and changes of rhythm that leave the level unchanged. The variance
    of the changes rather than of the values: over a short window the values' variance mostly
    follows the slope of the signal's own oscillation, which hides the noise (AUC-PR on the noise
    bursts of ``bench/anomaly_suite.py``'s tune split: 0.76 against 0.05). The division puts a
    calm feature and a lively one on the same footing. The first and last ``window // 2`` steps
    take the nearest whole window.

    Args:
        window: rows per variance, at least 2; ``fit`` and ``score`` need at least this many.
    """

    def __init__(self, window: int = 16) -> None:
        self.window = window

    def _min_rows(self) -> int:
        return _check_window(self.window, 2)

    def _rolling_variance(self, Z: np.ndarray) -> np.ndarray:
        windows = sliding_window_view(_changes(Z), self.window, axis=0)
        return _centred(windows.var(axis=-1), self.window)

    def _fit(self, Z: np.ndarray) -> None:
        # a feature constant in training would divide by 0; any movement of it is then anomalous
        self.normal_variance_ = np.maximum(
            self._rolling_variance(Z).mean(axis=0), np.finfo(float).eps
        )

    def _score(self, Z: np.ndarray) -> np.ndarray:
        return np.sum(self._rolling_variance(Z) / self.normal_variance_, axis=1)


# ---------------------------------------------------------------------------- registry

ANOMALY_BASELINES: dict[str, type[AnomalyScorer]] = {
    "random": RandomScorer,
    "pca": PCAReconstruction,
    "iforest": IsolationForestScorer,
    "kmeans": KMeansDistance,
    "pca-window": WindowPCA,
    "diff": FirstDifference,
    "rollvar": RollingVariance,
}


def make_anomaly_baseline(name: AnomalyBaselineName, **params: Any) -> AnomalyScorer:
    """Build the anomaly baseline called ``name`` with constructor ``params``."""
    if name not in ANOMALY_BASELINES:
        raise ValueError(
            f"unknown anomaly baseline {name!r}; choose one of {sorted(ANOMALY_BASELINES)}"
        )
    return ANOMALY_BASELINES[name](**params)
