"""How the detector turns imputations into scores and flags: the scoring half of ``ImDiffusionDetector``.

1. ``cell_scores`` gives, per mask family and kept diffusion step, every cell's score (error,
   z-score or CRPS). Families differ in segment length: long segments (half a window) make a
   hidden stretch be predicted from the other features and from normal time around it, so an
   anomalous stretch cannot condition its own imputation; short ones catch local breaks.
2. ``scores_from_cells``: per family and smoothing width, standardise each cell per feature on
   the calibration cells, smooth along time, reduce over features and combine the steps
   (``postprocess.anomaly_scores``); each such candidate is standardised on its calibration
   scores and the score is their mean, so one-step spikes and window-long episodes both stand out.
3. ``predict`` flags scores above a label-free threshold fitted on the calibration scores, kept
   only where the step's own unsmoothed evidence is unusual (smoothing spreads short events).

``CalibratedScoring`` is a mixin: it reads the fitted state the detector's ``fit`` sets
(``model_``, ``window_``, ``stride_``, ``n_segments_``, ``calibration_panel_``, ...), and keeps
the calibration cells in step with the sampling settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from diffimpute.data.batch import windows_from_panel
from diffimpute.data.schema import time_positions
from diffimpute.data.windowing import stitch
from diffimpute.diffusion.samplers import make_sampler
from diffimpute.engine.sampling import sample
from diffimpute.postprocess.anomaly_scores import candidate_scores, cell_scores
from diffimpute.postprocess.thresholds import (
    PercentileThreshold,
    POTThreshold,
    ScoreThreshold,
    SPOTThreshold,
)
from diffimpute.tasks.estimator import resolve_device

THRESHOLDS = {"percentile": PercentileThreshold, "pot": POTThreshold, "spot": SPOTThreshold}
_DEFAULT_WIDTHS = (1, 4, 16)  # plus the window: one-step spikes to window-long episodes


def as_tuple(value: int | Sequence[int] | None) -> tuple[int, ...] | None:
    """One setting or several, as a tuple (None stays None: the default is chosen in ``fit``)."""
    if value is None:
        return None
    return (value,) if isinstance(value, (int, np.integer)) else tuple(value)


def _nearest_visited(requested: Sequence[int], visited: Sequence[int]) -> list[int]:
    """The visited schedule steps nearest to each requested step, deduplicated, ascending."""
    grid = np.asarray(sorted(visited))
    return sorted({int(grid[np.abs(grid - s).argmin()]) for s in requested})


class CalibratedScoring:
    """Scores, calibration and flags of a fitted ``ImDiffusionDetector`` (see the module docstring)."""

    # ------------------------------------------------------------------ scoring internals
    def _make_sampler(self):
        return make_sampler(self._noise_schedule(), self.sampler, self.sampling_steps, self.ddim_eta)

    def vote_timesteps(self) -> list[int]:
        """Schedule steps whose ``x_0`` estimates are scored (``vote_steps`` mapped to visited steps)."""
        return _nearest_visited(list(self.vote_steps), self._make_sampler().timesteps)

    def network_passes_per_timestamp(self) -> float:
        """Denoiser evaluations each time step takes part in while scoring:
        masks (all families) x visited steps x draws x (window / stride) overlapping windows."""
        check_is_fitted(self, "window_")
        steps = len(self._make_sampler().timesteps)
        n_masks = len(self.n_segments_) * self.n_masks
        return float(n_masks * steps * self.n_samples * self.window_ / self.stride_)

    def _cells_key(self) -> tuple:
        """Settings that change cell scores; calibration cells are recomputed when they change."""
        return (self.sampler, self.sampling_steps, self.ddim_eta, self.n_samples, self.x0_clip, self.score,
                tuple(self.vote_timesteps()))

    def _cells(self, scaled: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Cell scores ``(families, kept steps, series, time, features)``: in each mask family
        every cell is scored under the one mask that hides it, stitched from the window in which
        each time step is most central."""
        n_series, n_time, n_features = scaled.shape
        windows, index = windows_from_panel(scaled, positions, self.window_, self.stride_)
        device = resolve_device(self.device)
        masks, sampler = self._masks(), self._make_sampler()
        n_masks, n_families = len(masks), len(self.n_segments_)
        mask_ids = torch.arange(n_masks) if self.train_masks == "same" else torch.full((n_masks,), n_masks)
        kept = self.vote_timesteps()
        value_range = None
        if self.x0_clip is not None:
            bound = torch.as_tensor(self.x0_clip * self.value_bound_, dtype=torch.float32).view(-1, 1)
            value_range = (-bound, bound)
        per_pass = max(1, self.max_cells_per_pass // (n_masks * self.n_samples * n_features * self.window_))
        generator = torch.Generator(device=device).manual_seed(self.seed_)
        out = np.empty((n_families, len(kept), len(windows), n_features, self.window_), dtype=np.float32)
        for start in range(0, len(windows), per_pass):
            chunk = windows[slice(start, start + per_pass)]
            n = len(chunk)
            repeated = dataclasses.replace(chunk.repeat_each(n_masks), mask_index=self._mask_index(mask_ids.repeat(n)))
            hidden = masks.repeat(n, 1, 1)
            result = sample(
                self.model_, sampler, repeated, ~hidden, self.n_samples, prediction=self.prediction,
                rows_per_pass=n * n_masks * self.n_samples, generator=generator, keep_steps=kept,
                value_range=value_range, unconditional=self.unconditional, device=device,
                row_ids=torch.arange(start * n_masks, (start + n) * n_masks),
            )
            for k, t in enumerate(kept):
                cells = cell_scores(result.steps[t], repeated.values, self.score) * hidden
                per_family = cells.view(n, n_families, self.n_masks, n_features, self.window_).sum(dim=2)
                out[:, k, start : start + n] = per_family.transpose(0, 1).numpy()
        return stitch(out.astype(np.float64), index, n_series, n_time)

    def _calibrate(self) -> None:
        if self.calibration_panel_ is None:
            raise ValueError("this detector was saved with include_data=False, without its calibration rows, so "
                             "it scores only with the sampling settings it was saved with; restore those "
                             f"({dict(zip(('sampler', 'sampling_steps', 'ddim_eta', 'n_samples', 'x0_clip', 'score'), self.cells_key_))}) or refit")
        self.calibration_cells_ = self._cells(self.calibration_panel_, self.calibration_positions_)
        self.cells_key_ = self._cells_key()

    def _ensure_calibrated(self) -> None:
        if self.cells_key_ != self._cells_key():
            self._calibrate()

    def _widths(self) -> tuple[int, ...]:
        """Smoothing widths, one candidate score each. By default one step, a few and up to the
        window, none wider than an eighth of the calibration rows, so each rests on several independent values."""
        if self.smoothing is not None:
            return tuple(sorted(set(as_tuple(self.smoothing))))
        widest = min(self.window_, max(1, self.calibration_cells_.shape[3] // 8))
        return tuple(sorted({min(w, widest) for w in _DEFAULT_WIDTHS + (self.window_,)}))

    def _evidence(self, cells: np.ndarray) -> np.ndarray:
        """Cells ``(families, steps, series, time, features)`` -> candidates ``(families x widths,
        series, time)`` before their own standardisation (``postprocess.anomaly_scores``)."""
        return candidate_scores(cells, self.calibration_cells_, self._widths(), standardised=self.standardise,
                                reduction=self.feature_reduction, top_k=self.top_k, ensemble=self.ensemble,
                                vote_fraction=self.vote_fraction)

    # ------------------------------------------------------------------ public scoring
    def cell_scores(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per-cell scores ``(steps, series, time, features)`` under the current ``score`` kind, one
        slice per kept diffusion step (ascending). Feed them to ``scores_from_cells`` to try
        standardisation, reductions, ensembles and smoothing without re-running the network."""
        check_is_fitted(self, "model_")
        panel = self._panel(X)
        self.schema_.check_matches(X, panel, "detector")
        if panel.shape[1] < self.window_:
            raise ValueError(
                f"X has {panel.shape[1]} rows but the detector's window is {self.window_}; "
                f"score at least {self.window_} rows or refit with a smaller window"
            )
        self._ensure_calibrated()
        return self._cells(self._scale(panel), time_positions(X))

    def _standardised(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of ``cells`` and of the calibration cells, ``(families, widths, series,
        time)`` each, standardised on the calibration candidates so that "unusual" means the same
        for all. The calibration's candidates are computed once and returned for reuse."""
        self._check_params()
        self._ensure_calibrated()
        if cells.shape[:2] != self.calibration_cells_.shape[:2]:
            raise ValueError("these cell scores were computed with other step settings; recompute them")
        shape = (len(cells), len(self._widths()))
        normal = self._evidence(self.calibration_cells_)
        flat = normal.reshape(len(normal), -1)
        centre, spread = flat.mean(axis=1), flat.std(axis=1).clip(min=1e-12)

        def standardised(evidence: np.ndarray) -> np.ndarray:
            scaled = (evidence - centre.reshape(-1, 1, 1)) / spread.reshape(-1, 1, 1)
            return scaled.reshape(*shape, *evidence.shape[1:])

        return standardised(self._evidence(cells)), standardised(normal)

    def scores_from_cells(self, cells: np.ndarray) -> np.ndarray:
        """Scores ``(series, time)`` from ``cell_scores`` output, under the current score settings:
        the mean of the standardised candidates (mask family x smoothing width), so one-step
        spikes and window-long episodes both stand out."""
        return self._standardised(cells)[0].mean(axis=(0, 1))

    def flags_from_cells(self, cells: np.ndarray) -> np.ndarray:
        """0/1 flags ``(series, time)``: the score crosses the label-free threshold and, when the
        widths include 1, the step's own unsmoothed evidence lies above the calibration's
        ``trim_percentile``. Smoothing spreads a short event's score onto its neighbours; the
        second condition keeps them unflagged."""
        candidates, normal = self._standardised(cells)
        threshold = self._threshold().fit(normal.mean(axis=(0, 1)).reshape(-1))
        flags = np.stack([threshold.predict(row) for row in candidates.mean(axis=(0, 1))])
        widths = self._widths()
        if self.trim_percentile is None or 1 not in widths:
            return flags
        unsmoothed = widths.index(1)
        own, normal_own = (c[:, unsmoothed].mean(axis=0) for c in (candidates, normal))
        return flags * (own >= np.percentile(normal_own, self.trim_percentile))

    def calibration_scores(self) -> np.ndarray:
        """Scores of the held-out calibration rows ``(time,)``, on which the threshold is fitted."""
        check_is_fitted(self, "model_")
        self._ensure_calibrated()
        return self.scores_from_cells(self.calibration_cells_).reshape(-1)

    def _threshold(self) -> ScoreThreshold:
        """The unfitted label-free threshold the settings name."""
        if isinstance(self.threshold, ScoreThreshold):
            return clone(self.threshold)
        if self.threshold == "percentile":
            return PercentileThreshold(self.threshold_percentile)
        return THRESHOLDS[self.threshold](self.threshold_risk, self.threshold_init_quantile)

    def fitted_threshold(self) -> ScoreThreshold:
        """The label-free threshold under the current settings, fitted on ``calibration_scores``."""
        return self._threshold().fit(self.calibration_scores())

    def anomaly_score(self, X: pd.DataFrame | np.ndarray) -> pd.Series | np.ndarray:
        """One score per time step, higher = more anomalous: a Series on ``X``'s index for a
        DataFrame, ``(time,)`` for a 2-D array, ``(series, time)`` for a 3-D panel."""
        return self._wrap(self.scores_from_cells(self.cell_scores(X)), X, "anomaly_score")

    def predict(self, X: pd.DataFrame | np.ndarray) -> pd.Series | np.ndarray:
        """0/1 flags per time step (1 = anomaly) from the label-free threshold."""
        return self._wrap(self.flags_from_cells(self.cell_scores(X)), X, "anomaly")

    def fit_predict(self, X: pd.DataFrame | np.ndarray, y: None = None) -> pd.Series | np.ndarray:
        """``fit(X).predict(X)``; the calibration rows are part of ``X`` and get scored too."""
        return self.fit(X).predict(X)

    def score_samples(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """scikit-learn's convention: the negated score, higher = more normal, as a NumPy array."""
        return -np.asarray(self.anomaly_score(X), dtype=np.float64)

    def _wrap(self, values: np.ndarray, X: pd.DataFrame | np.ndarray, name: str) -> pd.Series | np.ndarray:
        if isinstance(X, pd.DataFrame):
            return pd.Series(values[0], index=X.index.copy(), name=name)
        if np.asarray(X).ndim == 3:
            return values
        return pd.Series(values[0], name=name) if self._pandas_output() else values[0]
