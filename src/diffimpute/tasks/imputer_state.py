"""What a fitted series imputer writes to its file beside the weights, and reads back.

``DiffusionEstimator.save`` and ``load`` write the network's weights (safetensors) and parameters;
this is the rest of a ``DiffusionImputer``'s fitted state, as JSON: schema, scaling, feature
domains, the row Gaussian, calibration, training histories. ``_restore`` also reads files written
before some of that state existed (no row Gaussian, no per-channel guess choice), so old models
still load.

``ImputerState`` is a mixin of ``DiffusionImputer``; ``_restore`` rebuilds the network with the
imputer's ``_build_model``.
"""

from __future__ import annotations

import numpy as np
import torch

from diffimpute.data.domain import FeatureDomain
from diffimpute.data.scaling import FeatureScaler
from diffimpute.data.schema import Schema
from diffimpute.engine.row_gaussian import RowGaussian
from diffimpute.engine.trainer import TrainHistory


class ImputerState:
    """A ``DiffusionImputer``'s fitted state as JSON metadata, and back."""

    def _state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        state = {
            "schema": self.schema_.to_dict(),
            "scaler": self.scaler_.to_dict(),
            "domain": self.domain_.to_dict(),
            "row_gaussian": self.row_gaussian_.to_dict(),
            "observed_range": [r.tolist() for r in self.observed_range_],
            "window": self.window_,
            "n_features": self.n_features_in_,
            "interval_scale": self.interval_scale_.tolist(),
            "refines": self.refines_,
            "guess_channels": self.guess_channels_.tolist(),
            "residual_quantiles": None if self.residual_quantiles_ is None else self.residual_quantiles_.tolist(),
            "validation": self.validation_,
            "history": self.history_.to_dict(),
            "patch_model": self.patch_model_,
            "adapts_on_call": self.adapts_on_call_,
        }
        if self.guess == "latent":
            state["prior_history"] = self.prior_history_.to_dict()
        return state, {}

    def _restore(self, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.schema_ = Schema.from_dict(metadata["schema"])
        self.scaler_ = FeatureScaler.from_dict(metadata["scaler"])
        self.domain_ = FeatureDomain.from_dict(metadata["domain"])
        n_features = int(metadata["n_features"])  # files written before the row Gaussian: the marginal alone
        marginal = {"mean": [0.0] * n_features, "covariance": np.eye(n_features).tolist()}
        self.row_gaussian_ = RowGaussian.from_dict(metadata.get("row_gaussian", marginal))
        self.observed_range_ = tuple(np.asarray(r, dtype=np.float64) for r in metadata["observed_range"])
        self.window_ = int(metadata["window"])
        self.n_features_in_ = int(metadata["n_features"])
        self.patch_model_ = metadata.get("patch_model")
        self.pretrained_ = self.patch_model_ is not None
        self.adapts_on_call_ = bool(metadata.get("adapts_on_call", False))
        self.interval_scale_ = np.asarray(metadata["interval_scale"], dtype=np.float64)
        self.refines_ = bool(metadata["refines"])
        self.guess_channels_ = np.asarray(metadata.get("guess_channels", [False] * self.n_features_in_), dtype=bool)
        quantiles = metadata["residual_quantiles"]
        self.residual_quantiles_ = None if quantiles is None else np.asarray(quantiles, dtype=np.float64)
        self.validation_ = metadata["validation"]
        self.history_ = TrainHistory(**metadata["history"])
        if "prior_history" in metadata:
            self.prior_history_ = TrainHistory(**metadata["prior_history"])
        self.model_ = self._build_model()

    def save(self, path) -> None:
        """Write weights (safetensors) and config, scaler, schema, calibration and version (JSON) to one file."""
        adjacency = self.adjacency
        if adjacency is not None and not isinstance(adjacency, str):
            self.adjacency = np.asarray(adjacency, dtype=np.float64).tolist()  # JSON holds lists, not arrays
        try:
            super().save(path)
        finally:
            self.adjacency = adjacency
