"""The diffusion training objective shared by every task: denoise the residual at target cells.

A task chooses which cells condition the model and which are targets (random observed cells for
the imputer, grating segments for the detector); this module noises the targets' residual from the
first guess (``ResidualDenoiser.to_residual``) at a random step and scores the network's prediction
(clean residual, noise or velocity) on the target cells only.
"""

from __future__ import annotations

import torch

from diffimpute.data.batch import Windows
from diffimpute.diffusion.parameterisation import Prediction, training_target
from diffimpute.diffusion.schedules import NoiseSchedule
from diffimpute.engine.distributed import WHOLE, Shard
from diffimpute.engine.sampling import condition_of
from diffimpute.nn.denoiser import ResidualDenoiser


def denoising_loss(
    model: ResidualDenoiser,
    schedule: NoiseSchedule,
    batch: Windows,
    cond_mask: torch.Tensor,
    target: torch.Tensor,
    generator: torch.Generator,
    prediction: Prediction,
    steps: torch.Tensor | None = None,
    unconditional: bool = False,
    shard: Shard = WHOLE,
    draws: int = 1,
    residual_limit: float | None = None,
) -> torch.Tensor:
    """Mean squared error of the network's output over the ``target`` cells of ``batch``.

    cond_mask, target: ``(batch, features, length)`` bool. Cells neither conditioning nor target
    (truly missing) enter with a zero residual, i.e. at their guess. ``steps`` fixes the
    diffusion step of each window (default: drawn uniformly). ``unconditional``: conditioning cells
    reach the network only noised like the targets (see ``engine.sampling``). ``shard``: the rows
    this process runs the network on; steps and noise are drawn for the whole batch and the mean
    is over the whole batch's target cells, so the shards' gradients add up to one process's.
    ``draws``: noise levels per window, sharing one ``condition`` pass (worth it for a denoiser
    whose conditioning is the expensive part, as in pretraining). ``residual_limit``: clamp the
    residual's magnitude, so that a target far outside its window's cells cannot swamp a batch.
    """
    n = len(batch)
    device = batch.values.device
    if steps is None:
        steps = torch.randint(0, schedule.n_steps, (n, draws), generator=generator, device=device)
    elif draws != 1:
        raise ValueError("fixed steps are one per window: pass draws=1 with steps")
    steps = steps.view(n, draws)
    noise = torch.randn((n, draws, *batch.values.shape[1:]), generator=generator, device=device)
    count = target.sum() * draws
    mine = shard.rows
    batch, cond_mask, target, steps, noise = batch[mine], cond_mask[mine], target[mine], steps[mine], noise[mine]
    condition = condition_of(model, batch, cond_mask, unconditional)
    residual = model.to_residual(batch.values, condition) * batch.observed
    if residual_limit is not None:
        residual = residual.clamp(-residual_limit, residual_limit)
    residual = residual.unsqueeze(1)
    alpha_bar = schedule.alpha_bars.to(device)[steps].to(noise.dtype).unsqueeze(-1).unsqueeze(-1)
    noisy = alpha_bar.sqrt() * residual + (1 - alpha_bar).sqrt() * noise
    seen = noisy if unconditional else noisy * ~cond_mask.unsqueeze(1)
    output = model(seen, steps.flatten(), condition)
    goal = training_target(residual, noise, alpha_bar, prediction)
    weight = target.unsqueeze(1).to(noise.dtype)
    return shard.mean(((output - goal) ** 2 * weight).sum(), count.to(noise.dtype))


@torch.no_grad()
def guess_residual_scale(model: ResidualDenoiser, batch: Windows, target: torch.Tensor) -> torch.Tensor:
    """Per-feature RMS error of the model's guess on ``target`` cells given the other observed
    ones: the residual's natural unit (``CSDIDenoiser.residual_scale``), ``(features, 1)``.

    A feature with no target cell takes the overall RMS; tiny scales are floored at 0.01.
    """
    cond = batch.observed & ~target
    guess = model.guess(batch.values, cond, batch.positions)
    errors = (batch.values - guess) ** 2 * target
    count = target.sum(dim=(0, 2))
    overall = errors.sum() / target.sum().clamp(min=1)
    scale = torch.where(count > 0, errors.sum(dim=(0, 2)) / count.clamp(min=1), overall).sqrt()
    return scale.clamp(min=1e-2).view(-1, 1)
