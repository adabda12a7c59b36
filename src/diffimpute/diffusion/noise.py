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
    """Standard normal noise shaped ``(rows, samples, ...)`` for ``rows`` and the draws
    ``first_sample .. first_sample + samples`` of ``n_samples``; each call (the initial noise, then
    one per step that adds noise) gets its own stream.

    ``rows``: ``(n,)`` non-negative row numbers, or ``(n, k)`` keys such as (series, window start)
    that name a row whatever else is in the call; row ``r`` draws from ``(seed, *r, call)``."""

    def __init__(self, seed: int, rows: torch.Tensor, first_sample: int, n_samples: int) -> None:
        self.seed, self.first_sample, self.n_samples = seed, first_sample, n_samples
        self.rows = rows.reshape(len(rows), -1).tolist()
        self.calls = 0

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        call, self.calls = self.calls, self.calls + 1
        count, cell_shape = like.shape[1], like.shape[2:]
        parts = []
        for row in self.rows:
            state = np.random.SeedSequence([self.seed, *row, call]).generate_state(2, dtype=np.uint32)
            generator = torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))
            draws = torch.randn((self.n_samples, *cell_shape), generator=generator)
            parts.append(draws[self.first_sample:self.first_sample + count])
        return torch.stack(parts).to(device=like.device, dtype=like.dtype)


def fresh_noise(noise: RowNoise | torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Noise shaped like ``like``: from ``RowNoise``, or from a generator (None: the global one)."""
    if isinstance(noise, RowNoise):
        return noise(like)
    return torch.randn(like.shape, generator=noise, device=like.device, dtype=like.dtype)


class RowUniform:
    """Uniform ``[0, 1)`` draws keyed by row like ``RowNoise``, for NumPy code that takes a
    ``Generator``: ``random((samples, rows, ...))`` gives row ``r`` the draws of ``(seed, *r, call)``
    (a stream apart from ``RowNoise``'s), so they do not depend on what else is in the call."""

    def __init__(self, seed: int, rows: torch.Tensor) -> None:
        self.seed, self.rows, self.calls = seed, rows.reshape(len(rows), -1).tolist(), 0

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        call, self.calls = self.calls, self.calls + 1
        if shape[1] != len(self.rows):
            raise ValueError(f"RowUniform keys {len(self.rows)} rows but was asked for shape {shape}")
        per_row = (shape[0], *shape[2:])
        parts = [np.random.default_rng(np.random.SeedSequence([self.seed, *row, call], spawn_key=(1,))).random(per_row)
                 for row in self.rows]
        return np.stack(parts, axis=1) if parts else np.empty(shape)
