"""Intervals for filled pixels that are wide where the picture is busy and narrow where it is flat.

An interpolated pixel's error grows with the texture around it: a few grey levels in a clear sky,
tens at an edge or in foliage. Intervals calibrated per gap length alone (``engine.calibration``)
pool both, so held-out pixels of one texture (a validation set of sky) set a width that misses on
another (a test set of leaves). Here each hidden pixel's residual is divided by a *local spread*
seen at impute time, from the given pixels alone (normalised split-conformal prediction):

- the guess's own error at given pixels it did not see (each of five interleaved folds of the
  given pixels guessed from the other four), in root mean square over the given pixels within two
  pixels, shrunk towards the image's own value where few are near;
- a floor, a share of the typical spread, so that a perfectly flat patch still gets some width.

The quantiles of the normalised residuals, per channel and per distance to the nearest given
pixel (a pixel deep in a hole misses more than one next to given pixels), are the predictive
distribution: draws are the guess plus the local spread times draws from those quantiles.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

DISTANCE_EDGES = (1, 2, 4)  # Chebyshev distance to the nearest given pixel: 1, 2, 3-4, farther
_RADIUS = 2  # roughness is averaged over (2 * radius + 1) ** 2 pixels
_PRIOR_PIXELS = 2.0  # weight of the image's own roughness in each local average, in given pixels
_FOLDS = 5  # folds of given pixels for the guess's own error
_FLOOR_SHARE = 0.03  # the floor, as a share of the median local spread (chosen on validation photo patches)


def _as_maps(cells: np.ndarray, height: int, width: int) -> torch.Tensor:
    """``(windows, channels, height * width)`` to ``(windows * channels, 1, height, width)`` float64."""
    return torch.from_numpy(np.ascontiguousarray(cells, dtype=np.float64)).reshape(-1, 1, height, width)


def _local_rms(squared: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """RMS of ``squared`` over the ``usable`` pixels within ``_RADIUS``, shrunk towards the image's own;
    maps ``(n, 1, height, width)``."""
    box = torch.ones(1, 1, 2 * _RADIUS + 1, 2 * _RADIUS + 1, dtype=torch.float64)
    near_sum, near_count = F.conv2d(squared, box, padding=_RADIUS), F.conv2d(usable, box, padding=_RADIUS)
    own = squared.sum(dim=(2, 3), keepdim=True) / usable.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    return ((near_sum + _PRIOR_PIXELS * own) / (near_count + _PRIOR_PIXELS)).sqrt()


def fold_error(guess, values: np.ndarray, given: np.ndarray, height: int, width: int) -> np.ndarray:
    """Local RMS error of ``guess`` (a function of a given-mask, returning ``values``' shape) at given
    pixels it did not see: the given pixels are split into ``_FOLDS`` interleaved folds, each guessed
    from the others, so every given pixel gets an error of the guess as it is used."""
    rows, cols = np.divmod(np.arange(height * width), width)
    fold_of = (rows + 2 * cols) % _FOLDS  # a knight's-move lattice: each fold spread evenly
    squared = np.zeros(values.shape)
    for fold in range(_FOLDS):
        hidden = given & (fold_of == fold)
        squared = np.where(hidden, (guess(given & ~hidden) - values) ** 2, squared)
    return _local_rms(_as_maps(squared, height, width), _as_maps(given, height, width)).reshape(values.shape).numpy()


def spread_floor(spread: np.ndarray, target: np.ndarray) -> float:
    """The floor of the local spread, a share of its median over the held-out ``target`` pixels."""
    typical = float(np.median(spread[target])) if target.any() else 0.0
    return _FLOOR_SHARE * typical if typical > 0 else 1.0


def distance_bins(given: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bin ``0 .. len(DISTANCE_EDGES)`` of each pixel's Chebyshev distance to the nearest given pixel
    of its channel, shaped like ``given``; given pixels, and channels with none, are in bin 0 and
    the last bin."""
    reached = _as_maps(given, height, width) > 0
    distance = torch.where(reached, 0, DISTANCE_EDGES[-1] + 1)
    for step in range(1, DISTANCE_EDGES[-1] + 1):
        reached = F.max_pool2d(reached.double(), 3, stride=1, padding=1) > 0
        distance = torch.where(reached & (distance > step), step, distance)
    bins = np.searchsorted(np.asarray(DISTANCE_EDGES), distance.numpy(), side="left")
    return bins.reshape(given.shape)


def for_sample_quantiles(table: np.ndarray, n_samples: int) -> np.ndarray:
    """``table`` ``(..., levels)`` re-read so that ``n_samples`` stratified draws from it (one per
    stratum ``(k + u) / n``, ``engine.calibration``) have equal-tailed *sample* quantiles, as
    ``interval`` computes them (``np.quantile``), at the table's levels: the k-th smallest draw is
    read at level ``k / (n - 1)`` rather than ``(k + 0.5) / n``, which would make 30 draws' 90 %
    interval a 87 % one."""
    n_levels = table.shape[-1]
    levels = (np.arange(n_levels) + 0.5) / n_levels
    if n_samples < 2:
        return table
    wanted = np.clip((levels * n_samples - 0.5) / (n_samples - 1), levels[0], levels[-1])
    flat = table.reshape(-1, n_levels)
    return np.stack([np.interp(wanted, levels, row) for row in flat]).reshape(table.shape)
