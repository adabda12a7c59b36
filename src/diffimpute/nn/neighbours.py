"""Nearest-neighbour fill: a first guess that borrows missing pixels from similar training images.

Each image is compared with a bank of training images (the donors) on the values it has: the
mean squared difference over the entries given in the image and observed in the donor. The
``k`` nearest donors' values, averaged, fill its missing entries (KNN imputation, as
scikit-learn's ``KNNImputer`` with uniform weights); an entry no chosen donor observes takes the
harmonic fill (``nn.harmonic``). Where images repeat a few shapes (digits, glyphs, icons, faces
in a fixed frame) this is a strong guess that a local fill cannot match, and the diffusion model
then refines it.

No leak in training: while the module is in training mode (``nn.Module.train()``), donors that
match an image on every given entry (distance 0, as its own copy in the bank does) are skipped,
so an image never borrows its own hidden pixels. In evaluation mode every donor counts.

Follows the guess interface of ``nn.guess``: ``(values, cond_mask, positions)``, values and
cond_mask ``(batch, features, height * width)``, to ``(batch, features, height * width)`` with
the given entries unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from diffimpute.nn.harmonic import HarmonicGuess

_SAME = 1e-6  # mean squared difference (scaled units) under which a donor counts as the image itself
_CHUNK = 256  # images compared with the bank at once


class NeighbourGuess(nn.Module):
    """Average of the ``k`` donors nearest to each image on its given entries.

    Parameters
    ----------
    n_donors, n_features, height, width: size of the donor bank (filled by ``fit``) and of the images.
    """

    def __init__(self, n_donors: int, n_features: int, height: int, width: int) -> None:
        super().__init__()
        length = height * width
        self.register_buffer("donors", torch.zeros(n_donors, n_features * length))
        self.register_buffer("donor_observed", torch.zeros(n_donors, n_features * length, dtype=torch.bool))
        self.register_buffer("k", torch.tensor(5))
        self.fallback = HarmonicGuess(height, width)

    @torch.no_grad()
    def fit(self, values: torch.Tensor, observed: torch.Tensor) -> NeighbourGuess:
        """Fill the bank with ``values`` observed where ``observed``, both ``(n_donors, features, length)``."""
        if values.shape[0] != self.donors.shape[0]:
            raise ValueError(f"the bank holds {self.donors.shape[0]} donors, got {values.shape[0]}")
        self.donors.copy_(torch.where(observed, values, 0.0).flatten(1))
        self.donor_observed.copy_(observed.flatten(1))
        return self

    def _distances(self, given: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Mean squared difference ``(rows, donors)`` over entries given in a row and observed in a
        donor; infinite where they share none."""
        donor_weight = self.donor_observed.to(given.dtype)
        donors = self.donors.to(given.dtype)
        squared = (weight * given**2) @ donor_weight.T - 2 * (weight * given) @ donors.T + weight @ (donors**2).T
        shared = weight @ donor_weight.T
        return torch.where(shared > 0, squared.clamp(min=0) / shared.clamp(min=1), torch.inf)

    @torch.no_grad()
    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        batch, n_features, length = values.shape
        fallback = self.fallback(values, cond_mask, positions).flatten(1)
        given, weight = (values * cond_mask).flatten(1), cond_mask.flatten(1).to(values.dtype)
        k = min(int(self.k), len(self.donors))
        parts = []
        for rows in torch.arange(batch, device=values.device).split(_CHUNK):
            distance = self._distances(given[rows], weight[rows])
            if self.training:
                distance = torch.where(distance < _SAME, torch.inf, distance)
            nearest = distance.topk(k, dim=1, largest=False).indices  # (rows, k)
            usable = torch.isfinite(distance.gather(1, nearest)).unsqueeze(-1)  # (rows, k, 1)
            seen = self.donor_observed[nearest] & usable  # (rows, k, entries)
            total = (self.donors[nearest].to(values.dtype) * seen).sum(dim=1)
            count = seen.sum(dim=1)
            parts.append(torch.where(count > 0, total / count.clamp(min=1), fallback[rows]))
        estimate = torch.cat(parts).view(batch, n_features, length)
        return torch.where(cond_mask, values, estimate)
