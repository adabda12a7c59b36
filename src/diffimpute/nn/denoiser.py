"""What every denoiser shares: the step-independent ``Condition`` and the residual from the guess.

The engine (``engine.sampling``, ``engine.denoising``) talks to a denoiser through four calls:
``condition(cond_channels, cond_mask, positions, mask_index, label=)`` once per batch of windows,
``forward(x_noisy, steps, condition)`` once per diffusion step, and ``to_residual`` /
``from_residual`` around them. With a ``guess`` module (``nn.guess``) the diffusion runs over
``(x - guess) / residual_scale``: the per-feature scale (a buffer set at fit time to the spread of
the guess's errors) gives the residual unit variance, as the noise schedule assumes.

Class labels. A denoiser built with ``n_classes > 0`` learns one vector per class plus one for the
null class (index ``n_classes``), which it is trained on for a share of windows whatever their
class, so the same network predicts with and without a label (classifier-free guidance, Ho &
Salimans 2022; ``engine.sampling``). A window passed with no label gets the null class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Condition:
    """Step-independent inputs for a batch of windows, reused at every diffusion step.

    ``input_bias``: the projected conditioning channels (its shape is the denoiser's own);
    ``side``: per-layer side information, if the denoiser has any; ``guess``: ``(batch, features,
    length)`` the first guess, None without one; ``scale``: ``(batch, features, 1)`` the residual's
    unit in each window, for a denoiser that scales every window by its own cells (None: the
    denoiser's fitted ``residual_scale``).
    """

    input_bias: torch.Tensor
    side: list[torch.Tensor] = field(default_factory=list)
    guess: torch.Tensor | None = None
    scale: torch.Tensor | None = None


class ResidualDenoiser(nn.Module):
    """Base of the denoisers: holds the guess module, the residual scale ``(features, 1)`` and,
    with ``n_classes > 0``, the class embedding ``(n_classes + 1, d_label)``."""

    def __init__(self, n_features: int, guess: nn.Module | None, n_classes: int = 0, d_label: int = 16) -> None:
        super().__init__()
        if n_classes < 0:
            raise ValueError(f"n_classes must be >= 0 (0: no class labels), got {n_classes}")
        self.n_features = n_features
        self.guess = guess
        self.n_classes = n_classes
        self.label_embedding = nn.Embedding(n_classes + 1, d_label) if n_classes else None
        self.register_buffer("residual_scale", torch.ones(n_features, 1))

    def embed_label(self, label: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """``(batch, d_label)`` the embedding of ``label (batch,)`` (None: the null class); None for a
        denoiser without classes, which must then get no label."""
        if self.label_embedding is None:
            if label is not None:
                raise ValueError("this denoiser was built without class labels (n_classes=0); pass label=None")
            return None
        if label is None:
            label = torch.full((batch,), self.n_classes, dtype=torch.long, device=self.label_embedding.weight.device)
        if label.shape != (batch,) or label.dtype != torch.long:
            raise ValueError(f"label must be an int64 tensor of shape ({batch},), got {label.dtype} {tuple(label.shape)}")
        if bool(((label < 0) | (label > self.n_classes)).any()):
            raise ValueError(f"labels must lie in [0, {self.n_classes}] ({self.n_classes} = no label)")
        return self.label_embedding(label)

    def first_guess(self, cond_channels: torch.Tensor, cond_mask: torch.Tensor,
                    positions: torch.Tensor) -> torch.Tensor | None:
        """The guess from conditioning channel 0 at the cells where ``cond_mask``; None without one."""
        if cond_channels.shape[2] != self.n_features:
            raise ValueError(f"denoiser was built for {self.n_features} features, got {cond_channels.shape[2]}")
        return None if self.guess is None else self.guess(cond_channels[:, 0], cond_mask, positions)

    def to_residual(self, values: torch.Tensor, condition: Condition) -> torch.Tensor:
        """What the diffusion runs over: ``(values - guess) / residual_scale``; ``values`` is
        ``(batch, features, length)`` or ``(batch, samples, features, length)``."""
        guess = self._guess_like(values, condition)
        return (values - guess) / self._scale_like(values, condition)

    def from_residual(self, residual: torch.Tensor, condition: Condition) -> torch.Tensor:
        """Inverse of ``to_residual``."""
        return self._guess_like(residual, condition) + residual * self._scale_like(residual, condition)

    def _scale_like(self, like: torch.Tensor, condition: Condition) -> torch.Tensor:
        if condition.scale is None:
            return self.residual_scale
        return condition.scale if like.dim() == 3 else condition.scale.unsqueeze(1)

    @staticmethod
    def _guess_like(like: torch.Tensor, condition: Condition) -> torch.Tensor | float:
        if condition.guess is None:
            return 0.0
        return condition.guess if like.dim() == 3 else condition.guess.unsqueeze(1)
