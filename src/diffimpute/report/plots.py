"""Pictures a person can check: each series with its imputation band, and the methods compared."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from diffimpute.data.schema import to_panel  # noqa: E402
from diffimpute.io.files import atomic_write_bytes  # noqa: E402
from diffimpute.tasks.evaluate import labelled  # noqa: E402
from diffimpute.tasks.result import ImputationResult  # noqa: E402


def plot_imputation(result: ImputationResult, path: str | Path, **options) -> Path:
    """Write ``imputation_figure(result, **options)`` to ``path`` (PNG, SVG, PDF by suffix)."""
    return _save(imputation_figure(result, **options), path)


def imputation_figure(
    result: ImputationResult,
    *,
    columns: Sequence[str] | None = None,
    alpha: float = 0.1,
    truth: pd.DataFrame | np.ndarray | None = None,
    series: int = 0,
    max_points: int = 400,
) -> plt.Figure:
    """One panel per column: observed values, the median imputation and its ``1 - alpha`` band.

    ``truth`` (optional) marks the real values of cells that were hidden on purpose, as in
    ``diffimpute evaluate`` and the demo. Long series show their first ``max_points`` steps
    that contain a gap.
    """
    data = to_panel(result.data)[series]
    names = list(result.data.columns.astype(str)) if isinstance(result.data, pd.DataFrame) else [str(i) for i in range(data.shape[-1])]
    chosen = names if columns is None else list(columns)
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; the data has {names}")
    x = result.data.index if isinstance(result.data, pd.DataFrame) else np.arange(data.shape[0])
    missing = result.missing[series]
    first_gap = int(np.argmax(missing.any(axis=1))) if missing.any() else 0
    span = slice(max(0, first_gap - max_points // 10), max(0, first_gap - max_points // 10) + max_points)
    median = np.median(result.samples[:, series], axis=0)
    lower, upper = np.quantile(result.samples[:, series], [alpha / 2, 1 - alpha / 2], axis=0)
    true_values = None if truth is None else to_panel(truth)[series]

    figure, axes = plt.subplots(len(chosen), 1, figsize=(11, 2.2 * len(chosen)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], chosen):
        j = names.index(name)
        xs, gap = x[span], missing[span, j]
        ax.plot(xs, np.where(gap, np.nan, data[span, j]), color="black", lw=1, label="observed")
        ax.fill_between(xs, np.where(gap, lower[span, j], np.nan), np.where(gap, upper[span, j], np.nan),
                        color="tab:blue", alpha=0.3, label=f"{1 - alpha:.0%} interval")
        ax.plot(xs, np.where(gap, median[span, j], np.nan), ".", color="tab:blue", ms=4, label="imputed median")
        if true_values is not None:
            ax.plot(xs, np.where(gap, true_values[span, j], np.nan), "x", color="tab:red", ms=4, label="hidden truth")
        ax.set_ylabel(name)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncols=4)
    figure.tight_layout()
    return figure


def plot_comparison(table: pd.DataFrame, path: str | Path, metrics: Sequence[str] = ("mae", "crps")) -> Path:
    """Bar charts of ``metrics`` per method from an ``evaluate_methods`` table (lower is better),
    the methods named as in ``labelled``."""
    table = labelled(table)
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        table[metric].plot.bar(ax=ax, color="tab:blue")
        ax.set_title(f"{metric} (lower is better)")
        ax.set_xlabel("")
    figure.tight_layout()
    return _save(figure, path)


def figure_bytes(figure: plt.Figure, kind: str = "png") -> bytes:
    """The figure encoded as ``kind``; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=kind, dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _save(figure: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_bytes(path, figure_bytes(figure, path.suffix.lstrip(".") or "png"))
    return path
