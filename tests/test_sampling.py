"""engine.sample: what the network sees under conditional and unconditional inputs."""

from __future__ import annotations

import pytest
import torch

from diffimpute.data.batch import Windows
from diffimpute.diffusion import DDPMSampler, NoiseSchedule
from diffimpute.engine.sampling import sample
from diffimpute.nn.csdi import CSDIDenoiser


class Recording(CSDIDenoiser):
    """Predicts zero noise and records every noisy input it is shown."""

    def __init__(self) -> None:
        super().__init__(2, channels=8, n_layers=1, n_heads=2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x_noisy, steps, condition):
        self.seen.append(x_noisy.clone())
        return torch.zeros_like(x_noisy)


@pytest.mark.parametrize("unconditional", [False, True])
def test_given_cells_reach_the_network_as_zeros_or_noised_to_the_current_step(unconditional: bool) -> None:
    values = torch.full((64, 2, 12), 3.0)
    windows = Windows(values, torch.ones_like(values, dtype=torch.bool), torch.arange(12.0).expand(64, 12))
    given = torch.zeros(64, 2, 12, dtype=torch.bool)
    given[..., 6:] = True
    schedule = NoiseSchedule(20, "quad", 1e-4, 0.5)
    model = Recording().eval()
    out = sample(model, DDPMSampler(schedule), windows, given, 2, generator=torch.Generator().manual_seed(0),
                 unconditional=unconditional)
    assert torch.equal(out.samples[..., 6:], values.unsqueeze(1).expand(64, 2, 2, 12)[..., 6:])  # given cells exact
    first = model.seen[0][..., 6:]  # the first (noisiest) step
    if not unconditional:
        assert torch.equal(first, torch.zeros_like(first))
        return
    alpha_bar = float(schedule.alpha_bars[19])
    noise = (first - alpha_bar**0.5 * 3.0) / (1 - alpha_bar) ** 0.5
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1.0) < 0.05  # exactly q(x_t | x_0)
    last = model.seen[-1][..., 6:]
    assert abs(float(last.mean()) - 3.0 * float(schedule.alpha_bars[0]) ** 0.5) < 0.05
