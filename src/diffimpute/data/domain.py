"""The values a feature can take: never negative, whole numbers, or any real.

Learned from the observed training values at ``fit``: a feature whose observed values are all
``>= 0`` (precipitation, counts, concentrations) gets non-negative imputations, and one whose
observed values are all whole numbers gets whole-number imputations. Applied to every draw, so
medians, quantiles and intervals respect the domain too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FeatureDomain:
    """Per feature ``(features,)``: clamp draws at zero? round them to whole numbers?"""

    nonnegative: np.ndarray
    integer: np.ndarray

    @classmethod
    def of(cls, panel: np.ndarray, *, nonnegative: bool = True, integer: bool = True) -> FeatureDomain:
        """Learn the domain of each feature from the observed cells of ``panel (..., features)``."""
        flat = panel.reshape(-1, panel.shape[-1])
        observed = ~np.isnan(flat)
        with np.errstate(invalid="ignore"):
            never_negative = np.all((flat >= 0) | ~observed, axis=0)
            whole = np.all((flat == np.round(flat)) | ~observed, axis=0)
        return cls(never_negative & nonnegative, whole & integer)

    def apply(self, draws: np.ndarray) -> np.ndarray:
        """Draws ``(..., features)`` in original units, moved into each feature's domain."""
        out = np.where(self.nonnegative, np.maximum(draws, 0.0), draws)
        return np.where(self.integer, np.round(out), out)

    def to_dict(self) -> dict:
        return {"nonnegative": self.nonnegative.tolist(), "integer": self.integer.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> FeatureDomain:
        return cls(np.asarray(state["nonnegative"], dtype=bool), np.asarray(state["integer"], dtype=bool))
