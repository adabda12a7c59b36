"""A residual MLP denoiser for table rows (TabDDPM's choice of network, made conditional).

A table row has no order among its columns for attention to exploit cheaply on a CPU, and small
tables are learned faster by an MLP than by a transformer over columns, so the whole encoded row
``(features,)`` is one input vector. Windows are ``(batch, features, 1)`` as the engine passes
them (a row is a window of length 1); draws are ``(batch, samples, features, 1)``.

What does not depend on the diffusion step (the conditioning values, which cells are given and
the first guess) is projected once per row by ``condition``; a step then costs the noisy-input
path and the residual blocks only. The output layer starts at zero, so an untrained model's draws
are the guess (``nn.denoiser``).
"""

from __future__ import annotations

import torch
from torch import nn

from diffimpute.nn.denoiser import Condition, ResidualDenoiser
from diffimpute.nn.embeddings import StepEmbedding


class _Block(nn.Module):
    """Pre-norm residual unit: ``h + W2 silu(W1 norm(h))``."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 2 * hidden), nn.SiLU(),
                                 nn.Dropout(dropout), nn.Linear(2 * hidden, hidden))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class TabularDenoiser(ResidualDenoiser):
    """Predicts the network output (noise, clean residual or velocity) for every encoded column.

    Parameters
    ----------
    n_features: encoded columns per row (numeric columns plus one per categorical level).
    hidden, n_layers: width and number of residual blocks.
    d_step: size of the diffusion-step embedding.
    n_cond_channels: conditioning channels per cell; channel 0 holds the given values.
    guess: optional first-guess module (``nn.guess``); its estimate is one more input and the
        diffusion runs over the residual from it.
    n_classes, d_label: number of class labels and the size of their embedding, one more input of
        the conditioning projection (0: no labels; see ``nn.denoiser``).
    """

    def __init__(self, n_features: int, hidden: int = 256, n_layers: int = 3, d_step: int = 64,
                 n_cond_channels: int = 1, dropout: float = 0.0, guess: nn.Module | None = None,
                 n_classes: int = 0, d_label: int = 16) -> None:
        super().__init__(n_features, guess, n_classes, d_label)
        inputs = n_features * (n_cond_channels + 1 + (guess is not None))  # channels, given mask, guess
        inputs += d_label if n_classes else 0
        self.hidden = hidden
        self.cond_input = nn.Linear(inputs, hidden)
        self.noisy_input = nn.Linear(n_features, hidden, bias=False)
        self.step_embedding = StepEmbedding(d_step)
        self.step_projection = nn.Linear(d_step, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(hidden)
        self.output = nn.Linear(hidden, n_features)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def condition(self, cond_channels: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor,
                  mask_index: torch.Tensor | None = None, label: torch.Tensor | None = None) -> Condition:
        """cond_channels ``(batch, n_cond_channels, features, 1)``; cond_mask ``(batch, features, 1)``;
        label ``(batch,)`` int64 class (with ``n_classes``; None: the null class)."""
        if cond_channels.shape[-1] != 1:
            raise ValueError(f"the tabular denoiser takes rows (windows of length 1), got length {cond_channels.shape[-1]}")
        if mask_index is not None:
            raise ValueError("the tabular denoiser has no mask-index embedding; pass mask_index=None")
        guess = self.first_guess(cond_channels, cond_mask, positions)
        parts = [cond_channels.flatten(1), cond_mask.flatten(1).to(cond_channels.dtype)]
        if guess is not None:
            parts.append(guess.flatten(1))
        label_vector = self.embed_label(label, len(cond_channels))
        if label_vector is not None:
            parts.append(label_vector)
        return Condition(input_bias=self.cond_input(torch.cat(parts, dim=1)), guess=guess)

    def forward(self, x_noisy: torch.Tensor, steps: torch.Tensor, condition: Condition) -> torch.Tensor:
        """x_noisy ``(batch, samples, features, 1)``; steps ``(batch * samples,)`` or ``(1,)``."""
        batch, samples, n_features, length = x_noisy.shape
        step = self.step_projection(self.step_embedding(steps))
        step = step.view(1, 1, -1) if len(steps) == 1 else step.view(batch, samples, -1)
        h = self.noisy_input(x_noisy.reshape(batch, samples, n_features)) + condition.input_bias.unsqueeze(1) + step
        for block in self.blocks:
            h = block(h)
        return self.output(torch.nn.functional.silu(self.norm(h))).view(batch, samples, n_features, length)
