"""90 % prediction sets for categorical cells, calibrated on held-out cells, and draws of levels from
probabilities.

The share of draws giving each level is a probability the model may hold too firmly or too
loosely. A cell's set takes its levels from the most to the least drawn until their shares add up
to a threshold; split-conformal calibration (adaptive prediction sets, Romano et al. 2020) picks
the threshold on held-out cells so that about 90 % of such sets hold the true level.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.9


def cumulative_before(shares: np.ndarray) -> np.ndarray:
    """``shares (cells, levels)`` -> ``(cells, levels)``: the summed share of the levels ranked
    above each level (more drawn; ties by level order). A level is in a cell's set when this is
    below the threshold, so the most drawn level always is."""
    order = np.argsort(-shares, axis=1, kind="stable")
    ranked = np.take_along_axis(shares, order, axis=1)
    before = np.cumsum(ranked, axis=1) - ranked
    out = np.empty_like(before)
    np.put_along_axis(out, order, before, axis=1)
    return out


def set_threshold(shares: np.ndarray, truth: np.ndarray, level: float = LEVEL) -> float:
    """The smallest threshold under which ``level`` of the held-out cells' sets (with the finite-
    sample correction) hold their true level; ``shares (cells, levels)``, ``truth (cells,)`` codes.
    Infinite (every level in every set) when too few cells to reach ``level``."""
    scores = cumulative_before(shares)[np.arange(len(truth)), truth]  # a set holds the truth if this < threshold
    rank = int(np.ceil((len(scores) + 1) * level))
    if rank > len(scores):
        return float("inf")
    return float(np.nextafter(np.sort(scores)[rank - 1], np.inf))


def in_set(shares: np.ndarray, threshold: float) -> np.ndarray:
    """``(cells, levels)`` True for the levels in each cell's prediction set."""
    return cumulative_before(shares) < threshold


def draw_levels(probabilities: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """``n`` draws of a level for each cell, in proportion to ``probabilities (cells, levels)``
    (each row adding to 1): systematic sampling, so each level is drawn ``n p`` times rounded up
    or down and the most drawn level is the most likely one unless another is within ``1 / n``
    of it (``n`` independent draws would often pick another); then shuffled, so that draw ``i`` of one column is not tied to draw ``i`` of
    another. ``uniform (n + 1, cells)`` in [0, 1): the offsets and the shuffle. -> ``(n, cells)`` codes."""
    n = len(uniform) - 1
    points = (np.arange(n)[:, None] + uniform[0]) / n  # (n, cells)
    cumulative = np.cumsum(probabilities, axis=1)
    levels = (points.T[:, :, None] >= cumulative[:, None, :-1]).sum(axis=2)  # (cells, n)
    order = np.argsort(uniform[1:].T, axis=1)
    return np.take_along_axis(levels, order, axis=1).T
