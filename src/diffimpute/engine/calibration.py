"""Split-conformal calibration of the samples' spread, so that intervals cover what they claim.

A briefly trained diffusion model is usually over- or under-confident: its draws cluster too
tightly (or too loosely) around their median. On held-out cells whose truth is known we find,
for each cell, the spread factor ``s`` its central interval needs to contain the truth, and take
the conformal quantile of those factors; ``median + s * (draws - median)`` then covers the
requested share. The median is unchanged, so point accuracy is unaffected.

Factors are kept per feature and per *gap length* (Mondrian conformal prediction): a cell next to
an observed value and a cell in the middle of a long outage need different widening, and a single
factor would over-cover the first and under-cover the second. The gap length of a cell is its
distance in steps to the nearest conditioning cell of the same feature in its window.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

GAP_EDGES = (1, 2, 4, 8)  # bins: 1, 2, 3-4, 5-8, longer
N_GAP_BINS = len(GAP_EDGES) + 1
_MIN_CELLS_PER_FEATURE = 100
_MIN_CELLS_PER_BIN = 30
_SPREAD_PRIOR_CELLS = 10  # cells at the pooled spread a feature's own spread is shrunk toward


def gap_bins(given: np.ndarray) -> np.ndarray:
    """Gap-length bin ``0 .. N_GAP_BINS - 1`` of every cell; ``given`` is ``(..., length)`` bool.

    Given cells are in bin 0 (they are never rescaled); a row with no given cell is in the last bin.
    """
    length = given.shape[-1]
    steps = np.broadcast_to(np.arange(length), given.shape)
    before = np.maximum.accumulate(np.where(given, steps, -length * 4), axis=-1)
    after = np.flip(np.minimum.accumulate(np.flip(np.where(given, steps, length * 5), -1), axis=-1), -1)
    distance = np.minimum(steps - before, after - steps)
    return np.searchsorted(np.asarray(GAP_EDGES), distance, side="left").clip(0, N_GAP_BINS - 1)


def needed_scales(samples: np.ndarray, truth: np.ndarray, level: float) -> np.ndarray:
    """Per cell, the spread factor whose ``level`` interval just reaches the truth.

    samples: ``(n_samples, cells)``; truth: ``(cells,)``. The interval's half-width is measured
    as the Gaussian quantile times the draws' standard deviation rather than by their extreme
    quantiles, so a factor fitted with few draws (as at ``fit``) holds for many (as at ``impute``).
    Infinite where the draws have no spread.
    """
    median = np.median(samples, axis=0)
    half_width = NormalDist().inv_cdf(0.5 + level / 2) * samples.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.abs(truth - median) / half_width
    return np.where(np.isfinite(needed), needed, np.inf)


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ``ceil((n + 1) level) / n`` empirical quantile: the split-conformal guarantee.

    Infinite scores count as misses; if the quantile itself is infinite the largest finite score
    is returned (the best any factor can do).
    """
    n = len(scores)
    if n == 0:
        return 1.0
    rank = min(n, math.ceil((n + 1) * level))
    value = float(np.sort(scores)[rank - 1])
    return value if np.isfinite(value) else float(np.max(scores[np.isfinite(scores)], initial=1.0))


def _per_feature_and_gap(values: np.ndarray, feature: np.ndarray, gap_bin: np.ndarray, n_features: int,
                         statistic) -> np.ndarray:
    """``statistic`` of ``values`` per (feature, gap bin): ``(n_features, N_GAP_BINS, *statistic's shape)``.

    A pair with fewer than 100 cells takes the statistic of its bin over all features; a bin with
    fewer than 30 cells that of the nearest shorter bin, or of all cells when there is none.
    """
    overall = statistic(values)
    pooled: list[np.ndarray] = []
    for b in range(N_GAP_BINS):
        own = values[gap_bin == b]
        if len(own) >= _MIN_CELLS_PER_BIN:
            pooled.append(statistic(own))
        else:
            pooled.append(pooled[-1] if pooled else overall)
    table = np.tile(np.stack(pooled), (n_features, *([1] * (np.ndim(overall) + 1))))
    for j in range(n_features):
        for b in range(N_GAP_BINS):
            own = values[(feature == j) & (gap_bin == b)]
            if len(own) >= _MIN_CELLS_PER_FEATURE:
                table[j, b] = statistic(own)
    return table


def spread_table(
    samples: np.ndarray, truth: np.ndarray, feature: np.ndarray, gap_bin: np.ndarray, n_features: int, level: float
) -> np.ndarray:
    """Spread factors ``(n_features, N_GAP_BINS)`` from held-out cells.

    samples ``(n_samples, cells)``; truth, feature, gap_bin ``(cells,)``; sparse pairs fall back
    as ``_per_feature_and_gap`` says.
    """
    needed = needed_scales(samples, truth, level)
    return _per_feature_and_gap(needed, feature, gap_bin, n_features, lambda own: conformal_quantile(own, level))


