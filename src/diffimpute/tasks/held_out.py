"""Observed cells held out from training: which choose the model, which only report.

The refining imputers hide a share of the observed cells from training. Half of those targets
(``picked``) choose the checkpoint, the fallback and the per-channel guess; the other half
(``reported``) only measure ``validation_``, so the figures a user reads were not used to make the
choices they describe. ``UnseenResiduals`` are their kin from training cells: errors of a
cross-fitted guess at cells its trees never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffimpute.data.batch import Windows
from diffimpute.engine.calibration import gap_bins


class HeldOut:
    """Held-out observed cells in non-overlapping windows: conditioning = the other observed cells.

    ``reported``: the target cells that ``validation_`` is measured on; the others (``picked``)
    choose the checkpoint and whether the model beats its guess, so the figures a user reads were
    not used to make those choices. All target cells are hidden from the model alike."""

    def __init__(self, windows: Windows, target: torch.Tensor, reported: torch.Tensor | None = None) -> None:
        self.windows = windows
        self.target = target
        self.reported = torch.zeros_like(target) if reported is None else reported & target
        self.cond_mask = windows.observed & ~target

    @property
    def picked(self) -> torch.Tensor:
        return self.target & ~self.reported

    @property
    def scored(self) -> torch.Tensor:
        """The cells ``validation_`` is measured on: the reported half, or all targets where that
        is empty (a single held-out cell cannot be halved)."""
        return self.reported if self.reported.any() else self.target

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, rows: slice) -> HeldOut:
        return HeldOut(self.windows[rows], self.target[rows], self.reported[rows])

    def split_report(self, seed: int) -> HeldOut:
        """The same cells with a seeded half of the targets set aside for reporting."""
        generator = torch.Generator().manual_seed(seed)
        return HeldOut(self.windows, self.target, torch.rand(self.target.shape, generator=generator) < 0.5)

    def cells(self) -> HeldCells:
        """NumPy views for scoring and calibration, each ``(windows, features, length)``."""
        target, given = self.target.numpy(), self.cond_mask.numpy()
        n_windows, n_features, _ = target.shape
        return HeldCells(
            truth=self.windows.values.numpy().astype(np.float64),
            target=target,
            reported=self.reported.numpy(),
            given=given,
            feature=np.broadcast_to(np.arange(n_features)[None, :, None], target.shape),
            gap=gap_bins(given),
            even=np.broadcast_to((np.arange(n_windows) % 2 == 0)[:, None, None], target.shape),
        )


@dataclass(frozen=True)
class HeldCells:
    """Held-out windows as arrays: truth, target, reported and given cells, each cell's feature and
    gap-length bin, and which windows are even (the two halves of cross-fitted calibration)."""

    truth: np.ndarray
    target: np.ndarray
    reported: np.ndarray
    given: np.ndarray
    feature: np.ndarray
    gap: np.ndarray
    even: np.ndarray


def reported_cells(target: np.ndarray, arrays: HeldCells) -> np.ndarray:
    """The target cells ``validation_`` is measured on: the reported half, or (with a single held-out
    cell, which cannot be halved) all of them."""
    reported = target & arrays.reported
    return reported if reported.any() else target


@dataclass(frozen=True)
class UnseenResiduals:
    """The guess's errors at training cells it never saw (a cross-fitted guess), in units of each
    feature's residual scale, with each cell's feature and gap-length bin, each ``(cells,)``: more
    cells to calibrate the guess's own intervals on than the held-out ones alone."""

    residual: np.ndarray
    feature: np.ndarray
    gap: np.ndarray

    def after(self, residual: np.ndarray, feature: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, ...]:
        """Other cells' ``residual``, ``feature`` and ``gap`` ``(cells,)`` with these cells appended."""
        return (np.concatenate([residual, self.residual]), np.concatenate([feature, self.feature]),
                np.concatenate([gap, self.gap]))
