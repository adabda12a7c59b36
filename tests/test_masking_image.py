"""Image holes: training targets keep the target contract; simulated holes have the asked shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffimpute.masking.image import image_targets, random_pixels, square_holes


def test_targets_hide_whole_pixels_and_keep_context() -> None:
    generator = torch.Generator().manual_seed(0)
    observed = torch.rand(500, 3, 36, generator=generator) > 0.2
    observed[0] = False  # an empty image gets no target
    observed[1] = False
    observed[1, :, 5] = True  # one observed pixel: nothing to hide it from
    target = image_targets(observed, 6, 6, generator)
    assert not (target & ~observed).any()
    pixels, hidden = observed.any(dim=1), target.any(dim=1)
    assert torch.equal(target, hidden.unsqueeze(1) & observed)  # all observed channels of a hidden pixel
    many = pixels.sum(dim=1) >= 2
    assert (hidden.sum(dim=1)[many] >= 1).all() and ((pixels & ~hidden).sum(dim=1)[many] >= 1).all()
    assert not hidden[:2].any()


def test_held_out_holes_respect_their_limits() -> None:
    generator = torch.Generator().manual_seed(1)
    observed = torch.ones(400, 1, 64, dtype=torch.bool)
    hidden = image_targets(observed, 8, 8, generator, rates=(0.1, 0.6), largest=0.5)[:, 0]
    assert hidden.float().mean(dim=1).max() <= 0.85  # no image nearly emptied
    rows = hidden.view(400, 8, 8).any(dim=2).sum(dim=1)
    cols = hidden.view(400, 8, 8).any(dim=1).sum(dim=1)
    rectangles = (rows * cols == hidden.sum(dim=1)) & (rows <= 4) & (cols <= 4)
    assert rectangles.float().mean() > 0.4  # about half the images get one rectangle of at most 4 x 4


def test_simulated_holes() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((200, 10, 12, 3))
    images[0, 0, 0, 0] = np.nan
    holes = random_pixels(images, 0.3, rng)
    assert holes.shape == images.shape and abs(holes.mean() - 0.3) < 0.01 and not holes[0, 0, 0, 0]
    assert (holes.all(axis=-1) | ~holes.any(axis=-1))[1:].all()  # whole pixels
    squares = square_holes(images[..., 0], 4, rng)
    assert (squares.sum(axis=(1, 2))[1:] == 16).all()
    with pytest.raises(ValueError, match="does not fit"):
        square_holes(images, 11, rng)
