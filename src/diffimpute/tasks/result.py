"""The distribution of imputations, in the user's own units and container type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from diffimpute._validation import check_probability
from diffimpute.data.schema import from_panel


@dataclass
class ImputationResult:
    """Draws from the imputation distribution.

    samples: ``(n_samples, series, time, features)`` float64 in original units; observed cells hold
    the observed value in every draw. ``missing``: ``(series, time, features)`` True where imputed.
    Point summaries come back in the type of the data passed in (DataFrame or array, same shape,
    index, columns and dtypes) with observed cells untouched.
    ``guess``: the first estimate the diffusion model refined (interpolation or the latent
    prior's coarse reconstruction), in the same type; None for ``guess="none"``.
    """

    samples: np.ndarray
    missing: np.ndarray
    data: pd.DataFrame | np.ndarray
    guess: pd.DataFrame | np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return self.samples.shape[0]

    def median(self) -> pd.DataFrame | np.ndarray:
        return self._as_input(np.median(self.samples, axis=0))

    def mean(self) -> pd.DataFrame | np.ndarray:
        return self._as_input(self.samples.mean(axis=0))

    def quantile(self, q: float) -> pd.DataFrame | np.ndarray:
        """The ``q``-quantile of the draws at every missing cell."""
        return self._as_input(np.quantile(self.samples, check_probability(q, "q"), axis=0))

    def interval(self, alpha: float = 0.1) -> tuple[pd.DataFrame | np.ndarray, pd.DataFrame | np.ndarray]:
        """Central ``1 - alpha`` interval as (lower, upper); alpha=0.1 gives the 90 % interval."""
        alpha = check_probability(alpha, "alpha")
        return self.quantile(alpha / 2), self.quantile(1 - alpha / 2)

    def to_frame(self, quantiles: Sequence[float] = (0.05, 0.95)) -> pd.DataFrame:
        """One wide frame: the median under each column's name plus ``<column>_q<level>`` columns.

        For arrays and panels the frame is indexed by (series, time) and columns are numbered.
        """
        frames = {"": self.median()}
        for q in quantiles:
            frames[f"_q{q:g}"] = self.quantile(q)
        parts = []
        for suffix, part in frames.items():
            part = part if isinstance(part, pd.DataFrame) else _panel_frame(part)
            parts.append(part.rename(columns=lambda c, s=suffix: f"{c}{s}"))
        return pd.concat(parts, axis=1)

    def _as_input(self, panel: np.ndarray) -> pd.DataFrame | np.ndarray:
        return from_panel(panel, self.data)


def _panel_frame(values: np.ndarray) -> pd.DataFrame:
    panel = values if values.ndim == 3 else values[None]
    n_series, n_time, n_features = panel.shape
    index = pd.MultiIndex.from_product([range(n_series), range(n_time)], names=["series", "time"])
    return pd.DataFrame(panel.reshape(-1, n_features), index=index, columns=[str(i) for i in range(n_features)])
