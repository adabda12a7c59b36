"""Grating masks: complementary, covering every time step exactly once, for any segment count."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffimpute.masking.grating import (
    grating_masks,
    mask_targets,
    random_point_targets,
    scoring_masks,
    segment_bounds,
)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(2, 200), data=st.data())
def test_masks_cover_every_step_exactly_once(length: int, data) -> None:
    n_masks = data.draw(st.integers(2, min(5, length)))
    n_segments = data.draw(st.integers(n_masks, length))
    masks = grating_masks(length, n_segments, n_masks)
    assert masks.shape == (n_masks, length)
    assert torch.equal(masks.sum(dim=0), torch.ones(length, dtype=torch.long))
    assert masks.any(dim=1).all() and (~masks).any(dim=1).all()


@pytest.mark.parametrize("length,n_segments", [(10, 3), (100, 10), (7, 7), (9, 4)])
def test_segments_are_contiguous_and_alternate(length: int, n_segments: int) -> None:
    bounds = segment_bounds(length, n_segments)
    assert bounds[0] == 0 and bounds[-1] == length and (bounds[1:] - bounds[:-1] >= 1).all()
    masks = grating_masks(length, n_segments, 2)
    for k in range(n_segments):
        segment = masks[:, bounds[k] : bounds[k + 1]]
        assert segment[k % 2].all() and not segment[1 - k % 2].any()


@pytest.mark.parametrize("kind", ["grating", "checkerboard"])
def test_each_mask_family_hides_every_cell_exactly_once(kind: str) -> None:
    masks = scoring_masks(kind, 4, 20, 5, 2)
    assert masks.shape == (2, 4, 20) and torch.equal(masks.sum(dim=0), torch.ones(4, 20, dtype=torch.long))
    if kind == "grating":
        assert torch.equal(masks, grating_masks(20, 5, 2)[:, None, :].expand(2, 4, 20))
    else:  # neighbouring features alternate, so a hidden cell sees the other features at its time
        assert torch.equal(masks[:, 1], masks[:, 0].flip(0)) and torch.equal(masks[:, 2], masks[:, 0])


def test_checkerboard_is_the_grating_for_one_feature() -> None:
    assert torch.equal(scoring_masks("checkerboard", 1, 12, 4, 2), scoring_masks("grating", 1, 12, 4, 2))


def test_training_targets_are_whole_scoring_masks() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = scoring_masks("checkerboard", 3, 20, 4, 2)
    target, index = mask_targets(masks, 6, generator)
    assert target.shape == (6, 3, 20) and set(index.tolist()) <= {0, 1}
    for row, m in zip(target, index):
        assert torch.equal(row, masks[m])


def test_random_targets_keep_hidden_and_visible_cells() -> None:
    target = random_point_targets((50, 2, 10), 0.7, torch.Generator().manual_seed(0))
    flat = target.flatten(1)
    assert flat.any(dim=1).all() and (~flat).any(dim=1).all()
    assert 0.6 < target.float().mean() < 0.8


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: grating_masks(10, 1, 2), "n_segments"),
        (lambda: grating_masks(10, 11, 2), "cannot exceed"),
        (lambda: grating_masks(10, 4, 1), "n_masks"),
        (lambda: random_point_targets((2, 2, 2), 1.0, torch.Generator()), "ratio"),
        (lambda: scoring_masks("stripes", 2, 10, 4, 2), "masks"),
    ],
)
def test_bad_grating_parameters_raise(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
