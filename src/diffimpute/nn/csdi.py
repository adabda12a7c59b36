"""CSDI-class denoiser: residual layers with attention along time and along features.

Tensor shapes: windows are ``(batch, features, length)``; while sampling, draws are folded in as
``(batch, samples, features, length)``; inside, activations are channels-last. What does not depend on the diffusion step (the projected
conditioning values and the side information) is computed once per window by ``condition`` and
broadcast over samples and steps, so a sampling step costs only the noisy-input path.

Guess and residual. With a ``guess`` module (``nn.guess``) the denoiser sees the first guess of
every cell as one more conditioning channel and the diffusion runs over the residual from it
(``nn.denoiser``).

Mask index. A task that hides cells with a few fixed masks (the detector's grating masks) can tell
the network which one is in use (``n_mask_ids``): a learned embedding of the index joins the side
information, as in the released ImDiffusion code, so the network knows where the targets lie.

Class label. Built with ``n_classes``, the denoiser adds the label's embedding (``nn.denoiser``) to
the side information of every cell, as it adds the mask index.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffimpute.nn.attention import TransformerLayer
from diffimpute.nn.denoiser import Condition, ResidualDenoiser
from diffimpute.nn.embeddings import StepEmbedding, sinusoidal


class ResidualLayer(nn.Module):
    """Step embedding -> time attention -> feature attention -> gated unit with side information.

    Works channels-last, ``(rows, features, length, channels)``, so attention along time is a free
    view and only attention along features needs a transpose.
    """

    def __init__(self, channels: int, d_step: int, side_dim: int, n_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.step_projection = nn.Linear(d_step, channels)
        self.side_projection = nn.Linear(side_dim, 2 * channels)
        self.time_attention = TransformerLayer(channels, n_heads, ff_dim, dropout)
        self.feature_attention = TransformerLayer(channels, n_heads, ff_dim, dropout)
        self.mid_projection = nn.Linear(channels, 2 * channels)
        self.out_projection = nn.Linear(channels, 2 * channels)

    def forward(
        self, h: torch.Tensor, step_embedding: torch.Tensor, side: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows, n_features, length, channels = h.shape
        batch = side.shape[0]
        y = h + self.step_projection(step_embedding).view(-1, 1, 1, channels)
        if length > 1:
            y = self.time_attention(y.reshape(rows * n_features, length, channels))
            y = y.view(rows, n_features, length, channels)
        if n_features > 1:
            y = self.feature_attention(y.transpose(1, 2).reshape(rows * length, n_features, channels))
            y = y.view(rows, length, n_features, channels).transpose(1, 2)
        y = self.mid_projection(y).view(batch, rows // batch, n_features, length, 2 * channels)
        gate, signal = (y + side.unsqueeze(1)).view(rows, n_features, length, 2 * channels).chunk(2, dim=-1)
        residual, skip = self.out_projection(torch.sigmoid(gate) * torch.tanh(signal)).chunk(2, dim=-1)
        return (h + residual) / math.sqrt(2.0), skip


class CSDIDenoiser(ResidualDenoiser):
    """Predicts the noise in the target entries of a window, given its conditioning channels.

    Parameters
    ----------
    n_features: number of features ``K`` (fixes the learned feature embedding).
    n_cond_channels: conditioning channels per cell passed to ``condition``; channel 0 holds the
        observed values (zero where not conditioned).
    guess: optional first-guess module; its estimate becomes one more conditioning channel and the
        diffusion runs over the residual (see the module notes).
    n_mask_ids, d_mask: number of distinct mask indices and the size of their embedding (0: the
        network is not told which mask hid the targets).
    n_classes, d_label: number of class labels and the size of their embedding (0: no labels).
    """

    def __init__(
        self,
        n_features: int,
        channels: int = 64,
        n_layers: int = 4,
        n_heads: int = 8,
        ff_dim: int = 64,
        d_step: int = 128,
        d_time: int = 128,
        d_feature: int = 16,
        n_cond_channels: int = 1,
        dropout: float = 0.1,
        guess: nn.Module | None = None,
        n_mask_ids: int = 0,
        d_mask: int = 16,
        n_classes: int = 0,
        d_label: int = 16,
    ) -> None:
        super().__init__(n_features, guess, n_classes, d_label)
        self.channels = channels
        self.d_time = d_time
        # time, feature, cond mask, mask index, label
        side_dim = d_time + d_feature + 1 + (d_mask if n_mask_ids else 0) + (d_label if n_classes else 0)
        self.step_embedding = StepEmbedding(d_step)
        self.feature_embedding = nn.Embedding(n_features, d_feature)
        self.mask_embedding = nn.Embedding(n_mask_ids, d_mask) if n_mask_ids else None
        self.cond_input = nn.Linear(n_cond_channels + (guess is not None), channels)
        self.noisy_input = nn.Linear(1, channels, bias=False)
        self.layers = nn.ModuleList(
            ResidualLayer(channels, d_step, side_dim, n_heads, ff_dim, dropout) for _ in range(n_layers)
        )
        self.skip_projection = nn.Linear(channels, channels)
        self.output = nn.Linear(channels, 1)
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
        """Precompute everything that does not depend on the diffusion step.

        cond_channels: ``(batch, n_cond_channels, features, length)``; cond_mask: ``(batch, features,
        length)``, True where a value is given as condition; positions: ``(batch, length)`` times;
        mask_index: ``(batch,)`` int64, which mask hid the targets (required with ``n_mask_ids``);
        label: ``(batch,)`` int64 class (with ``n_classes``; None: the null class).
        """
        batch, _, n_features, length = cond_channels.shape
        if (mask_index is None) != (self.mask_embedding is None):
            raise ValueError("pass mask_index exactly when the denoiser was built with n_mask_ids > 0")
        guess = self.first_guess(cond_channels, cond_mask, positions)
        if guess is not None:
            cond_channels = torch.cat([cond_channels, guess.unsqueeze(1)], dim=1)
        time = sinusoidal(positions, self.d_time).unsqueeze(1)  # (batch, 1, length, d_time)
        feature = self.feature_embedding.weight.view(1, n_features, 1, -1)
        parts = [
            time.expand(batch, n_features, length, -1),
            feature.expand(batch, n_features, length, -1),
            cond_mask.unsqueeze(-1).to(time.dtype),
        ]
        if self.mask_embedding is not None:
            parts.append(self.mask_embedding(mask_index).view(batch, 1, 1, -1).expand(batch, n_features, length, -1))
        label_vector = self.embed_label(label, batch)
        if label_vector is not None:
            parts.append(label_vector.view(batch, 1, 1, -1).expand(batch, n_features, length, -1))
        side = torch.cat(parts, dim=-1)
        return Condition(
            input_bias=self.cond_input(cond_channels.permute(0, 2, 3, 1)),
            side=[layer.side_projection(side) for layer in self.layers],
            guess=guess,
        )

    def forward(self, x_noisy: torch.Tensor, steps: torch.Tensor, condition: Condition) -> torch.Tensor:
        """Predict the noise. x_noisy: ``(batch, samples, features, length)``; steps: ``(batch * samples,)``
        or ``(1,)`` when all rows share a step. Returns ``(batch, samples, features, length)``."""
        batch, samples, n_features, length = x_noisy.shape
        h = self.noisy_input(x_noisy.unsqueeze(-1)) + condition.input_bias.unsqueeze(1)
        h = torch.relu(h).view(batch * samples, n_features, length, self.channels)
        step_embedding = self.step_embedding(steps)
        skips = torch.zeros_like(h)
        for layer, side in zip(self.layers, condition.side):
            h, skip = layer(h, step_embedding, side)
            skips = skips + skip
        out = torch.relu(self.skip_projection(skips / math.sqrt(len(self.layers))))
        return self.output(out).view(batch, samples, n_features, length)
