"""engine.sample: what the network sees under conditional and unconditional inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


def test_draws_do_not_depend_on_how_rows_are_grouped_into_passes() -> None:
    """The same seed gives the same draws whatever ``max_cells_per_pass`` (issue 12: up to 18.3
    apart before noise was keyed by row), for the imputer, the tabular imputer and the detector."""
    from diffimpute import DiffusionImputer, ImDiffusionDetector, TabularImputer
    from tests.conftest import TINY, structured, with_gaps

    gappy, _ = with_gaps(structured(), 0.3, seed=3)
    imputer = DiffusionImputer(**{**TINY, "max_epochs": 2, "sampler": "ddpm", "sampling_steps": None}).fit(gappy)
    wide = imputer.set_params(max_cells_per_pass=2**20).impute(gappy, n_samples=4, seed=5).samples
    narrow = imputer.set_params(max_cells_per_pass=16 * 3 * 2).impute(gappy, n_samples=4, seed=5).samples
    assert np.abs(wide - narrow).max() < 1e-4

    table = pd.DataFrame(gappy, columns=["a", "b", "c"])
    tabular = TabularImputer(hidden=16, n_layers=1, max_epochs=2, time_budget=None, device="cpu", verbose=False)
    tabular.fit(table)
    tabular.refines_ = True  # sample the network even if it did not beat its guess in two epochs
    wide = tabular.set_params(max_cells_per_pass=2**20).impute(table, n_samples=4, seed=5).samples
    narrow = tabular.set_params(max_cells_per_pass=8).impute(table, n_samples=4, seed=5).samples
    assert np.abs(wide - narrow).max() < 1e-4

    series = pd.DataFrame(structured(200, 3))
    detector = ImDiffusionDetector(window=16, stride=8, n_segments=4, channels=8, n_layers=1, n_heads=2, max_epochs=1,
                                   sampler="ddim", sampling_steps=2, device="cpu", verbose=False).fit(series)
    first = detector.set_params(max_cells_per_pass=2**20).score_samples(series)
    second = detector.set_params(max_cells_per_pass=16 * 3 * 3).score_samples(series)
    assert np.abs(first - second).max() < 1e-4 * max(1.0, np.abs(first).max())
