"""``diffimpute augment``: learn a data set and write new samples like it (or variations of its own).

Tables come as CSV or Parquet and go out as CSV or Parquet; series windows ``(n, time, features)``
and images come as ``.npy`` and go out as ``.npy``. For a table the command also scores the new
rows against the rows the augmenter held out at fit (``report.augment_quality``) and prints the
headline figures; ``--report`` writes the full page.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd

from diffimpute.cli.tables import TableFormat, table_options
from diffimpute.io.files import TABLE_SUFFIXES, atomic_write_bytes, check_writable

_ARRAY_SUFFIXES = {".npy"}


def _read(path: str, index_col: str | None, table_format: TableFormat, quiet: bool) -> pd.DataFrame | np.ndarray:
    if Path(path).suffix.lower() in _ARRAY_SUFFIXES:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
        return np.load(path, allow_pickle=False)
    return table_format.read(path, index_col, quiet)


def _write(data: pd.DataFrame | np.ndarray, path: str, keep_index: bool) -> None:
    """Atomically; a table's index only when ``keep_index`` (generated rows have no index of their own)."""
    if isinstance(data, pd.DataFrame):
        parquet = Path(path).suffix.lower() in {".parquet", ".pq"}
        payload = data.to_parquet(index=keep_index) if parquet else data.to_csv(index=keep_index).encode()
    else:
        buffer = io.BytesIO()
        np.save(buffer, data, allow_pickle=False)
        payload = buffer.getvalue()
    atomic_write_bytes(Path(path), payload)


def _split_labels(data, label_column: str | None):
    """DATA without its label column, and the labels (None without ``--label-column``)."""
    if label_column is None:
        return data, None
    if not isinstance(data, pd.DataFrame):
        raise ValueError("--label-column names a column of a table; an .npy file has no columns")
    if label_column not in data.columns:
        raise ValueError(f"--label-column {label_column!r} is not a column of the data; columns are {list(data.columns)}")
    return data.drop(columns=[label_column]), data[label_column]


@click.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-n", "n_samples", type=int, default=None,
              help="Samples to write [default: as many as DATA has]. With --strength, DATA's rows in turn.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="CSV or Parquet for a table, .npy for arrays.")
@click.option("--label-column", default=None,
              help="Class column of a table: the model learns each class, and the output keeps the column, with "
                   "classes drawn in DATA's proportions (with --strength: each row's own class).")
@click.option("--strength", type=float, default=None,
              help="Vary DATA's rows instead of generating fresh ones: 0 copies, 1 draws afresh.")
@click.option("--guidance", "guidance_scale", type=float, default=None,
              help="Classifier-free guidance scale with --label-column (1: none; larger: more typical of the class) "
                   "[default: the scale chosen at fit on held-out rows].")
@click.option("--kind", type=click.Choice(["auto", "table", "series", "image"]), default="auto", show_default=True,
              help="auto: CSV/Parquet and 2-D arrays are tables, 3-D arrays series windows, 4-D arrays images.")
@click.option("--max-steps", type=int, default=None,
              help="Optimiser steps of training, the reproducible budget (default 2000).")
@click.option("--time-budget", type=float, default=60.0, show_default=True,
              help="A cap on training seconds; a run it cuts short depends on the machine, and says so.")
@click.option("--epochs", "max_epochs", type=int, default=None, help="Most training epochs.")
@click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False), help="Also save the augmenter here.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Picture of real vs generated samples (.png, .svg, .pdf).")
@click.option("--report", "report_path", default=None, type=click.Path(dir_okay=False),
              help="HTML synthetic-data report of a table: column shapes, correlation trends, real-vs-synthetic "
                   "AUC, TSTR/TRTR with --label-column, DCR share.")
@click.option("--index-col", default=None,
              help="Column of a table that is its index, not learned; kept in the output of --strength only.")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@table_options
def augment(data, n_samples, output, label_column, strength, guidance_scale, kind, max_steps, time_budget, max_epochs,
            model_path, plot_path, report_path, index_col, device, seed, quiet, table_format):
    """Fit a diffusion augmenter on DATA and write N new samples like it to OUTPUT."""
    from diffimpute.tasks.augment import DiffusionAugmenter

    try:
        suffixes = _ARRAY_SUFFIXES if Path(data).suffix.lower() in _ARRAY_SUFFIXES else TABLE_SUFFIXES
        check_writable(output, suffixes)
        if report_path and Path(data).suffix.lower() in _ARRAY_SUFFIXES:
            raise ValueError("--report scores tables; an .npy file holds series windows or images")
        for extra in (model_path, plot_path, report_path):
            if extra:
                check_writable(extra)
        frame = _read(data, index_col, table_format, quiet)
        X, y = _split_labels(frame, label_column)
        n = len(X) if n_samples is None else n_samples
        if n < 1:
            raise ValueError(f"-n must be at least 1, got {n}")
        given = {"max_epochs": max_epochs, "max_steps": max_steps}
        params = {name: value for name, value in given.items() if value is not None}
        augmenter = DiffusionAugmenter(kind=kind, time_budget=time_budget, device=device, random_state=seed,
                                       verbose=not quiet, **params).fit(X, y)
        rng = np.random.default_rng(seed)
        if strength is None:
            labels = None if y is None else rng.choice(augmenter.classes_, size=n, p=augmenter.class_prior_)
            result = augmenter.generate(n, labels, guidance_scale=guidance_scale)
        else:
            rows = np.arange(n) % len(X)
            source = X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]
            labels = None if y is None else y.to_numpy()[rows]
            result = augmenter.vary(source, strength, labels, guidance_scale=guidance_scale)
        if labels is not None:
            result.insert(list(frame.columns).index(label_column), label_column,
                          pd.Series(labels, index=result.index).astype(y.dtype))
        _write(result, output, keep_index=strength is not None and index_col is not None)
        if model_path:
            augmenter.save(model_path)
        if plot_path:
            from diffimpute.report.augment_plots import plot_augmentation

            plot_augmentation(frame, result, plot_path, kind=kind)
        report = None
        if isinstance(result, pd.DataFrame) and len(augmenter.held_out_) >= 2:
            from diffimpute.report.augment_quality import augment_report

            report = augment_report(augmenter, frame, result,
                                    label_column, title=Path(data).name, seed=seed)
        if report_path and report is not None:
            from diffimpute.report.quality import write_report

            write_report(report, report_path)
    except (ValueError, TypeError, FileNotFoundError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    if not quiet:
        made = "varied" if strength is not None else "generated"
        click.echo(f"fit {augmenter.fit_seconds_:.1f} s ({len(augmenter.history_.train_loss)} epochs); "
                   f"{made} {len(result)} samples; written to {output}")
        for line in [] if report is None else report.summary:
            click.echo(line)
