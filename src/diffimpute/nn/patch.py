"""A denoiser for any data: pretrained once, used on series it has never seen.

What makes it transferable, where ``CSDIDenoiser`` is tied to one data set:

* **No feature identity.** Nothing is learned per feature position: features are told apart by
  their values alone, and attention across features is permutation-equivariant, so the same
  weights serve 1 feature or 40, in any order.
* **Each window scaled by its own cells** (RevIN, Kim et al. 2022): every feature of every window
  is centred and scaled by the mean and spread of its conditioning cells, so neither a fitted
  scaler nor the data's units reach the network. The residual from the guess is measured in
  ``residual_ratio`` times that spread (``Condition.scale``).
* **Patches of time** (PatchTST, TSPulse): ``patch`` steps form one token, so a 512-step window is
  64 tokens per feature and attention stays cheap on a CPU. Patch positions are sinusoidal;
  pretraining sees every window length up to ``max_length``.

Heavy context, light steps. The encoder (``n_layers`` blocks of attention along time and across
features) reads the conditioning cells and the guess once per window, in ``condition``; each
diffusion step runs only a small residual MLP per token on the noisy patch, the step and that
context. Sampling 50 draws x 10 steps therefore costs about one encoder pass plus 500 cheap head
passes. Draws are coupled within a patch and through the shared context, not across patches.

Shapes: windows ``(batch, features, length)``; draws ``(batch, samples, features, length)``;
tokens channels-last ``(rows, features, patches, channels)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffimpute.nn.attention import TransformerLayer
from diffimpute.nn.denoiser import Condition, ResidualDenoiser
from diffimpute.nn.embeddings import StepEmbedding, sinusoidal
from diffimpute.nn.guess import InterpolationGuess

_MIN_SPREAD = 0.1  # floor of a window's spread, in the scaler's units: a flat stretch stays finite


# ------------------------------------------------------------------------- helpers


def window_statistics(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and spread ``(batch, features, 1)`` of each window's cells where ``mask``.

    A feature with no such cell gets mean 0 and spread 1 (the scaler's units); with one, spread 1.
    """
    weight = mask.to(values.dtype)
    count = weight.sum(-1, keepdim=True)
    mean = (values * weight).sum(-1, keepdim=True) / count.clamp(min=1)
    variance = (((values - mean) * weight) ** 2).sum(-1, keepdim=True) / (count - 1).clamp(min=1)
    spread = torch.where(count > 1, variance.sqrt().clamp(min=_MIN_SPREAD), torch.ones_like(variance))
    return mean, spread


def to_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``(..., length)`` -> ``(..., patches, patch)``, zero-padded at the end to whole patches."""
    pad = -x.shape[-1] % patch
    if pad:
        x = F.pad(x, (0, pad))
    return x.unflatten(-1, (-1, patch))


# ------------------------------------------------------------------------- blocks


class EncoderLayer(nn.Module):
    """Attention along time (one sequence of patches per feature), then across features (one
    set of features per patch); ``(rows, features, patches, channels)`` in and out."""

    def __init__(self, channels: int, n_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.time_attention = TransformerLayer(channels, n_heads, ff_dim, dropout)
        self.feature_attention = TransformerLayer(channels, n_heads, ff_dim, dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        rows, n_features, n_patches, channels = h.shape
        h = self.time_attention(h.reshape(rows * n_features, n_patches, channels)).view(h.shape)
        if n_features > 1:
            h = self.feature_attention(h.transpose(1, 2).reshape(rows * n_patches, n_features, channels))
            h = h.view(rows, n_patches, n_features, channels).transpose(1, 2)
        return h


class HeadBlock(nn.Module):
    """Pre-norm residual MLP: the per-step part of the network, cheap enough to run 500 times."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mlp(self.norm(h))


# ------------------------------------------------------------------------- model


