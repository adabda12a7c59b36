"""User images <-> the engine's windows, and every check on images a user passes.

Users give a stack of images as a NumPy array ``(n, height, width)`` (grey) or ``(n, height,
width, channels)`` (channels last, at most 4: grey, grey + alpha, RGB, RGBA), with NaN marking a
missing value. The engine sees each image as one window ``(channels, height * width)``: the
colour channels are its features and the pixels, in row-major order, its length.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from diffimpute._validation import NotNumericError
from diffimpute.data.batch import Windows

MAX_CHANNELS = 4
MIN_SIDE = 4  # a smaller image leaves no neighbourhood for a convolution to learn from
LARGE_PIXELS = 128 * 128  # beyond this, training and sampling on a CPU take long


@dataclass(frozen=True)
class ImageLayout:
    """The size of the images an estimator was fitted on: ``height x width`` pixels of ``channels``."""

    height: int
    width: int
    channels: int

    @property
    def pixels(self) -> int:
        return self.height * self.width

    def check_matches(self, images: np.ndarray, name: str = "X") -> None:
        """Images given after fitting must have the fitted size and channels."""
        _, height, width, channels = images.shape
        if (height, width, channels) != (self.height, self.width, self.channels):
            raise ValueError(
                f"{name} holds {height} x {width} images with {channels} channel(s), but the model was fitted "
                f"on {self.height} x {self.width} images with {self.channels}; resize them or fit a new model"
            )

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "channels": self.channels}

    @classmethod
    def from_dict(cls, state: dict) -> ImageLayout:
        return cls(int(state["height"]), int(state["width"]), int(state["channels"]))


def check_images(X: object, name: str = "X") -> np.ndarray:
    """Validate a stack of images and return it as float64 ``(n, height, width, channels)`` with NaN.

    Errors name the problem and the fix: a single image (2-D), channels first, more than 4
    channels, images smaller than 4 x 4, text or booleans, infinite values, an empty stack.
    Images of more than 128 x 128 pixels give a warning about CPU time.
    """
    if not isinstance(X, np.ndarray):
        if isinstance(X, (list, tuple)):
            X = np.asarray(X)
        else:
            raise TypeError(f"{name} must be a NumPy array of images (n, height, width[, channels]), "
                            f"got {type(X).__name__}")
    if X.dtype == bool or not np.issubdtype(X.dtype, np.number):
        raise NotNumericError(f"{name} must hold numbers (float with NaN for missing pixels), got dtype {X.dtype}")
    if np.iscomplexobj(X):
        raise NotNumericError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim == 2:
        raise ValueError(f"{name} has shape {X.shape}: one image; pass a stack of images, e.g. X[None] "
                         "for shape (1, height, width)")
    if X.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (n, height, width) or (n, height, width, channels), got {X.shape}")
    images = X[..., None] if X.ndim == 3 else X
    n, height, width, channels = images.shape
    if n == 0:
        raise ValueError(f"{name} holds no image (shape {X.shape}); pass at least one")
    if channels > MAX_CHANNELS:
        hint = ""
        if X.shape[1] <= MAX_CHANNELS:
            hint = " They look channels-first: use np.moveaxis(X, 1, -1)."
        raise ValueError(f"{name} has {channels} channels in its last axis (shape {X.shape}); images are channels "
                         f"last with at most {MAX_CHANNELS} (grey, RGB, RGBA).{hint}")
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"{name}'s images are {height} x {width} pixels; the inpainter needs at least "
                         f"{MIN_SIDE} x {MIN_SIDE} (for rows of numbers use TabularImputer)")
    values = images.astype(np.float64)
    if np.isinf(values).any():
        raise ValueError(f"{name} has infinite values; replace them with NaN to inpaint them "
                         "(e.g. X = np.where(np.isinf(X), np.nan, X))")
    if height * width > LARGE_PIXELS:
        warnings.warn(f"{name}'s images are {height} x {width} pixels; beyond 128 x 128 training and sampling on a "
                      "CPU take long (consider downscaling, or device='cuda')", stacklevel=3)
    return values


def to_windows(scaled: np.ndarray) -> Windows:
    """Scaled images ``(n, H, W, C)`` with NaN -> windows ``(n, C, H * W)`` (0 where missing)."""
    n, height, width, channels = scaled.shape
    cells = scaled.reshape(n, height * width, channels).transpose(0, 2, 1)
    observed = ~np.isnan(cells)
    return Windows(values=torch.from_numpy(np.where(observed, cells, 0.0).astype(np.float32)),
                   observed=torch.from_numpy(np.ascontiguousarray(observed)),
                   positions=torch.zeros(n, height * width))


def from_windows(cells: np.ndarray, layout: ImageLayout) -> np.ndarray:
    """Inverse of ``to_windows``' layout: ``(..., C, H * W)`` -> ``(..., H, W, C)``."""
    moved = np.moveaxis(cells, -2, -1)
    return moved.reshape(*cells.shape[:-2], layout.height, layout.width, layout.channels)
