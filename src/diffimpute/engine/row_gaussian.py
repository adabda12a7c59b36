"""A Gaussian over the features of one time step, for features with no reading at all (a dead sensor).

The diffusion model fills gaps from the values around them; a feature with no observed value in
the data given has none, and only the other features at the same step say anything of it. The
joint Gaussian of the training rows (mean and covariance of the scaled features) turns each draw's
other features into a draw of the dead ones: the conditional mean plus noise of the conditional
covariance, so the intervals are as wide as the other features leave them (the feature's whole
training spread when they say nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_FLOOR = 1e-2  # least eigenvalue of the covariance, as a share of the mean: no feature is known exactly


@dataclass(frozen=True)
class RowGaussian:
    """Mean ``(features,)`` and covariance ``(features, features)`` of the scaled training rows."""

    mean: np.ndarray
    covariance: np.ndarray

    @classmethod
    def fit(cls, panel: np.ndarray) -> RowGaussian:
        """From a scaled panel ``(series, time, features)`` with NaNs (pairwise complete rows)."""
        rows = pd.DataFrame(panel.reshape(-1, panel.shape[-1]))
        covariance = rows.cov().to_numpy()
        covariance = np.where(np.isfinite(covariance), covariance, 0.0)
        np.fill_diagonal(covariance, np.where(np.diag(covariance) > 0, np.diag(covariance), 1.0))
        values, vectors = np.linalg.eigh(covariance)  # pairwise estimates need not be positive definite
        values = np.clip(values, _FLOOR * values.mean(), None)
        return cls(mean=np.nan_to_num(rows.mean().to_numpy()), covariance=(vectors * values) @ vectors.T)

    def draw_dead(self, draws: np.ndarray, dead: np.ndarray, seed: int) -> np.ndarray:
        """Draws ``(samples, series, time, features)`` with the ``dead (series, features)`` columns
        replaced by draws from the Gaussian given each draw's other features at the same step."""
        out = draws.copy()
        rng = np.random.default_rng(seed)
        for series in np.flatnonzero(dead.any(axis=1)):
            d, o = dead[series], ~dead[series]
            noise = rng.standard_normal((*draws.shape[:1], draws.shape[2], int(d.sum())))
            out[:, series][..., d] = self._conditional(draws[:, series], d, o, noise)
        return out

    def _conditional(self, rows: np.ndarray, d: np.ndarray, o: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Draws of features ``d`` given features ``o`` of ``rows (samples, time, features)``."""
        s = self.covariance
        if not o.any():
            gain, residual = np.zeros((0, int(d.sum()))), s[np.ix_(d, d)]
        else:
            gain = np.linalg.solve(s[np.ix_(o, o)], s[np.ix_(o, d)])
            residual = s[np.ix_(d, d)] - s[np.ix_(d, o)] @ gain
        centre = self.mean[d] + (rows[..., o] - self.mean[o]) @ gain
        values, vectors = np.linalg.eigh((residual + residual.T) / 2)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))  # a square root that rounding cannot break
        return centre + noise @ root.T

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "covariance": self.covariance.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> RowGaussian:
        return cls(np.asarray(state["mean"], dtype=np.float64), np.asarray(state["covariance"], dtype=np.float64))