class PatchDenoiser(ResidualDenoiser):
    """Feature-agnostic, window-scaled patch transformer over the residual from linear interpolation.

    Parameters
    ----------
    n_features: features of the data at hand; sets only the ``residual_scale`` buffer the
        estimator fits for its fallback draws, not any weight, so weights move between data sets.
    channels, n_layers, n_heads, ff_dim, dropout: the encoder's size.
    patch: time steps per token. head_layers: residual MLP blocks run at every diffusion step.
    d_step: size of the diffusion step's embedding. max_length: longest window pretrained on.
    residual_ratio: the diffusion's unit, as a share of each window's spread.
    """

    def __init__(
        self,
        n_features: int,
        channels: int = 64,
        n_layers: int = 4,
        n_heads: int = 4,
        ff_dim: int = 128,
        dropout: float = 0.0,
        patch: int = 8,
        head_layers: int = 2,
        d_step: int = 64,
        max_length: int = 512,
        residual_ratio: float = 0.5,
    ) -> None:
        super().__init__(n_features, InterpolationGuess())
        self.channels, self.patch, self.max_length = channels, patch, max_length
        self.register_buffer("residual_ratio", torch.tensor(float(residual_ratio)))
        # per step of a patch: the given value, whether it is given, the guess; per token: log spread
        self.cond_input = nn.Linear(3 * patch + 1, channels)
        self.encoder = nn.ModuleList(EncoderLayer(channels, n_heads, ff_dim, dropout) for _ in range(n_layers))
        self.context_norm = nn.LayerNorm(channels)
        self.step_embedding = StepEmbedding(d_step)
        self.step_projection = nn.Linear(d_step, channels)
        self.noisy_input = nn.Linear(patch, channels, bias=False)
        self.head = nn.ModuleList(HeadBlock(channels, 2 * channels) for _ in range(head_layers))
        self.head_norm = nn.LayerNorm(channels)
        self.output = nn.Linear(channels, patch)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def condition(
        self,
        cond_channels: torch.Tensor,
        cond_mask: torch.Tensor,
        positions: torch.Tensor,
        mask_index: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> Condition:
        """Encode a batch of windows once: ``cond_channels (batch, 1, features, length)`` with the
        given values in channel 0, ``cond_mask (batch, features, length)``, ``positions (batch,
        length)`` (used by the interpolation guess only). Mask indices and labels are not supported."""
        if mask_index is not None or label is not None:
            raise ValueError("the patch denoiser takes neither mask indices nor class labels")
        if cond_channels.shape[1] != 1:
            raise ValueError(f"the patch denoiser takes one conditioning channel, got {cond_channels.shape[1]}")
        length = cond_channels.shape[-1]
        if length > self.max_length:
            raise ValueError(f"windows of at most {self.max_length} steps, got {length}")
        values = cond_channels[:, 0]
        guess = self.guess(values, cond_mask, positions)  # any number of features: no check against n_features
        mean, spread = window_statistics(values, cond_mask)
        given = ((values - mean) / spread) * cond_mask
        parts = [to_patches(t, self.patch) for t in (given, cond_mask.to(values.dtype), (guess - mean) / spread)]
        tokens = torch.cat(parts, dim=-1)  # (batch, features, patches, 3 * patch)
        log_spread = spread.log().unsqueeze(-1).expand(*tokens.shape[:-1], 1)
        h = self.cond_input(torch.cat([tokens, log_spread], dim=-1))
        h = h + sinusoidal(torch.arange(h.shape[2], device=h.device), self.channels).to(h.dtype)
        for layer in self.encoder:
            h = layer(h)
        return Condition(input_bias=self.context_norm(h), guess=guess, scale=spread * self.residual_ratio)

    def forward(self, x_noisy: torch.Tensor, steps: torch.Tensor, condition: Condition) -> torch.Tensor:
        """The network's prediction for ``x_noisy (batch, samples, features, length)`` at ``steps``
        (``(batch * samples,)`` or ``(1,)``); same shape out."""
        batch, samples, n_features, length = x_noisy.shape
        step = self.step_projection(self.step_embedding(steps))
        step = step.view(batch, samples, 1, 1, -1) if len(steps) > 1 else step.view(1, 1, 1, 1, -1)
        h = self.noisy_input(to_patches(x_noisy, self.patch)) + condition.input_bias.unsqueeze(1) + step
        for block in self.head:
            h = block(h)
        out = self.output(self.head_norm(h)).flatten(-2)
        return out[..., :length]
