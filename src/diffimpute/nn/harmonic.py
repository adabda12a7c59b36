"""Harmonic fill: the cheap first guess of missing pixels that the image model refines.

Each missing pixel becomes the average of its four neighbours, with the given pixels held fixed:
the discrete Laplace equation, solved by Jacobi iterations (Neumann boundary: a pixel on the
border averages with itself where a neighbour is missing). Jacobi alone needs about ``size ** 2``
sweeps to carry a value across a large hole, so the fill runs coarse to fine: the image is
halved until it is small, filled there, and each finer level starts from the coarser fill
upsampled and needs only a few sweeps. It is smooth, exact at given pixels, and costs a few
dozen 3 x 3 stencils per image.

Follows the guess interface of ``nn.guess``: ``(values, cond_mask, positions)`` with values and
cond_mask ``(batch, features, height * width)`` (features = colour channels) to ``(batch,
features, height * width)``, given pixels unchanged. A channel with no given pixel in an image
becomes 0 (the channel's mean in scaled units).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_SWEEPS_PER_LEVEL = 16
_COARSEST = 4  # stop halving below this many pixels on the shorter side


def _neighbour_mean(maps: torch.Tensor) -> torch.Tensor:
    """Mean of each pixel's four neighbours, ``(n, 1, H, W)``, replicating the border."""
    padded = F.pad(maps, (1, 1, 1, 1), mode="replicate")
    return (padded[:, :, :-2, 1:-1] + padded[:, :, 2:, 1:-1] + padded[:, :, 1:-1, :-2] + padded[:, :, 1:-1, 2:]) / 4


def harmonic_fill(maps: torch.Tensor, known: torch.Tensor, sweeps: int = _SWEEPS_PER_LEVEL) -> torch.Tensor:
    """Fill ``maps (n, 1, H, W)`` where ``known`` (same shape, bool) is False; known pixels unchanged."""
    height, width = maps.shape[-2:]
    weight = known.to(maps.dtype)
    if min(height, width) >= _COARSEST:
        count = F.avg_pool2d(weight, 2, ceil_mode=True)
        total = F.avg_pool2d(maps * weight, 2, ceil_mode=True)
        coarse_known = count > 0
        coarse = harmonic_fill(torch.where(coarse_known, total / count.clamp(min=1e-12), 0.0), coarse_known, sweeps)
        start = F.interpolate(coarse, scale_factor=2.0, mode="nearest")[:, :, :height, :width]
    else:
        given = weight.sum(dim=(2, 3), keepdim=True)
        start = ((maps * weight).sum(dim=(2, 3), keepdim=True) / given.clamp(min=1)).expand_as(maps)
    filled = torch.where(known, maps, start)
    for _ in range(sweeps):
        filled = torch.where(known, maps, _neighbour_mean(filled))
    return filled


class HarmonicGuess(nn.Module):
    """Harmonic fill of every channel of ``height x width`` images from their given pixels."""

    def __init__(self, height: int, width: int, sweeps: int = _SWEEPS_PER_LEVEL) -> None:
        super().__init__()
        self.height, self.width, self.sweeps = height, width, sweeps

    @torch.no_grad()
    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        batch, n_features, length = values.shape
        if length != self.height * self.width:
            raise ValueError(f"the harmonic guess was built for {self.height} x {self.width} images, got length {length}")
        shape = (batch * n_features, 1, self.height, self.width)
        filled = harmonic_fill((values * cond_mask).reshape(shape), cond_mask.reshape(shape), self.sweeps)
        return filled.reshape(batch, n_features, length)
