"""Typed windows as the network sees them: no dicts of arrays, no batches unpacked by position."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffimpute.data.windowing import make_windows


@dataclass
class Windows:
    """A set of windows.

    values: ``(n, features, length)`` float32, scaled, 0 where missing.
    observed: ``(n, features, length)`` bool, True where a value was observed.
    positions: ``(n, length)`` float32 time of each step relative to the window start.
    prior: optional ``(n, channels, features, length)`` extra conditioning, e.g. a coarse estimate
        of every cell from a latent prior; the denoiser sees it beside the observed values.
    mask_index: optional ``(n,)`` int64, which of a task's fixed masks chose the targets of each
        window (the detector's grating masks); the denoiser embeds it.
    label: optional ``(n,)`` int64 class of each window for class-conditional generation
        (``tasks.augment``); a denoiser built with ``n_classes`` embeds it, ``n_classes`` itself
        being the null class of classifier-free guidance.
    """

    values: torch.Tensor
    observed: torch.Tensor
    positions: torch.Tensor
    prior: torch.Tensor | None = None
    mask_index: torch.Tensor | None = None
    label: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, rows: torch.Tensor | slice) -> Windows:
        return Windows(*(None if t is None else t[rows] for t in self._tensors()))

    def to(self, device: torch.device | str) -> Windows:
        return Windows(*(None if t is None else t.to(device) for t in self._tensors()))

    def repeat_each(self, times: int) -> Windows:
        """Each window ``times`` times in a row (``a, a, b, b, ...``), e.g. once per mask."""
        return Windows(*(None if t is None else t.repeat_interleave(times, 0) for t in self._tensors()))

    def with_observed_cells(self) -> Windows:
        """The windows holding at least one observed cell (the others have nothing to learn from)."""
        return self[torch.from_numpy(np.flatnonzero(self.observed.flatten(1).any(1).cpu().numpy()))]

    def _tensors(self) -> tuple[torch.Tensor | None, ...]:
        return self.values, self.observed, self.positions, self.prior, self.mask_index, self.label


def windows_from_panel(
    scaled: np.ndarray, positions: np.ndarray, window: int, stride: int, starts: np.ndarray | None = None
) -> tuple[Windows, np.ndarray]:
    """Cut a scaled panel ``(series, time, features)`` with NaNs into ``Windows`` plus their index.

    ``positions`` is ``(time,)``, shared by every series; ``starts`` as in ``make_windows``.
    """
    cut, index = make_windows(scaled, window, stride, starts)
    observed = ~np.isnan(cut)
    offsets = index[:, 1:2] + np.arange(window)
    window_positions = positions[offsets] - positions[index[:, 1:2]]
    return (
        Windows(
            values=torch.from_numpy(np.where(observed, cut, 0.0).astype(np.float32)),
            observed=torch.from_numpy(observed),
            positions=torch.from_numpy(window_positions.astype(np.float32)),
        ),
        index,
    )
