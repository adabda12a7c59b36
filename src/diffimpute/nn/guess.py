"""First guesses: a cheap deterministic estimate of every cell that the diffusion model refines.

The denoiser models only the residual between the truth and the guess, so a good guess leaves
little to learn and an untrained model already imputes as well as the guess. Every guess is
computed from the *conditioning* cells alone, in training and at imputation alike: during
training the target cells are hidden from it, so no target value leaks into its own estimate.

All guesses map ``(values, cond_mask, positions)`` -- ``(batch, features, length)`` twice and
``(batch, length)`` -- to ``(batch, features, length)``, with conditioning cells unchanged.
The time-series guesses work along time; ``GaussianGuess`` works across features, one time step
(or table row) at a time; ``CrossFeatureGuess`` combines the two.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from diffimpute._validation import check_choice

GuessKind = Literal["interpolate", "latent", "none"]
TableGuessKind = Literal["gaussian", "none"]


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


def _conditional_mean(rows: torch.Tensor, given: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor,
                      with_covariance: bool = False):
    """Mean (and covariance) of every row's missing entries given its given ones under N(mean, covariance).

    rows, given: ``(n, features)``. Solving ``A w = (x - mean) * given`` with ``A`` the covariance
    restricted to the given entries (identity elsewhere) handles every missing pattern in one
    batched solve. The covariance returned is ``(n, features, features)``, zero on given entries.
    """
    weight = given.to(rows.dtype)
    eye = torch.eye(rows.shape[1], dtype=rows.dtype, device=rows.device)
    restricted = covariance * weight.unsqueeze(1) * weight.unsqueeze(2) + torch.diag_embed(1 - weight)
    solved = torch.linalg.solve(restricted, ((rows - mean) * weight).unsqueeze(-1)).squeeze(-1)
    estimate = torch.where(given, rows, mean + solved @ covariance)
    if not with_covariance:
        return estimate
    inverse_given = torch.linalg.solve(restricted, eye.expand_as(restricted)) * weight.unsqueeze(1) * weight.unsqueeze(2)
    return estimate, covariance - covariance @ inverse_given @ covariance


class GaussianGuess(nn.Module):
    """The conditional mean of the missing entries given the conditioning ones under a multivariate
    normal whose mean and covariance are fitted by EM on the observed training cells.

    The classic EM imputation (as in Amelia and ``norm``): exact under MAR for Gaussian data,
    and a strong linear first guess for tables, where columns explain each other at the same row.
    ``shrinkage`` pulls the covariance towards its diagonal when it is used, which keeps it
    invertible and tempers it for small or collinear tables (one-hot encoded categories are
    collinear by construction); it is a buffer, so a task can choose it after EM on held-out cells.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("covariance", torch.eye(n_features))
        self.register_buffer("shrinkage", torch.tensor(0.1))

    @torch.no_grad()
    def fit(self, rows: torch.Tensor, given: torch.Tensor, n_iter: int = 10, max_rows: int = 2048) -> GaussianGuess:
        """EM on ``rows (n, features)`` observed where ``given``; at most ``max_rows`` rows (the
        first ones; pass them shuffled) bound the cost at ``max_rows x features^3`` per iteration."""
        rows, given = rows[:max_rows].double(), given[:max_rows]
        rows = torch.where(given, rows, 0.0)
        count = given.sum(0).clamp(min=1)
        mean = rows.sum(0) / count
        variance = (((rows - mean) * given) ** 2).sum(0) / count
        covariance = torch.diag(variance)
        for _ in range(n_iter):
            estimate, spread = _conditional_mean(rows, given, mean, shrink(covariance, _EM_SHRINKAGE),
                                                 with_covariance=True)
            mean = estimate.mean(0)
            centred = estimate - mean
            covariance = (centred.T @ centred + spread.sum(0)) / len(rows)
        self.mean.copy_(mean.float())
        self.covariance.copy_(covariance.float())
        return self

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        batch, n_features, length = values.shape
        rows = values.transpose(1, 2).reshape(-1, n_features)
        given = cond_mask.transpose(1, 2).reshape(-1, n_features)
        estimate = _conditional_mean(rows, given, self.mean, shrink(self.covariance, self.shrinkage))
        return estimate.view(batch, length, n_features).transpose(1, 2).contiguous()


_EM_SHRINKAGE = 1e-3  # just enough to keep EM's covariance invertible


def shrink(covariance: torch.Tensor, amount: float | torch.Tensor) -> torch.Tensor:
    """``(1 - amount) * covariance + amount * its diagonal``, plus a small floor on the diagonal so
    constant features stay invertible."""
    diagonal = torch.diag(torch.diagonal(covariance))
    floor = 1e-4 * torch.eye(len(covariance), dtype=covariance.dtype, device=covariance.device)
    return (1 - amount) * covariance + amount * diagonal + floor


