"""The diffusion training objective shared by every task: denoise the residual at target cells.

A task chooses which cells condition the model and which are targets (random observed cells for
the imputer, grating segments for the detector); this module noises the targets' residual from the
first guess (``CSDIDenoiser.to_residual``) at a random step and scores the network's prediction
(clean residual, noise or velocity) on the target cells only.
"""

from __future__ import annotations

import torch

from diffimpute.data.batch import Windows
from diffimpute.diffusion.parameterisation import Prediction, training_target
from diffimpute.diffusion.schedules import NoiseSchedule
from diffimpute.engine.sampling import conditioning_channels
from diffimpute.nn.csdi import CSDIDenoiser


def denoising_loss(
    model: CSDIDenoiser,
    schedule: NoiseSchedule,
    batch: Windows,
    cond_mask: torch.Tensor,
    target: torch.Tensor,
    generator: torch.Generator,
    prediction: Prediction,
    steps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error of the network's output over the ``target`` cells of ``batch``.

    cond_mask, target: ``(batch, features, length)`` bool. Cells neither conditioning nor target
    (truly missing) enter with a zero residual, i.e. at their guess. ``steps`` fixes the
    diffusion step of each window (default: drawn uniformly).
    """
    n = len(batch)
    device = batch.values.device
    if steps is None:
        steps = torch.randint(0, schedule.n_steps, (n,), generator=generator, device=device)
    noise = torch.randn(batch.values.shape, generator=generator, device=device)
    condition = model.condition(conditioning_channels(batch, cond_mask), cond_mask, batch.positions)
    residual = model.to_residual(batch.values, condition) * batch.observed
    alpha_bar = schedule.alpha_bars.to(device)[steps].to(noise.dtype).view(-1, 1, 1)
    noisy = alpha_bar.sqrt() * residual + (1 - alpha_bar).sqrt() * noise
    output = model((noisy * ~cond_mask).unsqueeze(1), steps, condition).squeeze(1)
    goal = training_target(residual, noise, alpha_bar, prediction)
    weight = target.to(noise.dtype)
    return ((output - goal) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)
