"""``diffimpute detect``: train an ImDiffusion detector on normal data and score new data."""

from __future__ import annotations

import sys
import time

import click
import numpy as np
import pandas as pd

from diffimpute.cli.tables import table_options
from diffimpute.io.files import TABLE_SUFFIXES, check_writable, write_table


@click.command()
@click.argument("train", type=click.Path(dir_okay=False))
@click.argument("test", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="CSV or Parquet of scores to write.")
@click.option("--label-col", default=None, help="0/1 anomaly column in TEST (and TRAIN); used only for evaluation.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), help="Image of series, score, threshold.")
@click.option("--index-col", default=None, help="Column to use as the time index.")
@click.option("--preset", type=click.Choice(["default", "imdiffusion"]), default="default", show_default=True,
              help="'imdiffusion': the released ImDiffusion settings, for comparison.")
@click.option("--window", type=int, default=None, help="Time steps per window [default: sized from TRAIN, at most 64].")
@click.option("--stride", type=int, default=None, help="Step between scored windows [default: window // 2].")
@click.option("--masks", type=click.Choice(["checkerboard", "grating"]), default=None, help="Mask family.")
@click.option("--score", "score_kind", type=click.Choice(["error", "zscore", "crps"]), default=None,
              help="Per-cell evidence.")
@click.option("--smoothing", type=int, default=None, help="Moving-average width over the score.")
@click.option("--time-budget", type=float, default=60.0, show_default=True, help="Seconds of training.")
@click.option("--epochs", "max_epochs", type=int, default=None, help="Most training epochs.")
@click.option("--threshold", type=click.Choice(["percentile", "pot", "spot"]), default="percentile", show_default=True)
@click.option("--sampler", type=click.Choice(["ddpm", "ddim"]), default=None)
@click.option("--steps", "sampling_steps", type=int, default=None, help="DDIM sampling steps.")
@click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False), help="Also save the detector here.")
@click.option("--no-data", "no_data", is_flag=True,
              help="Save the detector without its calibration rows (a copy of TRAIN's last rows).")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@table_options
def detect(train, test, output, label_col, plot_path, index_col, preset, window, stride, masks, score_kind, smoothing,
           time_budget, max_epochs, threshold, sampler, sampling_steps, model_path, no_data, device, seed, quiet,
           table_format):
    """Fit on TRAIN (mostly normal), write one anomaly score and 0/1 flag per row of TEST."""
    from diffimpute.tasks.anomaly import ImDiffusionDetector
    from diffimpute.tasks.anomaly_presets import IMDIFFUSION

    try:
        check_writable(output, TABLE_SUFFIXES)
        for extra in (model_path, plot_path):
            if extra:
                check_writable(extra)
        train_frame, test_frame = (table_format.read(path, index_col, quiet) for path in (train, test))
        labels = None
        if label_col is not None:
            if label_col not in test_frame.columns:
                raise ValueError(f"--label-col {label_col!r} is not a column of {test}; columns are {list(test_frame.columns)}")
            labels = test_frame.pop(label_col).to_numpy()
            train_frame = train_frame.drop(columns=[label_col], errors="ignore")
        chosen = {"window": window, "stride": stride, "masks": masks, "score": score_kind, "smoothing": smoothing,
                  "max_epochs": max_epochs, "sampler": sampler, "sampling_steps": sampling_steps}
        params = {**(IMDIFFUSION if preset == "imdiffusion" else {}),
                  **{k: v for k, v in chosen.items() if v is not None}}
        started = time.perf_counter()
        detector = ImDiffusionDetector(**params, time_budget=time_budget, threshold=threshold, device=device,
                                       random_state=seed, verbose=not quiet).fit(train_frame)
        fit_seconds = time.perf_counter() - started
        extra = [c for c in test_frame.columns if c not in train_frame.columns]
        if extra and set(train_frame.columns) <= set(test_frame.columns):
            if not quiet:
                click.echo(f"{test}: scoring the training columns; ignoring {extra}", err=True)
            test_frame = test_frame[list(train_frame.columns)]
        started = time.perf_counter()
        cells = detector.cell_scores(test_frame)
        scores = pd.Series(detector.scores_from_cells(cells)[0], index=test_frame.index, name="anomaly_score")
        flags = detector.flags_from_cells(cells)[0]  # as predict makes them
        score_seconds = time.perf_counter() - started
        cut = detector.fitted_threshold()
        write_table(pd.DataFrame({"anomaly_score": scores, "anomaly": flags}, index=test_frame.index), output)
        if model_path:
            detector.save(model_path, include_data=not no_data)
        if plot_path:
            from diffimpute.report.anomaly_plots import plot_anomalies

            plot_anomalies(test_frame, scores, plot_path, threshold=getattr(cut, "threshold_", None), labels=labels)
    except (ValueError, TypeError, FileNotFoundError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    if not quiet:
        click.echo(
            f"fit {fit_seconds:.1f} s (window {detector.window_}, {detector.history_.steps} training steps), "
            f"scored {len(scores)} rows in {score_seconds:.1f} s "
            f"({detector.network_passes_per_timestamp():.0f} network passes per row), {int(flags.sum())} flagged; "
            f"written to {output}"
        )
    if labels is not None:
        from diffimpute.metrics import anomaly as metrics

        y = np.asarray(labels).astype(int)
        click.echo(
            f"evaluation: AUC-PR {metrics.auc_pr(y, scores):.3f}  VUS-PR {metrics.vus_pr(y, scores):.3f}  "
            f"F1 (label-free threshold) {metrics.f1_point(y, flags).f1:.3f}"
        )