_ROWS_PER_GATHER = 4096  # rows whose gain matrices are gathered at once: bounds memory at 4096 x features^2


def gap_distance(mask: torch.Tensor) -> torch.Tensor:
    """Steps from each cell to the nearest given cell of its feature, ``(batch, features, length)``
    int64: 0 on given cells, ``length`` for a feature with none in the window."""
    length = mask.shape[-1]
    steps = torch.arange(length, device=mask.device).expand_as(mask)
    before = torch.where(mask, steps, -2 * length).cummax(dim=-1).values
    after = torch.where(mask, steps, 3 * length).flip(-1).cummin(dim=-1).values.flip(-1)
    return torch.minimum(steps - before, after - steps).clamp(max=length)


class CrossFeatureGuess(nn.Module):
    """Interpolation along time, corrected by what the other features say at the same step.

    Each row ``x`` is modelled as Gaussian ``N(mean, covariance)``, fitted on complete training
    rows. A given cell is observed exactly; a hidden cell is observed through its linear
    interpolation, whose error variance grows with the distance to the nearest given cell of its
    feature (``gap_variance``, measured per feature in powers-of-two distance bins). The guess is the
    posterior mean, ``mean + covariance (covariance + noise)^-1 (z - mean)``: next to given cells it
    is the interpolation, deep in a long gap it leans on correlated features, and a feature that
    correlates with none keeps its interpolation pulled a little towards its mean. One solve per
    distinct noise pattern, so the fixed masks of anomaly scoring cost a handful of solves.
    """

    def __init__(self, n_features: int, max_length: int) -> None:
        super().__init__()
        self.n_bins = int(max_length).bit_length() + 1  # distance 0, 1, 2-3, 4-7, ... up to max_length
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("covariance", torch.eye(n_features))
        self.register_buffer("gap_variance", torch.ones(n_features, self.n_bins))

    def _bins(self, distance: torch.Tensor) -> torch.Tensor:
        bins = torch.floor(torch.log2(distance.clamp(min=1).to(torch.float32))).to(torch.int64) + 1
        return torch.where(distance == 0, 0, bins).clamp(max=self.n_bins - 1)

    @torch.no_grad()
    def fit(self, values: torch.Tensor, targets: torch.Tensor, positions: torch.Tensor) -> CrossFeatureGuess:
        """Fit on complete training windows ``values (n, features, length)``: the row Gaussian, and
        the interpolation's squared error on ``targets`` (hidden cells, same shape) per distance bin."""
        rows = values.transpose(1, 2).reshape(-1, values.shape[1]).double()
        self.mean.copy_(rows.mean(0).float())
        self.covariance.copy_(shrink(torch.cov(rows.T).reshape(len(self.mean), -1), _EM_SHRINKAGE).float())
        given = ~targets
        error = (interpolate_gaps(values * given, given, positions) - values) ** 2
        bins = self._bins(gap_distance(given))
        for b in range(1, self.n_bins):
            chosen = (bins == b) & targets
            count = chosen.sum(dim=(0, 2))
            total = (error * chosen).sum(dim=(0, 2))
            # a bin never seen keeps the feature's variance: interpolation tells nothing there
            self.gap_variance[:, b] = torch.where(count > 0, total / count.clamp(min=1), torch.diagonal(self.covariance))
        self.gap_variance[:, 0] = 1e-4 * torch.diagonal(self.covariance)
        return self

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        batch, n_features, length = values.shape
        interpolated = interpolate_gaps(values * cond_mask, cond_mask, positions)
        noise = self.gap_variance.gather(1, self._bins(gap_distance(cond_mask)).transpose(0, 1).reshape(n_features, -1))
        noise = noise.view(n_features, batch, length).permute(1, 2, 0).reshape(-1, n_features)
        rows = interpolated.transpose(1, 2).reshape(-1, n_features) - self.mean
        patterns, which = torch.unique(noise, dim=0, return_inverse=True)
        inverses = torch.linalg.inv(self.covariance + torch.diag_embed(patterns))  # (patterns, features, features)
        weighted = torch.empty_like(rows)
        for start in range(0, len(rows), _ROWS_PER_GATHER):
            part = slice(start, start + _ROWS_PER_GATHER)
            weighted[part] = (inverses[which[part]] @ rows[part].unsqueeze(-1)).squeeze(-1)
        estimate = (self.mean + weighted @ self.covariance).view(batch, length, n_features).transpose(1, 2)
        return torch.where(cond_mask, values, estimate)