def cell_scales(table: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The factor of every cell of windows ``given (windows, features, length)`` from ``table``."""
    features = np.broadcast_to(np.arange(table.shape[0])[None, :, None], given.shape)
    return table[features, gap_bins(given)]


def rescale(samples: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``median + scales * (samples - median)`` along axis 0; ``scales`` broadcasts against one draw."""
    median = np.median(samples, axis=0, keepdims=True)
    return median + scales * (samples - median)


def residual_quantiles(
    residual: np.ndarray, feature: np.ndarray, gap_bin: np.ndarray, n_features: int, n_levels: int = 99
) -> np.ndarray:
    """Empirical quantiles ``(n_features, N_GAP_BINS, n_levels)`` of held-out residuals (truth minus
    guess, in units of each feature's residual scale), at levels ``(i + 0.5) / n_levels``.

    Used when the diffusion model did not beat its guess: the guess's own held-out errors are
    then its predictive distribution. Sparse (feature, bin) pairs fall back as in ``spread_table``,
    to quantiles pooled over features in units of each feature's spread (``_feature_spreads``); a
    pair with cells enough keeps its own quantiles.
    """
    levels = (np.arange(n_levels) + 0.5) / n_levels

    def quantiles(own: np.ndarray) -> np.ndarray:
        return np.quantile(own, levels) if len(own) else np.zeros(n_levels)

    spreads = _feature_spreads(residual, feature, gap_bin, n_features)
    table = _per_feature_and_gap(residual / spreads[feature], feature, gap_bin, n_features, quantiles)
    return table * spreads[:, None, None]


def _feature_spreads(residual: np.ndarray, feature: np.ndarray, gap_bin: np.ndarray, n_features: int) -> np.ndarray:
    """``(n_features,)`` each feature's mean absolute residual over what its cells' gap bins have
    across features, shrunk toward 1 by ``_SPREAD_PRIOR_CELLS``. Residuals come in units of a
    per-feature scale fitted elsewhere (the guess's error on training rows), which can be off by
    a factor of two between features; pooled quantiles would then cover one feature's cells
    half the time and another's always, though the average is right."""
    magnitude = np.abs(residual)
    per_bin = np.array([magnitude[gap_bin == b].mean() if (gap_bin == b).any() else 0.0 for b in range(N_GAP_BINS)])
    expected, prior = per_bin[gap_bin], _SPREAD_PRIOR_CELLS * (magnitude.mean() if len(magnitude) else 0.0)
    spreads = np.ones(n_features)
    for j in range(n_features):
        own = feature == j
        if own.any() and expected[own].sum() + prior > 0:
            spreads[j] = (magnitude[own].sum() + prior) / (expected[own].sum() + prior)
    return np.where(spreads > 0, spreads, 1.0)


def quantile_draws(table: np.ndarray, given: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_samples, windows, features, length)`` residual draws for windows ``given`` from ``table``,
    each cell from the row of its feature and gap-length bin (``binned_quantile_draws``)."""
    return binned_quantile_draws(table, gap_bins(given), given, n_samples, rng)


def binned_quantile_draws(
    table: np.ndarray, bins: np.ndarray, given: np.ndarray, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n_samples, windows, features, length)`` residual draws for windows ``given`` from ``table``
    ``(features, bins, levels)``, each cell from the row of its feature and its ``bins`` entry (an
    int array shaped like ``given``: a caller with its own strata, such as image distances).

    Each cell gets one draw per stratum of ``n_samples`` equal-probability strata (so few draws
    still span the distribution), in a random order per cell, shifted so that their median is
    exactly 0: the guess stays the point estimate. Given cells get 0.
    """
    n_levels = table.shape[-1]
    strata = (np.arange(n_samples)[:, None, None, None] + rng.random((n_samples, *given.shape))) / n_samples
    order = rng.random((n_samples, *given.shape)).argsort(axis=0)
    strata = np.take_along_axis(strata, order, axis=0)
    rows = table[np.arange(table.shape[0])[None, :, None], bins].reshape(-1, n_levels)  # (cells, levels)
    # Linear interpolation of each cell's quantile function at its strata (levels are (i + 0.5) / n).
    position = np.clip(strata.reshape(n_samples, -1).T * n_levels - 0.5, 0, n_levels - 1)  # (cells, samples)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, n_levels - 1)
    frac = position - low
    draws = np.take_along_axis(rows, low, axis=1) * (1 - frac) + np.take_along_axis(rows, high, axis=1) * frac
    draws = draws.T.reshape(n_samples, *given.shape)
    return np.where(given[None], 0.0, draws - np.median(draws, axis=0, keepdims=True))
