"""Pictures of real beside generated samples, for a person to judge an augmenter by eye.

Tables: each column's distribution, real against generated (histograms on shared bins for numeric
columns, level shares for categorical ones), and the first two numeric columns against each other.
Series windows: a few real windows above a few generated ones. Images: a grid of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from diffimpute.io.files import atomic_write_bytes  # noqa: E402
from diffimpute.report.plots import figure_bytes  # noqa: E402

PlotKind = Literal["auto", "table", "series", "image"]
_REAL, _GENERATED = "tab:gray", "tab:blue"


def plot_augmentation(real, generated, path: str | Path, **options) -> Path:
    """Write ``augmentation_figure(real, generated, **options)`` to ``path`` (PNG, SVG, PDF by suffix)."""
    path = Path(path)
    atomic_write_bytes(path, figure_bytes(augmentation_figure(real, generated, **options), path.suffix.lstrip(".") or "png"))
    return path


def augmentation_figure(real, generated, *, kind: PlotKind = "auto", columns: Sequence[str] | None = None,
                        n_show: int = 6, seed: int = 0) -> plt.Figure:
    """Real samples beside generated ones, in the form both share.

    real, generated: two DataFrames with the same columns or two arrays (2-D tables, 3-D series
    windows ``(n, time, features)``, 4-D images ``(n, height, width, colours)``; pass
    ``kind="image"`` for grey images ``(n, height, width)``). columns: table columns to show
    (default the first 6). n_show: windows or images shown of each, picked at random with ``seed``.
    """
    real_form, generated_form = _form(real, kind), _form(generated, kind)
    if real_form != generated_form:
        raise ValueError(f"real data are a {real_form} but generated data a {generated_form}; pass the same form")
    if real_form == "table":
        return _table_figure(_as_frame(real), _as_frame(generated), columns)
    rng = np.random.default_rng(seed)
    shown = [np.asarray(a)[rng.choice(len(a), size=min(n_show, len(a)), replace=False)] for a in (real, generated)]
    return _series_figure(*shown) if real_form == "series" else _image_figure(*shown)


def _form(data, kind: PlotKind) -> str:
    if isinstance(data, pd.DataFrame):
        return "table"
    ndim = np.ndim(data)
    if kind != "auto":
        return kind
    if ndim not in (2, 3, 4):
        raise ValueError(f"cannot plot {ndim}-D data; pass a table (2-D), series windows (3-D) or images (4-D)")
    return {2: "table", 3: "series", 4: "image"}[ndim]


def _as_frame(data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    array = np.asarray(data)
    return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])


def _table_figure(real: pd.DataFrame, generated: pd.DataFrame, columns: Sequence[str] | None) -> plt.Figure:
    names = [str(c) for c in real.columns]
    chosen = names[:6] if columns is None else [str(c) for c in columns]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; the data have {names}")
    lookup = dict(zip(names, real.columns))
    numeric = [c for c in chosen if pd.api.types.is_numeric_dtype(real[lookup[c]]) and
               not pd.api.types.is_bool_dtype(real[lookup[c]])]
    panels = len(chosen) + (len(numeric) >= 2)
    width = min(3, panels)
    figure, axes = plt.subplots(-(-panels // width), width, figsize=(4 * width, 3 * -(-panels // width)), squeeze=False)
    for ax, name in zip(axes.flat, chosen):
        column = lookup[name]
        if name in numeric:
            values = [pd.to_numeric(d[column], errors="coerce").dropna().to_numpy(dtype=float) for d in (real, generated)]
            bins = np.histogram_bin_edges(np.concatenate(values), bins=30)
            for data, color, label in zip(values, (_REAL, _GENERATED), ("real", "generated")):
                ax.hist(data, bins=bins, density=True, alpha=0.5, color=color, label=label)
        else:
            shares = pd.DataFrame({"real": real[column].astype(str).value_counts(normalize=True),
                                   "generated": generated[column].astype(str).value_counts(normalize=True)}).fillna(0)
            shares.head(12).plot.bar(ax=ax, color=[_REAL, _GENERATED], alpha=0.8, legend=False, rot=30)
        ax.set_title(name, fontsize=9)
    if len(numeric) >= 2:
        ax = axes.flat[len(chosen)]
        x, y = lookup[numeric[0]], lookup[numeric[1]]
        for data, color, label in zip((real, generated), (_REAL, _GENERATED), ("real", "generated")):
            ax.scatter(data[x], data[y], s=6, alpha=0.5, color=color, label=label)
        ax.set_xlabel(numeric[0], fontsize=8)
        ax.set_ylabel(numeric[1], fontsize=8)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("real (grey) vs generated (blue)")
    figure.tight_layout()
    return figure


def _series_figure(real: np.ndarray, generated: np.ndarray) -> plt.Figure:
    shown = max(len(real), len(generated))
    figure, axes = plt.subplots(2, shown, figsize=(2.6 * shown, 4.4), sharey=True, squeeze=False)
    for row, (windows, name) in enumerate(((real, "real"), (generated, "generated"))):
        for ax, window in zip(axes[row], windows):
            ax.plot(window[:, :4], lw=1)
        axes[row, 0].set_ylabel(name)
    for ax in axes.flat:
        if not ax.lines:
            ax.axis("off")
    figure.suptitle("series windows: real (top) vs generated (bottom); up to 4 features each")
    figure.tight_layout()
    return figure


def _image_figure(real: np.ndarray, generated: np.ndarray) -> plt.Figure:
    shown = max(len(real), len(generated))
    low = min(np.nanmin(real), np.nanmin(generated))
    high = max(np.nanmax(real), np.nanmax(generated))
    figure, axes = plt.subplots(2, shown, figsize=(1.6 * shown, 3.6), squeeze=False)
    for row, (images, name) in enumerate(((real, "real"), (generated, "generated"))):
        for ax, image in zip(axes[row], images):
            picture = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
            if picture.ndim == 3:  # colour: scaled to [0, 1] over both sets
                ax.imshow(np.clip((picture - low) / max(high - low, 1e-12), 0, 1))
            else:
                ax.imshow(picture, cmap="gray", vmin=low, vmax=high)
        axes[row, 0].set_ylabel(name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle("real (top) vs generated (bottom)")
    figure.tight_layout()
    return figure
