"""Per-feature standardisation fitted on observed values only (NaNs are ignored, never imputed)."""

from __future__ import annotations

import numpy as np


class FeatureScaler:
    """Z-scores each feature (last axis) with the mean and std of its observed entries.

    A constant feature gets scale 1 so it maps to zeros instead of dividing by zero.
    """

    def fit(self, values: np.ndarray) -> FeatureScaler:
        flat = values.reshape(-1, values.shape[-1])
        self.mean_ = np.nanmean(flat, axis=0)
        std = np.nanstd(flat, axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    @classmethod
    def fit_min_max(cls, values: np.ndarray) -> FeatureScaler:
        """Maps each feature's observed range to [0, 1] (ImDiffusion's preprocessing), same transform."""
        flat = values.reshape(-1, values.shape[-1])
        low, span = np.nanmin(flat, axis=0), np.nanmax(flat, axis=0) - np.nanmin(flat, axis=0)
        return cls.from_dict({"mean": low.tolist(), "scale": np.where(span > 0, span, 1.0).tolist()})

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean_) / self.scale_

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return values * self.scale_ + self.mean_

    def to_dict(self) -> dict:
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> FeatureScaler:
        scaler = cls()
        scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
        scaler.scale_ = np.asarray(state["scale"], dtype=np.float64)
        return scaler
