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

GuessKind = Literal["interpolate", "latent", "none"]


def check_guess(guess: str) -> None:
    if guess not in get_args(GuessKind):
        raise ValueError(f"guess must be one of {get_args(GuessKind)}, got {guess!r}")


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


def bridge_variance(values: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """How far off linear interpolation is likely to be at each cell, ``(batch, features, length)``.

    Treats each feature as a random walk between its given cells (a Brownian bridge): the error
    variance at time ``t`` between given times ``a < t < b`` is ``s2 (t - a)(b - t) / (b - a)``, and
    ``s2 |t - a|`` beyond the last given cell, where ``s2`` is estimated from the row's own
    increments (sum of squared steps over elapsed time). Given cells get 0; a row with fewer than
    two given cells gets NaN (no estimate).
    """
    length = values.shape[-1]
    steps = torch.arange(length, device=values.device).expand_as(values)
    time = positions.unsqueeze(1).expand_as(values).to(values.dtype)
    before = torch.where(mask, steps, -1).cummax(dim=-1).values
    after = torch.where(mask, steps, length).flip(-1).cummin(dim=-1).values.flip(-1)
    previous = torch.cat([torch.full_like(before[..., :1], -1), before[..., :-1]], dim=-1)  # last given step < t
    has_previous = mask & (previous >= 0)
    prev_c = previous.clamp(min=0)
    step_sq = torch.where(has_previous, (values - values.gather(-1, prev_c)) ** 2, torch.zeros_like(values))
    elapsed = torch.where(has_previous, time - time.gather(-1, prev_c), torch.zeros_like(values))
    rate = step_sq.sum(-1, keepdim=True) / elapsed.sum(-1, keepdim=True).clamp(min=1e-6)
    rate = torch.where(has_previous.any(-1, keepdim=True), rate, torch.full_like(rate, float("nan")))
    t_left = time.gather(-1, before.clamp(min=0))
    t_right = time.gather(-1, after.clamp(max=length - 1))
    has_left, has_right = before >= 0, after < length
    inside = (time - t_left) * (t_right - time) / (t_right - t_left).clamp(min=1e-6)
    outside = torch.where(has_left, time - t_left, t_right - time).abs()
    variance = rate * torch.where(has_left & has_right, inside, outside)
    return torch.where(mask, torch.zeros_like(values), variance)


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
