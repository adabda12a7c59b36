"""Grating masks for imputation-based anomaly detection (ImDiffusion, Chen et al. VLDB 2024).

A grating mask hides whole time segments of a window (every feature at once), like the bars of
a grating. ``n_masks`` complementary masks take turns: segment ``k`` is hidden by mask
``k % n_masks``, so imputing the window once per mask predicts every time step exactly once,
each time from the segments around it. The imputation error at a step is then its anomaly
signal: normal steps are predictable from their context, anomalous ones are not.

Two mask families share that property:

- ``"grating"`` (ImDiffusion): segment ``k`` of every feature is hidden by mask ``k % n_masks``, so a
  hidden step is predicted from the time around it only.
- ``"checkerboard"``: segment ``k`` of feature ``f`` is hidden by mask ``(k + f) % n_masks``, so a
  hidden cell is also predicted from other features at the same time. A sustained shift of one
  feature, or a changed relation between features, then breaks the prediction, as it breaks a
  PCA reconstruction; with one feature it is the grating.

Masks are boolean with True meaning *hidden* (an imputation target), shape ``(n_masks, features,
length)``, matching ``masking.targets``.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from diffimpute._validation import check_choice, check_positive_int

MaskKind = Literal["grating", "checkerboard"]
TrainMasks = Literal["same", "random"]

# ---------------------------------------------------------------------------- masks


def segment_bounds(length: int, n_segments: int) -> np.ndarray:
    """Edges ``(n_segments + 1,)`` splitting ``[0, length)`` into near-equal contiguous segments.

    Segments differ in length by at most one step, and none is empty.
    """
    length = check_positive_int(length, "length")
    n_segments = check_positive_int(n_segments, "n_segments")
    if n_segments > length:
        raise ValueError(
            f"n_segments ({n_segments}) cannot exceed the window length ({length}); "
            "every segment needs at least one time step"
        )
    return np.linspace(0, length, n_segments + 1).round().astype(np.int64)


def grating_masks(length: int, n_segments: int, n_masks: int = 2) -> torch.Tensor:
    """The ``n_masks`` complementary grating masks of a window, ``(n_masks, length)`` bool.

    Mask ``m`` hides segments ``m, m + n_masks, m + 2 n_masks, ...``; every time step is hidden
    by exactly one mask, so the masks sum to one everywhere.
    """
    n_masks = check_positive_int(n_masks, "n_masks")
    if n_masks < 2:
        raise ValueError("n_masks must be >= 2: a single mask would hide the whole window")
    bounds = segment_bounds(length, n_segments)
    if n_segments < n_masks:
        raise ValueError(
            f"n_segments ({n_segments}) must be >= n_masks ({n_masks}) so that every mask hides "
            "something and keeps something visible"
        )
    owner = np.repeat(np.arange(n_segments) % n_masks, np.diff(bounds))  # (length,)
    return torch.from_numpy(owner[None, :] == np.arange(n_masks)[:, None])


def scoring_masks(kind: MaskKind, n_features: int, length: int, n_segments: int, n_masks: int = 2) -> torch.Tensor:
    """The ``n_masks`` complementary masks of family ``kind``, ``(n_masks, features, length)`` bool;
    every cell is hidden by exactly one of them."""
    check_choice(kind, get_args(MaskKind), "masks")
    owner = grating_masks(length, n_segments, n_masks).to(torch.int64).argmax(dim=0)  # (length,) mask of each step
    if kind == "checkerboard":
        owner = (owner[None, :] + torch.arange(n_features)[:, None]) % n_masks  # (features, length)
    else:
        owner = owner.expand(n_features, length)
    return owner[None] == torch.arange(n_masks)[:, None, None]


def mask_targets(masks: torch.Tensor, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets: each of ``batch`` windows takes one of ``masks`` ``(n_masks, features,
    length)`` at random. Returns ``(target (batch, features, length), mask_index (batch,) int64)``."""
    index = torch.randint(0, len(masks), (batch,), generator=generator, device=generator.device)
    return masks.to(generator.device)[index], index


def random_point_targets(
    shape: tuple[int, int, int], ratio: float, generator: torch.Generator
) -> torch.Tensor:
    """Hide each cell independently with probability ``ratio`` (the released ImDiffusion code
    trains this way with ``ratio=0.7`` although the paper describes grating masks).

    Every window keeps at least one visible and one hidden cell. Returns ``(batch, features,
    length)`` bool.
    """
    if not 0 < ratio < 1:
        raise ValueError(f"random mask ratio must be between 0 and 1 (exclusive), got {ratio!r}")
    batch = shape[0]
    target = torch.rand(shape, generator=generator, device=generator.device) < ratio
    flat = target.view(batch, -1)
    flat[:, 0] = True  # at least one target ...
    flat[:, -1] = False  # ... and at least one visible cell per window
    return target


