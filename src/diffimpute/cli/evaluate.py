"""``diffimpute evaluate``, ``plot``, ``demo`` and ``report``: how good an imputation is, in figures.

``evaluate`` hides extra observed cells and scores the diffusion imputer against baselines on
them (``tasks.evaluate``); ``demo`` does so on the bundled Seattle weather data and plots it;
``plot`` draws a model's imputation with its uncertainty band; ``report`` writes the HTML
data-quality report (``report.quality``, ``report.table_quality``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from diffimpute.cli.common import (
    KIND_OPTION,
    data_kind,
    echo,
    given_params,
    imputer_for,
    load_imputer,
    model_options,
    user_errors,
)
from diffimpute.cli.tables import table_options
from diffimpute.io.files import TABLE_SUFFIXES, atomic_write_bytes, check_writable, write_table


def _method_list(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def _evaluate_with_outputs(frame, mask, methods, n_samples, seed, quiet, params):
    from diffimpute.tasks.evaluate import evaluate_methods

    def announce(method: str) -> None:
        echo(quiet, f"  fitting and imputing with {method} ...")

    return evaluate_methods(frame, mask, methods, n_samples=n_samples, seed=seed,
                            diffusion_params={"verbose": not quiet, **params}, on_method=announce)


def _run_evaluation(frame, mask, methods, n_samples, seed, quiet, params) -> pd.DataFrame:
    return _evaluate_with_outputs(frame, mask, methods, n_samples, seed, quiet, params)[0]


def _format_table(table: pd.DataFrame, mask: str) -> str:
    from diffimpute.tasks.evaluate import labelled

    header = f"Scores on cells hidden by {mask} (standardised units; lower is better except coverage):"
    return header + "\n" + labelled(table).to_string(float_format=lambda v: f"{v:.4f}", na_rep="-")


def _write_report(table: pd.DataFrame, path: str | Path) -> None:
    """The table as printed (methods named as in ``labelled``), as JSON records or a table file."""
    from diffimpute.tasks.evaluate import labelled

    table, path = labelled(table), Path(path)
    if path.suffix.lower() == ".json":
        records = json.loads(table.reset_index().to_json(orient="records"))
        atomic_write_bytes(path, json.dumps(records, indent=2).encode())
    else:
        write_table(table, path)


@click.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--mask", default="mcar:0.1", show_default=True, help="Cells to hide: mcar|mar|mnar|block|sequence:RATE.")
@click.option("--methods", default=None,
              help="Comma-separated. Series (default diffusion,mean,linear,knn,mice): diffusion, lssdm, csdi, mean, "
                   "median, locf, nocb, linear, time, knn, mice, missforest. Tables (default "
                   "diffusion,mean,knn,mice,missforest): diffusion, mean, median, knn, mice, missforest.")
@click.option("--n-samples", type=int, default=50, show_default=True)
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="Save the table (.csv or .json).")
@click.option("--index-col", default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@KIND_OPTION
@model_options
@table_options
@user_errors
def evaluate(data, mask, methods, n_samples, output, index_col, seed, quiet, kind, table_format, **options):
    """Hide extra observed cells of DATA, impute them with each method and score the results."""
    if output:
        check_writable(output, TABLE_SUFFIXES | {".json"})
    frame = table_format.read(data, index_col, quiet)
    if data_kind(frame, kind) == "table":
        from diffimpute.tasks.evaluate import evaluate_table_methods, labelled

        imputer = imputer_for("table", None, seed, quiet, options)
        names = _method_list(methods or "diffusion,mean,knn,mice,missforest")
        table, _ = evaluate_table_methods(frame, mask, names, n_samples=n_samples, seed=seed,
                                          diffusion_params=imputer.get_params(),
                                          on_method=lambda m: echo(quiet, f"  fitting and imputing with {m} ..."))
        header = (f"Scores on cells hidden by {mask} (numeric cells in standardised units, lower is better except "
                  "coverage; accuracy and macro-F1 of categorical cells, higher is better):")
        click.echo(header + "\n" + labelled(table).to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
    else:
        names = _method_list(methods or "diffusion,mean,linear,knn,mice")
        table = _run_evaluation(frame, mask, names, n_samples, seed, quiet, given_params(**options))
        click.echo(_format_table(table, mask))
    if output:
        _write_report(table, output)
        echo(quiet, f"table written to {output}")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Image to write (.png, .svg, .pdf).")
@click.option("--columns", default=None, help="Comma-separated columns to show (default all).")
@click.option("--n-samples", type=int, default=None)
@click.option("--alpha", type=float, default=0.1, show_default=True, help="Band is the central 1-alpha interval.")
@click.option("--index-col", default=None)
@click.option("--quiet", is_flag=True)
@table_options
@user_errors
def plot(model, data, output, columns, n_samples, alpha, index_col, quiet, table_format):
    """Plot each series in DATA with MODEL's imputation and its uncertainty band."""
    check_writable(output, {".png", ".svg", ".pdf"})
    from diffimpute.report.plots import plot_imputation

    imputer = load_imputer(model).set_params(verbose=not quiet)
    if not hasattr(imputer, "window_"):
        raise ValueError(f"{model} imputes tables; plot draws time series (use `diffimpute evaluate` for tables)")
    result = imputer.impute(table_format.read(data, index_col, quiet), n_samples=n_samples)
    plot_imputation(result, output, columns=columns.split(",") if columns else None, alpha=alpha)
    echo(quiet, f"plot written to {output}")


