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

Class-conditional draws. Windows with a ``label`` reach a denoiser built with ``n_classes``;
``guidance_scale`` w != 1 turns on classifier-free guidance (Ho & Salimans 2022): every step also
asks for the null class's prediction, in the same network pass, and steps on
``eps_null + w (eps_label - eps_null)`` (w = 1: the plain conditional model, w = 0: unconditional).

Variations of real windows. ``strength`` s in [0, 1] starts the reverse process part-way (SDEdit,
Meng et al. 2022; DA-Fusion's augmentation): the windows' own values, forward-noised to the
sampler's step ``ceil(s * n_steps)`` from the end, are denoised from there, so s = 0 returns them
unchanged and s = 1 draws afresh. Cells that are neither observed nor conditioning are generated:
the process then runs from pure noise and, until the start step, the observed cells are put back
forward-noised to each step (RePaint's replacement, Lugmayr et al. 2022), so the generated cells
fit the observed ones when those start to move.
"""

from __future__ import annotations

import dataclasses
import math
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
    return model.condition(channels, cond_mask, windows.positions, windows.mask_index, label=windows.label)


def _paired(first: Condition, second: Condition) -> Condition:
    """Two conditions stacked along the batch axis, so that one network pass serves both."""
    return Condition(
        input_bias=torch.cat([first.input_bias, second.input_bias]),
        side=[torch.cat(pair) for pair in zip(first.side, second.side)],
        guess=None if first.guess is None else torch.cat([first.guess, second.guess]),
        scale=None if first.scale is None else torch.cat([first.scale, second.scale]),
    )


def start_index(sampler: DDPMSampler | DDIMSampler, strength: float) -> int:
    """Index into ``sampler.timesteps`` where a variation of strength ``strength`` starts: the last
    ``ceil(strength * n_steps)`` steps are run (none at 0, all at 1)."""
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be between 0 (a copy) and 1 (a fresh sample), got {strength!r}")
    n_steps = len(sampler.timesteps)
    return n_steps - math.ceil(strength * n_steps)


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
    guidance_scale: float = 1.0,
    strength: float | None = None,
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

    ``guidance_scale``: classifier-free guidance for windows with a ``label`` (module notes).
    ``strength``: None draws afresh; a number in [0, 1] varies the windows' observed values
    (module notes). With any cell of ``windows`` neither observed nor conditioning, every window
    runs every step, so a caller varying many windows passes those with gaps apart.
    """
    model.eval()
    start_step = None if strength is None else start_index(sampler, strength)
    first_step = 0 if start_step is None or not (windows.observed | cond_mask).all() else start_step
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
        guided = None
        if guidance_scale != 1 and chunk.label is not None:
            null = dataclasses.replace(chunk, label=torch.full_like(chunk.label, model.n_classes))
            guided = (_paired(condition, condition_of(model, null, mask, unconditional)), guidance_scale)
        draws, kept = [], {t: [] for t in keep_steps}
        for first in range(0, n_samples, samples_per_pass):
            count = min(samples_per_pass, n_samples - first)
            noise = generator
            if generator is not None:
                noise = RowNoise(generator.initial_seed(), row_ids[rows], first, n_samples)
            x, trajectory = _reverse(
                model, sampler, condition, chunk, mask, count, prediction, noise, keep_steps, value_range, unconditional,
                guided, start_step, first_step,
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
             unconditional, guided=None, start=None, first_step=0):
    """One chunk's reverse process. ``guided``: (label and null conditions stacked, guidance scale);
    ``start``: where the observed non-conditioning cells start to move, run from ``first_step``."""
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
    known = None if start is None else (chunk.observed & ~mask).unsqueeze(1)
    clean = None if start is None else model.to_residual(values, condition)
    for i, t in enumerate(sampler.timesteps):
        if i < first_step:
            continue
        alpha_bar = alpha_bars[t].to(device=x.device, dtype=x.dtype)
        if known is not None and i <= start:  # until the start: the observed cells, noised to this step
            x = torch.where(known, alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * fresh_noise(noise, x), x)
        if unconditional:
            context = fresh_noise(noise, x)
            seen = torch.where(given, alpha_bar.sqrt() * given_residual + (1 - alpha_bar).sqrt() * context, x)
        else:
            seen = x * ~given
        step = torch.tensor([t], device=x.device)
        if guided is None:
            eps = to_epsilon(model(seen, step, condition), x, alpha_bar, prediction)
        else:
            paired, scale = guided
            with_label, without = to_epsilon(model(torch.cat([seen, seen]), step, paired), torch.cat([x, x]),
                                             alpha_bar, prediction).chunk(2)
            eps = without + scale * (with_label - without)
        x, x0_hat = sampler.step(eps, i, x, noise, residual_range)
        if t in keep_steps:
            trajectory[t] = torch.where(given, values, model.from_residual(x0_hat, condition))
    kept = given if known is None or start < len(sampler.timesteps) else given | known  # strength 0: a copy
    return torch.where(kept, values, model.from_residual(x, condition)), trajectory
