"""Batched reverse diffusion: every requested draw of every window in as few passes as memory allows.

Draws are folded into the batch as ``(windows, samples, features, length)``; the step-independent
part of the network (the denoiser's ``condition``, the first guess included) runs once per chunk of
windows, not once per step or per draw. Chunks bound memory at ``rows_per_pass`` (windows x
samples) network rows. The reverse process runs over the residual from the guess and is mapped
back to values at the end, so conditioned cells come back exact.

Conditional vs unconditional. By default (CSDI) the conditioning cells reach the network as clean
values in a conditioning channel and as zeros in the noisy input. ``unconditional=True`` is
ImDiffusion's imputed diffusion: no clean value reaches the network; the conditioning cells enter
the noisy input forward-noised to the current step, so each step's estimate sees the context at
that step's noise level.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import torch

from diffimpute.data.batch import Windows
from diffimpute.diffusion.noise import RowNoise, fresh_noise
from diffimpute.diffusion.parameterisation import Prediction, to_epsilon
from diffimpute.diffusion.samplers import DDIMSampler, DDPMSampler, X0Range
from diffimpute.nn.denoiser import Condition, ResidualDenoiser


@dataclass
class SampleOutput:
    """samples: ``(windows, samples, features, length)`` in scaled units, conditioned cells exact.
    steps: for each kept schedule step ``t``, the denoiser's estimate of ``x_0`` at that step.
    guess: ``(windows, features, length)`` the first guess the samples refine (None without one)."""

    samples: torch.Tensor
    steps: dict[int, torch.Tensor] = field(default_factory=dict)
    guess: torch.Tensor | None = None


def condition_of(
    model: ResidualDenoiser, windows: Windows, cond_mask: torch.Tensor, unconditional: bool = False
) -> Condition:
    """The denoiser's step-independent inputs for ``windows`` given the cells in ``cond_mask``.

    Conditioning channel 0 holds the conditioning values (0 elsewhere; all 0 when
    ``unconditional``), then the windows' prior channels, if any.
    """
    given = torch.zeros_like(windows.values) if unconditional else windows.values * cond_mask
    given = given.unsqueeze(1)
    channels = given if windows.prior is None else torch.cat([given, windows.prior], dim=1)
    return model.condition(channels, cond_mask, windows.positions, windows.mask_index)


@torch.no_grad()
def sample(
    model: ResidualDenoiser,
    sampler: DDPMSampler | DDIMSampler,
    windows: Windows,
    cond_mask: torch.Tensor,
    n_samples: int,
    *,
    prediction: Prediction = "epsilon",
    rows_per_pass: int = 4096,
    generator: torch.Generator | None = None,
    keep_steps: Collection[int] = (),
    value_range: X0Range | None = None,
    unconditional: bool = False,
    device: torch.device | str = "cpu",
    on_chunk: Callable[[int], None] | None = None,
    row_ids: torch.Tensor | None = None,
) -> SampleOutput:
    """Draw ``n_samples`` completions of each window given the cells where ``cond_mask`` is True.

    With a ``generator``, window ``i`` draws its noise from ``(generator's seed, row_ids[i])`` alone
    (``diffusion.noise.RowNoise``), so the draws do not depend on ``rows_per_pass`` or on which other
    windows are in the call. ``row_ids``: ``(windows,)`` or ``(windows, k)`` non-negative int64 keys
    (default ``0 .. windows - 1``); a caller that passes its windows in parts, or that must draw a
    window as another process would (a partition of a long series), gives each window its own key.
    Without a generator, the global random state is used.

    ``value_range``: per-feature (low, high) in scaled units, each ``(features, 1)``: the clean
    estimate is clamped to it at every step (see ``diffusion.samplers``). ``on_chunk(n_windows_done)``
    is called after each chunk, for progress bars.
    """
    model.eval()
    n_windows = len(windows)
    row_ids = torch.arange(n_windows) if row_ids is None else row_ids
    samples_per_pass = min(n_samples, rows_per_pass)
    windows_per_pass = max(1, rows_per_pass // samples_per_pass)
    draws_out, guesses = [], []
    steps_out: dict[int, list[torch.Tensor]] = {t: [] for t in keep_steps}
    for start in range(0, n_windows, windows_per_pass):
        rows = slice(start, min(start + windows_per_pass, n_windows))
        chunk = windows[rows].to(device)
        mask = cond_mask[rows].to(device)
        condition = condition_of(model, chunk, mask, unconditional)
        draws, kept = [], {t: [] for t in keep_steps}
        for first in range(0, n_samples, samples_per_pass):
            count = min(samples_per_pass, n_samples - first)
            noise = generator
            if generator is not None:
                noise = RowNoise(generator.initial_seed(), row_ids[rows], first, n_samples)
            x, trajectory = _reverse(
                model, sampler, condition, chunk, mask, count, prediction, noise, keep_steps, value_range, unconditional
            )
            draws.append(x)
            for t, x0 in trajectory.items():
                kept[t].append(x0)
        draws_out.append(torch.cat(draws, dim=1).cpu())
        if condition.guess is not None:
            guesses.append(condition.guess.cpu())
        for t in keep_steps:
            steps_out[t].append(torch.cat(kept[t], dim=1).cpu())
        if on_chunk is not None:
            on_chunk(rows.stop - rows.start)
    return SampleOutput(
        samples=torch.cat(draws_out, dim=0),
        steps={t: torch.cat(parts, dim=0) for t, parts in steps_out.items()},
        guess=torch.cat(guesses, dim=0) if guesses else None,
    )


def _reverse(model, sampler, condition, chunk: Windows, mask, count, prediction, noise, keep_steps, value_range,
             unconditional):
    batch, n_features, length = chunk.values.shape
    given = mask.unsqueeze(1)
    values = chunk.values.unsqueeze(1)
    residual_range = None
    if value_range is not None:
        low, high = (bound.to(values.device, values.dtype).expand(batch, 1, n_features, length) for bound in value_range)
        residual_range = (model.to_residual(low, condition), model.to_residual(high, condition))
    x = fresh_noise(noise, torch.empty((batch, count, n_features, length), device=values.device, dtype=values.dtype))
    alpha_bars = sampler.schedule.alpha_bars
    trajectory = {}
    given_residual = model.to_residual(values, condition) if unconditional else None
    for i, t in enumerate(sampler.timesteps):
        alpha_bar = alpha_bars[t].to(device=x.device, dtype=x.dtype)
        if unconditional:
            context = fresh_noise(noise, x)
            seen = torch.where(given, alpha_bar.sqrt() * given_residual + (1 - alpha_bar).sqrt() * context, x)
        else:
            seen = x * ~given
        output = model(seen, torch.tensor([t], device=x.device), condition)
        eps = to_epsilon(output, x, alpha_bar, prediction)
        x, x0_hat = sampler.step(eps, i, x, noise, residual_range)
        if t in keep_steps:
            trajectory[t] = torch.where(given, values, model.from_residual(x0_hat, condition))
    return torch.where(given, values, model.from_residual(x, condition)), trajectory
