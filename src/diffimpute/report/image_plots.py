"""Inpainting pictures a person can check: original, masked, inpainted and uncertainty, one row per image."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diffimpute.report.plots import _save  # noqa: E402
from diffimpute.tasks.result import ImageInpaintingResult  # noqa: E402

_MISSING_COLOUR = "#ff00ff"  # magenta: rare in real images, so a hole is not mistaken for content


def _as_stack(images: np.ndarray) -> np.ndarray:
    """``(n, H, W)`` or ``(n, H, W, C)`` -> ``(n, H, W, C)`` float64."""
    images = np.asarray(images, dtype=np.float64)
    return images[..., None] if images.ndim == 3 else images


def _for_display(image: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """One image ``(H, W, C)`` -> what ``imshow`` shows: grey ``(H, W)`` or RGB(A) ``(H, W, 3|4)`` in
    [0, 1], each channel scaled by its range over the shown images; NaN stays NaN (grey) or turns magenta."""
    scaled = (image - low) / np.where(high > low, high - low, 1.0)
    scaled = np.clip(scaled, 0.0, 1.0)
    channels = image.shape[-1]
    if channels == 1:
        return scaled[..., 0]
    if channels == 2:  # grey + alpha: show the grey
        return scaled[..., 0]
    missing = np.isnan(image).any(axis=-1)
    rgb = np.where(np.isnan(scaled), 0.0, scaled)[..., :3]
    rgb[missing] = matplotlib.colors.to_rgb(_MISSING_COLOUR)
    return rgb


def inpainting_figure(
    masked: np.ndarray,
    inpainted: np.ndarray,
    uncertainty: np.ndarray,
    original: np.ndarray | None = None,
    *,
    max_images: int = 8,
    uncertainty_label: str = "90 % interval width",
) -> plt.Figure:
    """Rows: up to ``max_images`` images; columns: original (when given), masked (holes in magenta),
    inpainted, and the per-pixel uncertainty as a heat map with its own colour bar (0 at given pixels).

    All arrays are ``(n, H, W)`` or ``(n, H, W, C)`` in the images' own units; ``masked`` has NaN
    at missing values; ``uncertainty`` is one number per value (its mean over channels is shown).
    """
    masked, inpainted, uncertainty = _as_stack(masked), _as_stack(inpainted), _as_stack(uncertainty)
    panels = [("masked", masked), ("inpainted", inpainted)]
    if original is not None:
        panels.insert(0, ("original", _as_stack(original)))
    for name, images in panels + [("uncertainty", uncertainty)]:
        if images.shape != masked.shape:
            raise ValueError(f"{name} has shape {images.shape}, masked has {masked.shape}; they must match")
    n = min(len(masked), max_images)
    shown = np.concatenate([images[:n] for _, images in panels])
    low, high = np.nanmin(shown, axis=(0, 1, 2)), np.nanmax(shown, axis=(0, 1, 2))
    spread = uncertainty[:n].mean(axis=-1)
    top = float(np.nanmax(spread)) if np.isfinite(spread).any() and np.nanmax(spread) > 0 else 1.0
    columns = len(panels) + 1
    figure, axes = plt.subplots(n, columns, figsize=(1.7 * columns + 0.6, 1.7 * n + 0.4), squeeze=False)
    grey = plt.get_cmap("gray").with_extremes(bad=_MISSING_COLOUR)
    for row in range(n):
        for column, (name, images) in enumerate(panels):
            axes[row, column].imshow(_for_display(images[row], low, high), cmap=grey, vmin=0, vmax=1,
                                     interpolation="nearest")
            if row == 0:
                axes[row, column].set_title(name, fontsize=9)
        heat = axes[row, -1].imshow(spread[row], cmap="magma", vmin=0, vmax=top, interpolation="nearest")
        if row == 0:
            axes[row, -1].set_title(uncertainty_label, fontsize=9)
        figure.colorbar(heat, ax=axes[row, -1], fraction=0.046, pad=0.04)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.tight_layout()
    return figure


def plot_inpainting(result: ImageInpaintingResult, path: str | Path, original: np.ndarray | None = None,
                    **options) -> Path:
    """Write ``inpainting_figure`` of an ``ImageInpainter.impute`` result to ``path`` (PNG, SVG, PDF)."""
    masked = np.where(result.missing, np.nan, result.samples[0])
    figure = inpainting_figure(masked, result.median(), result.interval_width(0.1), original, **options)
    return _save(figure, path)
