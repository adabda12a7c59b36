"""The LSSDM latent prior of a series imputer: stage one of ``guess="latent"``.

With ``guess="latent"`` the first guess the diffusion model refines is a latent-space prior's
coarse reconstruction (LSSDM, arXiv 2409.08917; ``nn.latent_prior``). The prior trains first, by
masked reconstruction on the engine's trainer, with an optional graph penalty between features
(``adjacency``: None, the features' positive correlations, or the user's own weights); ``encode``
reads its posterior mean back out.

``LatentPriorStage`` is a mixin of ``DiffusionImputer``: it reads the imputer's parameters
(``latent_dim``, ``prior_*``, ``kl_weight``, ``adjacency``, ``graph_weight``, ``time_budget``,
``batch_size``) and fitted state (``n_features_in_``, ``seed_``, ``scaler_``, ``window_``,
``model_``), and sets ``prior_history_``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from diffimpute._validation import check_positive_int
from diffimpute.data.batch import Windows, windows_from_panel
from diffimpute.data.schema import time_positions
from diffimpute.data.windowing import stitch
from diffimpute.engine.checkpoint import Checkpointing
from diffimpute.engine.trainer import TrainConfig, train
from diffimpute.nn.latent_prior import LatentPrior, default_latent_dim, graph_laplacian, prior_loss

_PRIOR_BUDGET_SHARE = 0.25  # of ``time_budget``: the prior trains first, the refiner gets the rest


# ------------------------------------------------------------------------- helpers


def _correlation_graph(windows: Windows) -> torch.Tensor:
    """Positive Pearson correlations between features over cells observed in both (scaled units)."""
    values = windows.values.permute(1, 0, 2).reshape(windows.values.shape[1], -1).double()
    mask = windows.observed.permute(1, 0, 2).reshape(values.shape).double()
    both = mask @ mask.T
    products = (values * mask) @ (values * mask).T
    return (products / both.clamp(min=1.0)).clamp(min=0.0, max=1.0).float()


def _laplacian(adjacency, windows: Windows, n_features: int) -> torch.Tensor | None:
    """The prior's graph penalty from ``adjacency``: None, ``"correlation"`` or a matrix."""
    if adjacency is None:
        return None
    if isinstance(adjacency, str):
        if adjacency != "correlation":
            raise ValueError(f"adjacency must be None, 'correlation' or a (features, features) array, got {adjacency!r}")
        return graph_laplacian(_correlation_graph(windows))
    matrix = np.asarray(adjacency, dtype=np.float64)
    if matrix.shape != (n_features, n_features):
        raise ValueError(f"adjacency must have shape ({n_features}, {n_features}) to match the features, got {matrix.shape}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("adjacency must hold finite non-negative weights (0 = not connected)")
    return graph_laplacian(torch.from_numpy(matrix).float())


# ------------------------------------------------------------------------- mixin


class LatentPriorStage:
    """Trains, builds and reads the LSSDM latent prior of a ``DiffusionImputer`` (``guess="latent"``)."""

    def _fit_prior(self, train_windows: Windows, device: torch.device, checkpoint: Checkpointing | None,
                   resume: bool) -> LatentPrior:
        """Stage one of ``guess="latent"``: the LSSDM prior, by masked reconstruction, on the engine's trainer."""
        prior = self._build_prior()
        laplacian = _laplacian(self.adjacency, train_windows, self.n_features_in_)
        laplacian = None if laplacian is None else laplacian.to(device)

        def loss_fn(model, batch, generator, shard):
            return prior_loss(model, batch, generator, kl_weight=self.kl_weight,
                              graph_weight=self.graph_weight, laplacian=laplacian, shard=shard)

        budget = None if self.time_budget is None else _PRIOR_BUDGET_SHARE * self.time_budget
        # The epochs as a budget of steps, so that the clock only caps: it does not drop the learning rate.
        steps = self.prior_epochs * -(-len(train_windows) // self.batch_size)
        config = TrainConfig(max_epochs=self.prior_epochs, batch_size=self.batch_size,
                             learning_rate=self.prior_learning_rate, weight_decay=0.0, time_budget=budget,
                             max_steps=steps)
        self.prior_history_ = train(prior, loss_fn, train_windows, config, seed=self.seed_,
                                    device=device, progress=self.verbose, desc="training prior",
                                    checkpoint=checkpoint, resume=resume)
        return prior.requires_grad_(False)

    def _build_prior(self) -> LatentPrior:
        latent = default_latent_dim(self.n_features_in_) if self.latent_dim is None else self.latent_dim
        return LatentPrior(self.n_features_in_, check_positive_int(latent, "latent_dim"),
                           self.prior_hidden, self.prior_layers, self.prior_kernel)

    def encode(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        """Posterior mean of the LSSDM latent at every time step of ``X`` (``guess="latent"`` only).

        A DataFrame gives a DataFrame with the same index and columns ``z0, z1, ...``; an array
        ``(time, features)`` gives ``(time, latent)``; a panel gives ``(series, time, latent)``.
        """
        check_is_fitted(self, "model_")
        if self.guess != "latent":
            raise ValueError(f"encode needs guess='latent' (this imputer's guess is {self.guess!r})")
        panel = self._check_data(X)
        windows, index = windows_from_panel(self.scaler_.transform(panel), time_positions(X), self.window_,
                                            self._imputation_stride())
        prior = self.model_.guess.prior
        device = next(prior.parameters()).device
        with torch.no_grad():
            parts = [prior.encode(w.values, w.observed, w.positions)[0].cpu()
                     for w in (windows[rows].to(device) for rows in torch.arange(len(windows)).split(256))]
        codes = stitch(torch.cat(parts).numpy().astype(np.float64), index, panel.shape[0], panel.shape[1])
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(codes[0], index=X.index.copy(), columns=[f"z{i}" for i in range(codes.shape[-1])])
        return codes if np.ndim(X) == 3 else codes[0]
