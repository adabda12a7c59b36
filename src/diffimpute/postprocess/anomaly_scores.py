"""From imputation evidence to one anomaly score per time step, in named, swappable stages.

1. ``cell_scores``: how far each observed cell lies from its imputed distribution --
   ``"error"`` (|mean of the draws - observed|, ImDiffusion's), ``"zscore"`` (that error over the
   draws' spread, so cells the model is unsure about count less) or ``"crps"`` (the continuous
   ranked probability score of the observed value under the draws).
2. ``standardise``: per diffusion step and feature, subtract the mean and divide by the spread of
   the same statistic on held-out normal data, so a feature that is hard to predict everywhere does
   not drown the others (``False`` keeps raw scaled units).
3. ``reduce_features``: ``"max"``, ``"sum"`` or ``"topk"`` (mean of the ``top_k`` largest) over features.
4. ``combine_steps``: the denoising steps' scores as an ensemble, ``"mean"`` or ImDiffusion's
   ``"vote"``; every statistic comes from the calibration scores, never from the scored data.
5. ``smooth``: a centred moving average over time.

``candidate_scores`` runs stages 2-5 per mask family and smoothing width, smoothing each feature
before the reduction, so a long shift in one feature is not averaged with the others' noise.

Arrays are NumPy with the step axis first: cells ``(steps, ..., time, features)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d

CellScore = Literal["error", "zscore", "crps"]
FeatureReduction = Literal["max", "sum", "topk"]
Ensemble = Literal["mean", "vote"]
# Spread floor for z-scores, in scaled units: below it the draws agree to rounding and a z-score
# would turn numerical noise into a large score.
_MIN_SPREAD = 1e-2

# ---------------------------------------------------------------------------- cells


def cell_scores(draws: torch.Tensor, observed: torch.Tensor, kind: CellScore) -> torch.Tensor:
    """Per-cell score of ``observed`` ``(n, features, length)`` under ``draws`` ``(n, samples,
    features, length)`` (a single draw gives the absolute error for every kind)."""
    error = (draws.mean(dim=1) - observed).abs()
    if kind == "error" or draws.shape[1] == 1:
        return error
    if kind == "zscore":
        return error / draws.std(dim=1).clamp(min=_MIN_SPREAD)
    # CRPS = E|X - y| - E|X - X'| / 2, the second term from the sorted draws in O(S log S).
    n_draws = draws.shape[1]
    spread_to_truth = (draws - observed.unsqueeze(1)).abs().mean(dim=1)
    ordered = draws.sort(dim=1).values
    weights = (2 * torch.arange(n_draws, dtype=draws.dtype, device=draws.device) - n_draws + 1).view(1, -1, 1, 1)
    pairwise = 2 * (weights * ordered).sum(dim=1) / n_draws**2
    return spread_to_truth - 0.5 * pairwise


# ---------------------------------------------------------------------------- calibration statistics


@dataclass
class CellStatistics:
    """Per step and feature location and spread of calibration cell scores, each ``(steps, features)``."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, cells: np.ndarray) -> CellStatistics:
        """From calibration cells ``(steps, ..., features)``."""
        flat = cells.reshape(cells.shape[0], -1, cells.shape[-1])
        std = flat.std(axis=1)
        floor = np.maximum(1e-6, 1e-3 * std.mean(axis=1, keepdims=True))
        return cls(mean=flat.mean(axis=1), scale=np.maximum(std, floor))


def standardise(cells: np.ndarray, stats: CellStatistics) -> np.ndarray:
    """z-scores of ``cells`` ``(steps, ..., features)`` against the calibration ``stats``."""
    shape = (cells.shape[0],) + (1,) * (cells.ndim - 2) + (cells.shape[-1],)
    return (cells - stats.mean.reshape(shape)) / stats.scale.reshape(shape)


# ---------------------------------------------------------------------------- reductions


def reduce_features(cells: np.ndarray, how: FeatureReduction, top_k: int = 3) -> np.ndarray:
    """``(..., features)`` -> ``(...)``."""
    if how == "max":
        return cells.max(axis=-1)
    if how == "sum":
        return cells.sum(axis=-1)
    k = min(top_k, cells.shape[-1])
    return np.sort(cells, axis=-1)[..., -k:].mean(axis=-1)


def combine_steps(
    steps: np.ndarray, calibration: np.ndarray, how: Ensemble, vote_fraction: float = 0.02
) -> np.ndarray:
    """One score per time step from per-step scores ``(steps, ...)``; ``calibration`` is the same
    statistic on held-out normal data, ``(steps, n_calibration)``.

    ``"mean"``: the mean over steps after shifting and scaling each step by its calibration mean
    and standard deviation. ``"vote"`` (ImDiffusion): step ``s`` flags the calibration quantile
    ``1 - vote_fraction * spread_last / spread_s`` (noisier steps flag fewer points); the score is
    the number of votes plus, as a tie-break below one vote, the mean calibration rank.
    """
    shape = (-1,) + (1,) * (steps.ndim - 1)
    if how == "mean":
        centre, spread = calibration.mean(axis=1), calibration.std(axis=1).clip(min=1e-12)
        return ((steps - centre.reshape(shape)) / spread.reshape(shape)).mean(axis=0)
    spread = (calibration - calibration.min(axis=1, keepdims=True)).mean(axis=1).clip(min=1e-12)
    fraction = np.clip(vote_fraction * spread[0] / spread, 1.0 / calibration.shape[1], 1.0)
    cuts = np.array([np.quantile(c, 1 - f) for c, f in zip(calibration, fraction)])
    votes = (steps > cuts.reshape(shape)).sum(axis=0)
    ordered = np.sort(calibration, axis=1)
    ranks = np.stack([np.searchsorted(o, s, side="right") for o, s in zip(ordered, steps)]) / calibration.shape[1]
    return votes + 0.999 * ranks.mean(axis=0)


def smooth(scores: np.ndarray, width: int, axis: int = -1) -> np.ndarray:
    """Centred moving average over the time ``axis``; ``width=1`` returns the scores unchanged."""
    if width <= 1:
        return scores
    return uniform_filter1d(scores, size=width, axis=axis, mode="nearest")


def candidate_scores(
    cells: np.ndarray, calibration: np.ndarray, widths: tuple[int, ...], *, standardised: bool = True,
    reduction: FeatureReduction = "max", top_k: int = 3, ensemble: Ensemble = "mean", vote_fraction: float = 0.02,
) -> np.ndarray:
    """One score per mask family and smoothing width, ``(families x widths, series, time)``.

    ``cells`` and the held-out normal ``calibration`` cells are ``(families, steps, series, time,
    features)``. Each cell is standardised per family, step and feature on the calibration cells
    (if ``standardised``), smoothed along time per feature, reduced over features and combined
    over steps, the step statistics coming from the calibration cells treated the same way.
    """
    if standardised:
        stats = CellStatistics.of(calibration.reshape(-1, *calibration.shape[2:]))
        cells, calibration = (standardise(c.reshape(-1, *c.shape[2:]), stats).reshape(c.shape) for c in (cells, calibration))
    candidates = []
    for family, normal_family in zip(cells, calibration):
        for width in widths:
            steps = reduce_features(smooth(family, width, axis=-2), reduction, top_k)
            normal = reduce_features(smooth(normal_family, width, axis=-2), reduction, top_k)
            candidates.append(combine_steps(steps, normal.reshape(len(normal), -1), ensemble, vote_fraction))
    return np.stack(candidates)
