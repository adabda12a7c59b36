"""First guesses: a cheap deterministic estimate of every cell that the diffusion model refines.

The denoiser models only the residual between the truth and the guess, so a good guess leaves
little to learn and an untrained model already imputes as well as the guess. Every guess is
computed from the *conditioning* cells alone, in training and at imputation alike: during
training the target cells are hidden from it, so no target value leaks into its own estimate.

All guesses map ``(values, cond_mask, positions)`` -- ``(batch, features, length)`` twice and
``(batch, length)`` -- to ``(batch, features, length)``, with conditioning cells unchanged.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from diffimpute._validation import check_choice

GuessKind = Literal["interpolate", "latent", "none"]


def check_guess(guess: str) -> None:
    check_choice(guess, get_args(GuessKind), "guess")


def interpolate_gaps(values: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    """Linear interpolation along time of the cells where ``mask`` is False.

    values, mask: ``(batch, features, length)``; positions: ``(batch, length)`` times of the steps
    (None: evenly spaced), so irregular sampling is interpolated in time, not in step count.
    Gaps at the ends take the nearest given value; a feature with no given cell in the window
    becomes 0 (the feature mean in scaled units). Vectorised: no Python loop over rows.
    """
    length = values.shape[-1]
    steps = torch.arange(length, device=values.device).expand_as(values)
    before = torch.where(mask, steps, -1).cummax(dim=-1).values
    after = torch.where(mask, steps, length).flip(-1).cummin(dim=-1).values.flip(-1)
    has_before, has_after = before >= 0, after < length
    before_c, after_c = before.clamp(min=0), after.clamp(max=length - 1)
    left, right = values.gather(-1, before_c), values.gather(-1, after_c)
    time = steps.to(values.dtype) if positions is None else positions.unsqueeze(1).expand_as(values).to(values.dtype)
    t_left, t_right = time.gather(-1, before_c), time.gather(-1, after_c)
    weight = (time - t_left) / (t_right - t_left).clamp(min=1e-6)
    between = left + weight.clamp(0.0, 1.0) * (right - left)
    filled = torch.where(
        has_before & has_after,
        between,
        torch.where(has_before, left, torch.where(has_after, right, torch.zeros_like(values))),
    )
    return torch.where(mask, values, filled)


class InterpolationGuess(nn.Module):
    """Time-aware linear interpolation of the conditioning cells (PriSTI's conditioning input)."""

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return interpolate_gaps(values * cond_mask, cond_mask, positions)


class LatentGuess(nn.Module):
    """The LSSDM latent prior's coarse reconstruction (``nn.latent_prior``), frozen once trained."""

    def __init__(self, prior: nn.Module) -> None:
        super().__init__()
        self.prior = prior

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            coarse = self.prior.coarse(values * cond_mask, cond_mask, positions)
        return torch.where(cond_mask, values, coarse)
