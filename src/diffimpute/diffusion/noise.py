"""Noise keyed by row, so that how rows are grouped into passes cannot change a single draw.

Drawing a chunk's noise from one shared generator ties every draw to the chunk layout: change
``max_cells_per_pass`` and the same seed gives other imputations. ``RowNoise`` instead seeds one
generator per (seed, row, call) and takes that row's slice of draws, so a row gets the same noise
whatever else shares its pass. Pure tensor code, no nn.Module.
"""

from __future__ import annotations

import numpy as np
import torch


class RowNoise:
    """Standard normal noise shaped ``(rows, samples, ...)`` for ``rows`` (global row numbers) and
    the draws ``first_sample .. first_sample + samples`` of ``n_samples``; each call (the initial
    noise, then one per step that adds noise) gets its own stream."""

    def __init__(self, seed: int, rows: torch.Tensor, first_sample: int, n_samples: int) -> None:
        self.seed, self.rows, self.first_sample, self.n_samples = seed, rows.tolist(), first_sample, n_samples
        self.calls = 0

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        call, self.calls = self.calls, self.calls + 1
        count, cell_shape = like.shape[1], like.shape[2:]
        parts = []
        for row in self.rows:
            state = np.random.SeedSequence([self.seed, row, call]).generate_state(2, dtype=np.uint32)
            generator = torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))
            draws = torch.randn((self.n_samples, *cell_shape), generator=generator)
            parts.append(draws[self.first_sample:self.first_sample + count])
        return torch.stack(parts).to(device=like.device, dtype=like.dtype)


def fresh_noise(noise: RowNoise | torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Noise shaped like ``like``: from ``RowNoise``, or from a generator (None: the global one)."""
    if isinstance(noise, RowNoise):
        return noise(like)
    return torch.randn(like.shape, generator=noise, device=like.device, dtype=like.dtype)
