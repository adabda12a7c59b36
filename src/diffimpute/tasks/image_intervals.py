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

The quantiles of the normalised residuals, per channel and per place in its hole (``hole_bins``:
a pixel deep in a hole misses more than one next to given pixels, and the rim of a thick hole
more than a scattered pixel), are the predictive distribution: draws are the guess plus the local
spread times draws from those quantiles. They are fitted on fresh holes in the held-out images
(``GuessIntervals``), several per image, scattered and rectangles up to three quarters of the
sides: the holes held out from training are too few and too small to fill the deep bins, and
rectangles only up to half the sides left 4 x 4 holes in digits at 0.80-0.85 coverage.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from diffimpute.data.batch import Windows
from diffimpute.diffusion.noise import RowUniform
from diffimpute.engine.calibration import N_GAP_BINS, binned_quantile_draws, residual_quantiles
from diffimpute.engine.sampling import SampleOutput
from diffimpute.masking.image import image_targets
from diffimpute.metrics.imputation import summarize
from diffimpute.tasks.held_out import HeldCells, HeldOut, UnseenResiduals, reported_cells

_DISTANCE_EDGES = (1, 2, 4)  # Chebyshev distance to the nearest given pixel: 1 (thin or rim), 2, 3-4, farther
_RADIUS = 2  # roughness is averaged over (2 * radius + 1) ** 2 pixels
_PRIOR_PIXELS = 2.0  # weight of the image's own roughness in each local average, in given pixels
_FOLDS = 5  # folds of given pixels for the guess's own error
_FLOOR_SHARE = 0.03  # the floor, as a share of the median local spread (chosen on validation photo patches)
_HOLES_PER_IMAGE, _MAX_HOLES = 8, 2048  # fresh holes per held-out image the quantiles are fitted on, and in all
# Scattered pixels at 10-60 % or a rectangle up to three quarters of the sides, half the holes each
# (half the sides: 4 x 4 digit holes at 0.80-0.85 coverage; the full sides: 0.95-0.97).
_HOLE_RATES, _HOLE_LARGEST = (0.1, 0.6), 0.75
assert len(_DISTANCE_EDGES) + 2 <= N_GAP_BINS  # hole_bins' bins are rows of the residual quantile tables


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


