"""Which pixels of an image to hide: training targets and simulated holes for evaluation.

A pixel is hidden in all its colour channels at once (a scratch or an occluder removes the whole
pixel). Two shapes cover the holes images have: scattered pixels (dead pixels, a sparse scan)
and rectangles (an occluder, a cut-out, a lost block of a compressed image).

Training targets (``image_targets``) take, per image, scattered pixels at a rate drawn uniformly
from [0, 1) or one rectangle whose sides are drawn uniformly from 1 to the image's, half the images
each, so the model learns every amount of context and both shapes; narrower ranges give typical
holes to check a model on. Like every target strategy
(``masking.targets``), an image with at least two observed pixels hides at least one and keeps
at least one.

``random_pixels`` and ``square_holes`` simulate holes in NumPy images ``(n, height, width[,
channels])`` for tests, examples and benchmarks.
"""

from __future__ import annotations

import numpy as np
import torch

from diffimpute._validation import check_positive_int

# ---------------------------------------------------------------------------- training targets


def _rectangles(batch: int, max_height: int, max_width: int, height: int, width: int, generator: torch.Generator,
                device: torch.device) -> torch.Tensor:
    """One rectangle per image, sides uniform in [1, max_height] x [1, max_width], placed uniformly
    inside ``height x width``: ``(batch, H * W)``."""
    sides = torch.rand(batch, 2, generator=generator, device=device)
    tall = (sides[:, 0] * max_height).long() + 1
    wide = (sides[:, 1] * max_width).long() + 1
    corner = torch.rand(batch, 2, generator=generator, device=device)
    top = (corner[:, 0] * (height - tall + 1)).long()
    left = (corner[:, 1] * (width - wide + 1)).long()
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + tall).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + wide).view(-1, 1, 1)))
    return inside.view(batch, height * width)


def image_targets(observed: torch.Tensor, height: int, width: int, generator: torch.Generator,
                  rates: tuple[float, float] = (0.0, 1.0), largest: float = 1.0) -> torch.Tensor:
    """Training targets ``(batch, channels, H * W)`` for images observed where ``observed`` (same shape).

    Half the images hide scattered pixels at a rate drawn uniformly from ``rates``, half one
    rectangle whose sides are at most ``largest`` times the image's (see the module notes); a
    pixel is hidden in every channel it is observed in.
    """
    batch, _, length = observed.shape
    device = observed.device
    pixels = observed.any(dim=1)  # (batch, H*W)
    rate = rates[0] + (rates[1] - rates[0]) * torch.rand(batch, 1, generator=generator, device=device)
    scattered = torch.rand(batch, length, generator=generator, device=device) < rate
    use_scattered = torch.rand(batch, 1, generator=generator, device=device) < 0.5
    rectangles = _rectangles(batch, max(1, round(largest * height)), max(1, round(largest * width)), height, width,
                             generator, device)
    hidden = torch.where(use_scattered, scattered, rectangles) & pixels
    # The contract: at least one hidden and one kept pixel where two or more are observed.
    pick = torch.rand(batch, length, generator=generator, device=device).masked_fill(~pixels, -1.0).argmax(dim=1)
    n_hidden, n_pixels = hidden.sum(dim=1), pixels.sum(dim=1)
    one = torch.nn.functional.one_hot(pick, length).bool()
    hidden = torch.where(((n_hidden == 0) & (n_pixels >= 2)).unsqueeze(1), one, hidden)
    hidden = torch.where((n_hidden == n_pixels).unsqueeze(1), hidden & ~one, hidden)
    return hidden.unsqueeze(1) & observed


# ---------------------------------------------------------------------------- simulated holes


def _pixel_shape(images: np.ndarray) -> tuple[int, int, int]:
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (n, height, width) or (n, height, width, channels), got shape {images.shape}")
    return images.shape[:3]


def _in_every_channel(pixels: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Pixel mask ``(n, H, W)`` -> entry mask of ``images``' shape, limited to observed entries."""
    hide = pixels if images.ndim == 3 else np.repeat(pixels[..., None], images.shape[3], axis=3)
    return hide & ~np.isnan(images)


def random_pixels(images: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Hide each pixel with probability ``rate``; a mask of ``images``' shape, True only where observed."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    return _in_every_channel(rng.random(_pixel_shape(images)) < rate, images)


def square_holes(images: np.ndarray, size: int, rng: np.random.Generator, count: int = 1) -> np.ndarray:
    """Hide ``count`` ``size x size`` squares per image, each at a uniformly random place inside it."""
    n, height, width = _pixel_shape(images)
    size, count = check_positive_int(size, "size"), check_positive_int(count, "count")
    if size > min(height, width):
        raise ValueError(f"a {size} x {size} hole does not fit in {height} x {width} images")
    pixels = np.zeros((n, height, width), dtype=bool)
    for _ in range(count):
        top = rng.integers(0, height - size + 1, size=n)
        left = rng.integers(0, width - size + 1, size=n)
        rows = np.arange(height)[None, :, None]
        cols = np.arange(width)[None, None, :]
        pixels |= ((rows >= top[:, None, None]) & (rows < top[:, None, None] + size)
                   & (cols >= left[:, None, None]) & (cols < left[:, None, None] + size))
    return _in_every_channel(pixels, images)
