"""Reverse-process samplers: turn a noise prediction into the next, less noisy state.

Both samplers share one interface so that fewer sampling steps is a setting, not a new code path:
``timesteps`` lists the schedule indices visited (most noise first), and ``step`` maps
``(eps_hat, i, x_t)`` to ``(x_prev, x0_hat)``, where ``i`` indexes ``timesteps``.

``x0_range`` optionally clamps the estimate of the clean signal before the step is taken (as image
models clamp to [-1, 1]). At the noisiest steps ``x0_hat`` divides the noise error by
``sqrt(alpha_bar)``, which is about 0.005 at the end of CSDI's schedule, so a model that is not yet
well trained can blow a sample up by orders of magnitude; a clamp to a generous range around the
training data stops that and leaves a good model's steps unchanged.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from diffimpute.diffusion.noise import RowNoise, fresh_noise
from diffimpute.diffusion.schedules import NoiseSchedule

SamplerKind = Literal["ddpm", "ddim"]


X0Range = tuple[torch.Tensor, torch.Tensor]


def _at(values: torch.Tensor, index: int, like: torch.Tensor) -> torch.Tensor:
    return values[index].to(device=like.device, dtype=like.dtype)


def _clean_estimate(
    eps_hat: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, x0_range: X0Range | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x0_hat`` (clamped to ``x0_range`` if given) and the noise consistent with it."""
    x0_hat = (x_t - (1 - alpha_bar).sqrt() * eps_hat) / alpha_bar.sqrt()
    if x0_range is None:
        return x0_hat, eps_hat
    x0_hat = torch.maximum(torch.minimum(x0_hat, x0_range[1]), x0_range[0])
    return x0_hat, (x_t - alpha_bar.sqrt() * x0_hat) / (1 - alpha_bar).sqrt()


class DDPMSampler:
    """Ancestral sampling (Ho et al. 2020) over every step of the schedule, as CSDI does."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self.timesteps = list(range(schedule.n_steps - 1, -1, -1))

    def step(
        self,
        eps_hat: torch.Tensor,
        i: int,
        x_t: torch.Tensor,
        noise: RowNoise | torch.Generator | None,
        x0_range: X0Range | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.schedule
        t = self.timesteps[i]
        alpha, alpha_bar, beta = (_at(v, t, x_t) for v in (s.alphas, s.alpha_bars, s.betas))
        x0_hat, eps_hat = _clean_estimate(eps_hat, x_t, alpha_bar, x0_range)
        mean = (x_t - beta / (1 - alpha_bar).sqrt() * eps_hat) / alpha.sqrt()
        if t == 0:
            return mean, x0_hat
        alpha_bar_prev = _at(s.alpha_bars, t - 1, x_t)
        sigma = ((1 - alpha_bar_prev) / (1 - alpha_bar) * beta).sqrt()
        return mean + sigma * fresh_noise(noise, x_t), x0_hat


class DDIMSampler:
    """DDIM (Song et al. 2021) on an evenly spaced subset of ``n_steps`` schedule steps.

    ``eta=0`` is deterministic given the initial noise; ``eta=1`` matches DDPM's variance.
    """

    def __init__(self, schedule: NoiseSchedule, n_steps: int | None = None, eta: float = 0.0) -> None:
        n_steps = schedule.n_steps if n_steps is None else n_steps
        if not 1 <= n_steps <= schedule.n_steps:
            raise ValueError(
                f"DDIM steps must be between 1 and the schedule's {schedule.n_steps}, got {n_steps}"
            )
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.schedule = schedule
        self.eta = eta
        grid = torch.linspace(schedule.n_steps - 1, 0, n_steps).round().long()
        self.timesteps = grid.unique_consecutive().tolist()

    def step(
        self,
        eps_hat: torch.Tensor,
        i: int,
        x_t: torch.Tensor,
        noise: RowNoise | torch.Generator | None,
        x0_range: X0Range | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.schedule
        t = self.timesteps[i]
        alpha_bar = _at(s.alpha_bars, t, x_t)
        last = i + 1 == len(self.timesteps)
        alpha_bar_prev = torch.ones_like(alpha_bar) if last else _at(s.alpha_bars, self.timesteps[i + 1], x_t)
        x0_hat, eps_hat = _clean_estimate(eps_hat, x_t, alpha_bar, x0_range)
        sigma = self.eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)).sqrt()
        x_prev = alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps_hat
        if self.eta > 0 and not last:
            x_prev = x_prev + sigma * fresh_noise(noise, x_t)
        return x_prev, x0_hat


def make_sampler(
    schedule: NoiseSchedule, kind: SamplerKind = "ddpm", n_steps: int | None = None, eta: float = 0.0
) -> DDPMSampler | DDIMSampler:
    """Build a sampler by name; ``n_steps`` applies to DDIM only (DDPM always visits every step)."""
    if kind == "ddpm":
        if n_steps not in (None, schedule.n_steps):
            raise ValueError(
                f"DDPM visits all {schedule.n_steps} steps; use sampler='ddim' for {n_steps} steps"
            )
        return DDPMSampler(schedule)
    if kind == "ddim":
        return DDIMSampler(schedule, n_steps, eta)
    raise ValueError(f"sampler must be one of {get_args(SamplerKind)}, got {kind!r}")