def hole_bins(given: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bin ``0 .. N_GAP_BINS - 1`` of each pixel's place in its hole, shaped like ``given``: 0 next to
    a given pixel (Chebyshev distance 1) with every neighbour next to one too (a thin hole), 1 next
    to a given pixel on the rim of a thicker hole, then distance 2, 3-4 and farther. Given pixels
    are in bin 0; a channel with none given is in the last bin."""
    reached = _as_maps(given, height, width) > 0
    distance = torch.where(reached, 0, _DISTANCE_EDGES[-1] + 1)
    for step in range(1, _DISTANCE_EDGES[-1] + 1):
        reached = F.max_pool2d(reached.double(), 3, stride=1, padding=1) > 0
        distance = torch.where(reached & (distance > step), step, distance)
    deepest_neighbour = F.max_pool2d(distance.double(), 3, stride=1, padding=1).numpy()
    distance = distance.numpy()
    bins = np.searchsorted(np.asarray(_DISTANCE_EDGES), distance, side="left") + 1
    bins = np.where((distance == 0) | (deepest_neighbour <= 1), 0, bins)
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


class GuessIntervals:
    """The guess's predictive distribution for ``ImageInpainter`` (see the module notes): fitted
    on fresh holes in the held-out images, drawn scaled by each pixel's local spread."""

    def _sides(self) -> tuple[int, int]:
        return self.layout_.height, self.layout_.width

    def _raw_spread(self, windows: Windows, given: np.ndarray, device) -> np.ndarray:
        """The guess's local error at given pixels it did not see, ``(windows, channels, pixels)``."""
        def guess(mask: np.ndarray) -> np.ndarray:
            return self._guess_of(windows, torch.from_numpy(mask), device).numpy().astype(np.float64)

        return fold_error(guess, windows.values.numpy().astype(np.float64), given, *self._sides())

    def _local_residuals(self, guess: np.ndarray, arrays: HeldCells, device,
                         floor: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Held-out residuals over the local spread, the spread and the hole bins, each ``(windows,
        channels, pixels)``; without a ``floor``, sets ``spread_floor_`` from the target pixels."""
        truth = torch.from_numpy(arrays.truth)
        windows = Windows(values=truth, observed=torch.from_numpy(arrays.given), positions=torch.zeros(truth.shape[::2]))
        raw = self._raw_spread(windows, arrays.given, device)
        if floor is None:
            self.spread_floor_ = floor = spread_floor(raw, arrays.target & self._interval_channels()[None, :, None])
        spread = np.hypot(raw, floor)
        return (arrays.truth - guess) / spread, spread, hole_bins(arrays.given, *self._sides())

    def _guess_residual_table(self, guess: np.ndarray, arrays: HeldCells, unseen: UnseenResiduals | None = None,
                              target: np.ndarray | None = None) -> np.ndarray:
        """Quantiles of the guess's residuals at held-out ``target`` pixels (default all) over each
        pixel's local spread, per channel and hole bin: texture-aware, where the series' are per gap
        length (an image guess sees every training image: no ``unseen`` cells)."""
        residual, _, bins = self._local_residuals(guess, arrays, torch.device("cpu"))
        target = arrays.target if target is None else target
        return residual_quantiles(residual[target], arrays.feature[target], bins[target], self._n_channels())

    def _fresh_holes(self, held: HeldOut) -> tuple[HeldOut, np.ndarray]:
        """``_HOLES_PER_IMAGE`` copies of each held-out image (fewer where that passes ``_MAX_HOLES``),
        with fresh holes in its observed pixels (the guess never saw these images, so any of their
        pixels may be hidden), and the number of the image each copy is of."""
        images = torch.arange(len(held)).repeat(max(1, min(_HOLES_PER_IMAGE, _MAX_HOLES // len(held))))
        windows = held.windows[images]
        generator = torch.Generator().manual_seed(self.seed_ + 3)
        target = image_targets(windows.observed, *self._sides(), generator, rates=_HOLE_RATES,
                               largest=_HOLE_LARGEST)
        return HeldOut(windows, target), images.numpy()

    def _calibrate_guess(self, held: HeldOut, device: torch.device,
                         unseen: UnseenResiduals | None = None) -> None:
        """The guess's predictive distribution from its residuals over the local spread at fresh holes
        in the held-out images, and an honest ``validation_`` on the holes held out from training:
        even images scored with quantiles fitted on odd ones and vice versa."""
        arrays = held.cells()
        target = arrays.target & self._interval_channels()[None, :, None]
        if not target.any():
            return
        fresh, image_of = self._fresh_holes(held)
        fresh_arrays = fresh.cells()
        fresh_guess = self._guess_of(fresh.windows, fresh.cond_mask, device).numpy().astype(np.float64)
        fresh_residual, _, fresh_bins = self._local_residuals(fresh_guess, fresh_arrays, device)
        fresh_target = fresh_arrays.target & self._interval_channels()[None, :, None]

        def table_from(copies: np.ndarray) -> np.ndarray:
            cells = fresh_target & copies[:, None, None]
            return residual_quantiles(fresh_residual[cells], fresh_arrays.feature[cells], fresh_bins[cells],
                                      self._n_channels())

        guess = self._guess_of(held.windows, held.cond_mask, device).numpy().astype(np.float64)
        _, spread, bins = self._local_residuals(guess, arrays, device, floor=self.spread_floor_)
        rng = np.random.default_rng(self.seed_ + 1)
        draws = np.broadcast_to(guess, (self.calibration_samples * 4, *guess.shape)).copy()
        even = arrays.even
        if (target & even).any() and (target & ~even).any():
            for parity, scored in ((0, even), (1, ~even)):
                table = for_sample_quantiles(table_from(image_of % 2 != parity), len(draws))
                noise = binned_quantile_draws(table, bins, arrays.given, len(draws), rng)
                draws = np.where(scored[None], guess + noise * spread, draws)
        self.residual_quantiles_ = table_from(np.ones(len(image_of), dtype=bool))
        reported = reported_cells(target, arrays)
        guess_error = np.abs(guess - arrays.truth)
        self._report(reported, float(guess_error[reported].mean()), summarize(draws, arrays.truth, reported), np.nan,
                     guess_error)

    def _guess_draws(self, windows: Windows, cond_mask, n_samples, generator, device, on_chunk,
                     row_ids: torch.Tensor) -> SampleOutput:
        """The guess plus the local spread times residuals drawn from ``residual_quantiles_``, keyed
        per image by ``row_ids`` as the network's noise is; channels outside ``_interval_channels``
        keep the guess in every draw."""
        if self.spread_floor_ is None:  # no quantiles in local units: none at all, or a file saved before them
            return super()._guess_draws(windows, cond_mask, n_samples, generator, device, on_chunk, row_ids)
        guess = self._guess_of(windows, cond_mask, device, on_chunk)
        draws = guess.unsqueeze(1).repeat(1, n_samples, 1, 1)  # (images, samples, channels, pixels)
        per_pass = max(1, self.max_cells_per_pass // (self._cells_per_window() * n_samples))
        table = for_sample_quantiles(self.residual_quantiles_, n_samples)
        for rows in torch.arange(len(windows)).split(per_pass):
            given = cond_mask[rows].numpy()
            spread = np.hypot(self._raw_spread(windows[rows], given, device), self.spread_floor_)
            spread = spread * self._interval_channels()[:, None]
            rng = RowUniform(generator.initial_seed(), row_ids[rows])
            bins = hole_bins(given, *self._sides())
            noise = binned_quantile_draws(table, bins, given, n_samples, rng) * spread
            draws[rows] = guess[rows].unsqueeze(1) + torch.from_numpy(noise.transpose(1, 0, 2, 3)).to(guess.dtype)
        return SampleOutput(samples=draws, guess=guess)
