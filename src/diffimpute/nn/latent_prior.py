"""Latent prior (LSSDM, arXiv 2409.08917): a variational auto-encoder that gives a coarse estimate
of every cell of a window from its observed cells; ``nn.guess.LatentGuess`` makes it the first
guess that the diffusion imputer refines (``DiffusionImputer(guess="latent")``).

Tensor shapes: windows are ``(batch, features, length)``; the latent is ``(batch, latent, length)``,
one low-dimensional code per time step. The encoder and decoder are 1-D convolutions along time
with the features as channels, so any window length works and nothing depends on a fixed size.

Pipeline, as in the paper and its code: missing cells are pre-filled by linear interpolation along
time; the encoder maps (pre-filled values, mask) to a Gaussian latent; the decoder maps a latent
draw back to all cells. Training is masked reconstruction: a random share of each window's observed
cells is hidden from the input and the reconstruction is scored on every observed cell, so the
model learns to fill gaps without any ground truth for the truly missing cells. An optional feature
graph adds a Laplacian smoothness penalty on the reconstruction across features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from diffimpute.data.batch import Windows
from diffimpute.engine.distributed import WHOLE, Shard
from diffimpute.nn.guess import interpolate_gaps

# ------------------------------------------------------------------------- helpers


def graph_laplacian(adjacency: torch.Tensor) -> torch.Tensor:
    """Symmetric normalised Laplacian ``I - D^-1/2 A D^-1/2`` of a non-negative ``(features, features)``
    adjacency; the diagonal of ``A`` is ignored and isolated features get a zero row."""
    a = adjacency.clone().float()
    a.fill_diagonal_(0.0)
    a = 0.5 * (a + a.T)
    degree = a.sum(dim=1)
    inv_sqrt = torch.where(degree > 0, degree.clamp(min=1e-12).rsqrt(), torch.zeros_like(degree))
    normalised = inv_sqrt[:, None] * a * inv_sqrt[None, :]
    return torch.diag((degree > 0).float()) - normalised


def _conv_stack(in_channels: int, hidden: int, out_channels: int, n_layers: int, kernel: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_channels
    for _ in range(n_layers):
        layers += [nn.Conv1d(width, hidden, kernel, padding=kernel // 2, padding_mode="replicate"), nn.SiLU()]
        width = hidden
    layers.append(nn.Conv1d(width, out_channels, 1))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------- model


@dataclass
class PriorOutput:
    """One pass of the prior. coarse: ``(batch, features, length)``; mean, log_var: ``(batch, latent, length)``."""

    coarse: torch.Tensor
    mean: torch.Tensor
    log_var: torch.Tensor

    def kl(self) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) of each latent element, ``(batch, latent, length)``."""
        return 0.5 * (self.mean.pow(2) + self.log_var.exp() - 1.0 - self.log_var)


class LatentPrior(nn.Module):
    """Variational auto-encoder over windows ``(batch, features, length)`` with missing cells.

    Parameters
    ----------
    n_features: features per cell ``K``.
    latent_dim: size of the per-time-step latent code (the paper's low-dimensional space).
    hidden: convolution width; n_layers: convolutions in the encoder and in the decoder;
    kernel: temporal receptive field of each convolution (odd).
    """

    def __init__(self, n_features: int, latent_dim: int, hidden: int = 64, n_layers: int = 2, kernel: int = 5) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd so windows keep their length, got {kernel}")
        self.n_features = n_features
        self.latent_dim = latent_dim
        # Input: pre-filled values and the observed mask, so the encoder knows which cells are guesses.
        self.encoder = _conv_stack(2 * n_features, hidden, 2 * latent_dim, n_layers, kernel)
        self.decoder = _conv_stack(latent_dim, hidden, n_features, n_layers, kernel)

    def encode(
        self, values: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance ``(batch, latent, length)`` of q(z | observed cells)."""
        if values.shape[1] != self.n_features:
            raise ValueError(f"latent prior was built for {self.n_features} features, got {values.shape[1]}")
        filled = interpolate_gaps(values, mask, positions)
        stats = self.encoder(torch.cat([filled, mask.to(values.dtype)], dim=1))
        mean, log_var = stats.chunk(2, dim=1)
        return mean, log_var.clamp(-10.0, 10.0)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Coarse values ``(batch, features, length)`` of every cell."""
        return self.decoder(latent)

    def forward(
        self,
        values: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> PriorOutput:
        """With standard normal ``noise`` ``(batch, latent, length)`` the latent is a reparameterised
        draw (training); without it the posterior mean, so the coarse estimate is deterministic."""
        mean, log_var = self.encode(values, mask, positions)
        latent = mean
        if noise is not None:
            latent = mean + noise * (0.5 * log_var).exp()
        return PriorOutput(self.decode(latent), mean, log_var)

    @torch.no_grad()
    def coarse(self, values: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic coarse estimate ``(batch, features, length)`` from the cells where ``mask``."""
        return self(values * mask, mask, positions).coarse


def prior_loss(
    model: LatentPrior,
    batch: Windows,
    generator: torch.Generator,
    *,
    kl_weight: float,
    graph_weight: float = 0.0,
    laplacian: torch.Tensor | None = None,
    shard: Shard = WHOLE,
) -> torch.Tensor:
    """Masked reconstruction: hide a share ``U[0, 1)`` of each window's observed cells (as the
    diffusion stage's random targets do), reconstruct, score on every observed cell.

    Every draw is made for the whole batch and every mean is over the whole batch, while the
    network runs on the rows of ``shard`` (``engine.distributed``)."""
    n, _, length = batch.values.shape
    device = batch.values.device
    ratio = torch.rand(n, 1, 1, generator=generator, device=device)
    hidden = (torch.rand(batch.values.shape, generator=generator, device=device) < ratio) & batch.observed
    noise = torch.randn((n, model.latent_dim, length), generator=generator, device=device)
    n_observed = batch.observed.sum().to(batch.values.dtype)
    mine = shard.rows
    values, observed, hidden, noise = batch.values[mine], batch.observed[mine], hidden[mine], noise[mine]
    visible = observed & ~hidden
    out = model(values * visible, visible, batch.positions[mine], noise)
    weight = observed.to(values.dtype)
    loss = shard.mean(((out.coarse - values) ** 2 * weight).sum(), n_observed)
    loss = loss + kl_weight * shard.mean(out.kl().sum(), n * model.latent_dim * length)
    if laplacian is not None and graph_weight > 0:
        # tr(X^T L X) per time step: neighbouring features should have similar coarse values.
        smooth = torch.einsum("bil,ij,bjl->", out.coarse, laplacian, out.coarse)
        loss = loss + graph_weight * shard.mean(smooth, n * length)
    return loss


def default_latent_dim(n_features: int) -> int:
    """Half the features, at least 2 and at most 32: low-dimensional but not a bottleneck for few features."""
    return int(min(32, max(2, math.ceil(n_features / 2))))