@click.command()
@click.option("--out", "out_dir", default="diffimpute-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--mask", default="mcar:0.2", show_default=True)
@click.option("--max-steps", type=int, default=None,
              help="Training steps of each diffusion model (default: the library's, 300 fine-tuning the pretrained "
                   "model, 1000 for the LSSDM model trained from scratch).")
@click.option("--n-samples", type=int, default=20, show_default=True, help="Draws per missing cell.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@user_errors
def demo(out_dir, mask, max_steps, n_samples, seed, quiet):
    """Hide cells of the bundled Seattle weather data, impute them, compare with baselines, plot.

    Runs the default diffusion imputer (the pretrained denoiser fine-tuned, refining linear
    interpolation), the pretrained denoiser untrained (zero-shot) and the LSSDM setting (a latent
    prior and its refiner trained from scratch) beside mean, linear interpolation, KNN and MICE;
    the files show the default. Budgets are training steps, with no time cap, so two runs print the
    same figures.
    """
    from diffimpute.datasets import seattle_weather
    from diffimpute.report.plots import plot_comparison, plot_imputation

    out = Path(out_dir)
    frame = seattle_weather()
    echo(quiet, f"Seattle weather: {frame.shape[0]} days x {frame.shape[1]} features; hiding {mask} of the cells")
    methods = ["diffusion", "zero-shot", "lssdm", "mean", "linear", "knn", "mice"]
    params = {"time_budget": None, "n_samples": n_samples, **given_params(max_steps=max_steps)}
    table, outputs = _evaluate_with_outputs(frame, mask, methods, n_samples, seed, quiet, params)
    click.echo(_format_table(table, mask))
    _write_report(table, out / "scores.csv")
    plot_imputation(outputs["diffusion"], out / "imputation.png", truth=frame)
    plot_comparison(table, out / "comparison.png")
    write_table(outputs["diffusion"].to_frame(quantiles=(0.05, 0.95)), out / "imputed.csv")
    echo(quiet, f"wrote {out / 'scores.csv'}, {out / 'imputed.csv'}, {out / 'imputation.png'}, {out / 'comparison.png'}")


@click.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--target", default=None, help="Column to predict from the others for the downstream section.")
@click.option("--holdout", type=float, default=0.1, show_default=True,
              help="Share of observed cells hidden to score the imputers (series: in runs like the real gaps; "
                   "tables: at random).")
@click.option("--time-budget", type=float, default=None,
              help="Seconds of training per diffusion fit (two fits; default 45 for series, 15 for tables).")
@click.option("--n-samples", type=int, default=30, show_default=True)
@click.option("--index-col", default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@KIND_OPTION
@table_options
@user_errors
def report(data, output, target, holdout, time_budget, n_samples, index_col, seed, quiet, kind, table_format):
    """Write a self-contained HTML data-quality report of DATA: missingness, imputation quality, plausibility.

    A series is scored against linear interpolation, KNN and MICE; a table (records with numeric and
    categorical columns) against KNN, MICE and a MissForest-style imputer.
    """
    from diffimpute.report.quality import quality_report, write_report
    from diffimpute.report.table_quality import table_report

    path = check_writable(output, {".html", ".htm"})
    frame = table_format.read(data, index_col, quiet)
    measure = table_report if data_kind(frame, kind) == "table" else quality_report
    budget = {} if time_budget is None else {"time_budget": time_budget}
    measured = measure(frame, target=target, holdout=holdout, n_samples=n_samples, seed=seed, title=Path(data).name,
                       progress=not quiet, **budget)
    write_report(measured, path)
    for line in measured.summary:
        echo(quiet, f"- {line}")
    echo(quiet, f"report written to {output}")
