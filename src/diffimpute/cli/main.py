"""The ``diffimpute`` command: a thin layer over the Python API.

Every command reads CSV or Parquet, writes atomically, shows progress bars unless ``--quiet``,
and turns a user error into one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import warnings
from pathlib import Path

import click
import pandas as pd

from diffimpute.cli.augment import augment
from diffimpute.cli.detect import detect
from diffimpute.cli.image import inpaint
from diffimpute.cli.tables import table_options
from diffimpute.io.files import (
    TABLE_SUFFIXES,
    atomic_write_bytes,
    check_writable,
    write_table,
)

# Model options shared by ``fit``, ``evaluate`` and ``demo``; None means the library default.
_MODEL_OPTIONS = [
    click.option("--pretrained", default=None, metavar="NAME",
                 help="Series: start from these pretrained weights: default (shipped in the package), the path "
                      "of an exported weights file, or none (train from scratch)."),
    click.option("--max-steps", type=int, default=None,
                 help="Optimiser steps of training (series default: 300 fine-tuning, 1000 from scratch)."),
    click.option("--window", type=int, default=None,
                 help="Time steps per window (default min(256, length) pretrained, min(48, length) from scratch)."),
    click.option("--time-budget", type=float, default=None,
                 help="Cap on seconds of training; stops cleanly, keeps the best model and warns (default 120)."),
    click.option("--epochs", "max_epochs", type=int, default=None, help="Maximum training epochs (default 200)."),
    click.option("--channels", type=int, default=None, help="Denoiser width (default 32)."),
    click.option("--layers", "n_layers", type=int, default=None, help="Residual layers (default 2)."),
    click.option("--batch-size", type=int, default=None, help="Training windows per batch (default 32)."),
    click.option("--target-strategy", type=click.Choice(["random", "historical", "mix", "gaps"]), default=None,
                 help="Self-supervised training targets (default gaps fine-tuning, random from scratch)."),
    click.option("--sampler", type=click.Choice(["ddpm", "ddim"]), default=None, help="Reverse sampler (default ddim)."),
    click.option("--steps", "sampling_steps", type=int, default=None, help="DDIM sampling steps (default 10)."),
    click.option("--device", default=None, help="auto, cpu or cuda (default auto)."),
]


def _model_options(command):
    for option in reversed(_MODEL_OPTIONS):
        command = option(command)
    return command


def _params(**options) -> dict:
    """The options given, with ``--pretrained none`` as ``pretrained=None``."""
    params = {name: value for name, value in options.items() if value is not None}
    if params.get("pretrained") == "none":
        params["pretrained"] = None
    return params


def _user_errors(command):
    """Bad input is the user's to fix: show the message, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ValueError, TypeError, FileNotFoundError) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)

    return wrapper


def _echo(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message)


def _parse_quantiles(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        levels = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--quantiles must be comma-separated numbers such as 0.05,0.95, got {text!r}") from None
    if not all(0 < q < 1 for q in levels):
        raise ValueError(f"quantile levels must be between 0 and 1, got {levels}")
    return levels


def _default_threads(torch_default: int) -> int:
    """PyTorch's default thread count, at most the cores this process may run on. Never the
    machine's load: the thread count changes how sums are split, so the same command must use the
    same count on every run to give the same draws."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(torch_default, cores))


@click.group()
@click.version_option(package_name="diffimpute")
@click.option("--threads", type=int, default=None,
              help="CPU threads for PyTorch (default: PyTorch's, at most the cores this process may use).")
def cli(threads: int | None) -> None:
    """Fill missing values in time series and tables with diffusion models, with uncertainty."""
    import torch

    # Off a terminal, progress comes as one INFO line per stage (diffimpute._progress).
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    torch.set_num_threads(threads if threads is not None else _default_threads(torch.get_num_threads()))


_KIND_OPTION = click.option(
    "--kind", type=click.Choice(["auto", "series", "table"]), default="auto", show_default=True,
    help="series: rows are time steps; table: rows are independent records. auto: a table when a column "
         "is not numeric (categories, text, booleans), otherwise a series.")


def _data_kind(frame: pd.DataFrame, kind: str) -> str:
    if kind != "auto":
        return kind
    numeric = all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in frame.dtypes)
    return "series" if numeric else "table"


def _imputer_for(kind: str, guess: str | None, seed: int, quiet: bool, options: dict):
    """The imputer for ``kind`` with the CLI's options; options that belong to the other kind are errors."""
    from diffimpute import DiffusionImputer, TabularImputer

    params = _params(**options)
    if kind == "table":
        for name in ("window", "target_strategy", "pretrained", "max_steps"):
            if name in params:
                raise ValueError(f"--{name.replace('_', '-')} is for time series; this data is a table (--kind table)")
        if guess in ("interpolate", "latent"):
            raise ValueError(f"--guess {guess} is for time series; tables take --guess gaussian or none")
        return TabularImputer(**_params(guess=guess), random_state=seed, verbose=not quiet, **params)
    if guess == "gaussian":
        raise ValueError("--guess gaussian is for tables; series take --guess interpolate, latent or none")
    return DiffusionImputer(**_params(guess=guess), random_state=seed, verbose=not quiet, **params)


def _checkpoint_interval(text: str) -> dict:
    """``--checkpoint-every``: ``5`` is every 5 epochs, ``90s`` / ``10m`` every so many seconds or
    minutes of training."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min)?\s*", text)
    if match is None or (match.group(2) is None and "." in match.group(1)) or float(match.group(1)) <= 0:
        raise ValueError(f"--checkpoint-every must be a number of epochs (5) or of seconds or minutes (90s, 10m), "
                         f"got {text!r}")
    number, unit = match.groups()
    if unit is None:
        return {"every_epochs": int(number), "every_seconds": None}
    return {"every_epochs": None, "every_seconds": float(number) * (60 if unit in ("m", "min") else 1)}


@cli.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "model_path", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("--index-col", default=None, help="Column to use as the time index (or row labels of a table).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars or messages.")
@click.option("--guess", type=click.Choice(["interpolate", "latent", "gaussian", "none"]), default=None,
              help="First estimate the diffusion model refines. Series: interpolate (default), latent (the LSSDM "
                   "prior) or none (plain CSDI). Tables: gaussian (default, EM conditional mean) or none.")
@click.option("--checkpoint", "checkpoint_path", default=None, type=click.Path(dir_okay=False),
              help="Training checkpoint to write (default: the output's name + .ckpt); removed once the model "
                   "is written.")
@click.option("--checkpoint-every", default="60s", show_default=True,
              help="Save training progress every N epochs (5) or every so many seconds or minutes of training "
                   "(90s, 10m); the end of training always saves.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted fit from its checkpoint (same DATA, options and seed); without a "
                   "checkpoint the fit starts afresh.")
@_KIND_OPTION
@_model_options
@table_options
@_user_errors
def fit(data, model_path, index_col, seed, quiet, guess, checkpoint_path, checkpoint_every, resume, kind, table_format,
        **options):
    """Train an imputer on DATA (CSV or Parquet; rows are time steps or records, columns features).

    Under torchrun (`torchrun --nproc_per_node=N -m diffimpute fit ...`) every process trains its
    share of each batch (gloo on the CPU, NCCL on CUDA); rank 0 alone writes files and speaks.
    """
    from diffimpute.engine import distributed
    from diffimpute.engine.checkpoint import Checkpointing
    from diffimpute.tasks.estimator import resolve_device
    from diffimpute.tasks.evaluate import method_label

    check_writable(model_path)
    plan = Checkpointing(checkpoint_path or f"{model_path}.ckpt", **_checkpoint_interval(checkpoint_every))
    distributed.init_from_env(resolve_device(options.get("device") or "auto"))
    main = distributed.rank_and_world()[0] == 0
    quiet = quiet or not main
    if not main:
        warnings.simplefilter("ignore")  # rank 0 says it once
    if resume and not Path(plan.path).is_file():
        _echo(quiet, f"no checkpoint at {plan.path}; starting afresh")
    frame = table_format.read(data, index_col, quiet)
    imputer = _imputer_for(_data_kind(frame, kind), guess, seed, quiet, options).fit(frame, checkpoint=plan,
                                                                                     resume=resume)
    distributed.close()
    if not main:
        return
    imputer.save(model_path)
    for stage in (plan, plan.beside(".prior")):
        Path(stage.path).unlink(missing_ok=True)  # the model is written: the insurance is spent
    history, report = imputer.history_, imputer.validation_
    start = " from the pretrained weights" if getattr(imputer, "pretrained_", False) else ""
    name = method_label(type(imputer).__name__, imputer.refines_)
    _echo(quiet, f"trained {name}{start}: {history.steps} steps ({len(history.train_loss)} epochs) "
                 f"in {history.seconds:.1f}s (stopped: {history.stopped}); model written to {model_path}")
    if report:
        line = (f"held-out cells ({report['cells']}, standardised units): MAE {report['mae']:.4f} "
                f"(guess alone {report['guess_mae']:.4f}), CRPS {report['crps']:.4f}, "
                f"90% interval coverage {report['coverage90']:.1%}")
        if "accuracy" in report:
            line += f"; categorical accuracy {report['accuracy']:.1%}"
        _echo(quiet, line)


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL] DATA")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="CSV or Parquet to write (with --dask: a new folder for one Parquet file per partition).")
@click.option("--n-samples", type=int, default=None, help="Draws per missing cell (default: the model's).")
@click.option("--quantiles", default=None, help="Also write these quantile columns, e.g. 0.05,0.95.")
@click.option("--sampler", type=click.Choice(["ddpm", "ddim"]), default=None)
@click.option("--steps", "sampling_steps", type=int, default=None, help="DDIM sampling steps.")
@click.option("--index-col", default=None, help="Column to use as the time index (with --series: the time column).")
@click.option("--seed", type=int, default=None, help="Sampling seed (default: the model's).")
@click.option("--dask", "scheduler", default=None, metavar="SCHEDULER",
              help="Impute with Dask: local (a LocalCluster on this machine), a scheduler address "
                   "(tcp://host:8786), or threads or sync (in this process). DATA may be a glob of Parquet or CSV files.")
@click.option("--series", default=None, help="With --dask: the column of series ids, for many series in long format.")
@click.option("--stream", is_flag=True,
              help="Read the Parquet DATA in chunks and write the Parquet OUTPUT as it goes: memory stays bounded "
                   "for series larger than memory.")
@click.option("--quiet", is_flag=True)
@table_options
@_user_errors
def impute(paths, output, n_samples, quantiles, sampler, sampling_steps, index_col, seed, scheduler, series,
           stream, quiet, table_format):
    """Fill the gaps in DATA with MODEL; writes the median (and optional quantile columns).

    With DATA alone, a time series is imputed by the pretrained model shipped in the package, with
    no training (its intervals are calibrated on cells of DATA hidden for the purpose); train a
    MODEL with `diffimpute fit` to fine-tune it on your data first.
    """
    if len(paths) > 2:
        raise ValueError(f"impute takes [MODEL] DATA, got {len(paths)} paths: {' '.join(paths)}")
    model, data = (None, paths[0]) if len(paths) == 1 else paths
    levels = _parse_quantiles(quantiles)
    if model is None and (scheduler is not None or stream or series is not None):
        raise ValueError("--dask, --series and --stream need a MODEL fitted first (`diffimpute fit`)")
    if scheduler is not None or stream or series is not None:
        imputer = _load_imputer(model).set_params(**_params(sampler=sampler, sampling_steps=sampling_steps))
        _impute_at_scale(imputer, data, output, scheduler, series, stream, index_col, n_samples, seed, levels, quiet,
                         table_format)
        return
    check_writable(output, TABLE_SUFFIXES)
    frame = table_format.read(data, index_col, quiet)
    imputer = _pretrained_imputer(frame, seed) if model is None else _load_imputer(model)
    imputer.set_params(verbose=not quiet, **_params(sampler=sampler, sampling_steps=sampling_steps))
    result = imputer.impute(frame, n_samples=n_samples, seed=seed)
    table = result.to_frame(quantiles=levels) if levels else result.median()
    write_table(table, output)
    _echo(quiet, f"imputed {int(result.missing.sum())} cells with {result.n_samples} draws; written to {output}")


def _pretrained_imputer(frame: pd.DataFrame, seed: int | None):
    from diffimpute import DiffusionImputer

    if _data_kind(frame, "auto") == "table":
        raise ValueError("the pretrained model imputes time series (numeric columns); for a table with "
                         "categorical columns, fit a model first: `diffimpute fit DATA -o model.dfi`")
    return DiffusionImputer.from_pretrained(random_state=0 if seed is None else seed)


def _impute_at_scale(imputer, data, output, scheduler, series, stream, index_col, n_samples, seed, levels, quiet,
                     table_format):
    """``impute --stream`` (diffimpute.io.stream) and ``impute --dask`` (diffimpute.dask)."""
    from diffimpute import DiffusionImputer

    if not isinstance(imputer, DiffusionImputer):
        raise ValueError("--dask, --series and --stream impute time series; this model imputes tables")
    if stream and scheduler is not None:
        raise ValueError("pass --stream (one process, bounded memory) or --dask (partitions on workers), not both")
    if scheduler is None:
        if series is not None:
            raise ValueError("--series needs --dask (many series are imputed partition by partition)")
        from diffimpute.io.stream import impute_parquet

        report = impute_parquet(data, imputer, output, n_samples=n_samples, seed=seed, quantiles=levels,
                                index_col=index_col, verbose=not quiet)
        _echo(quiet, f"imputed {report.imputed_cells} cells of {report.rows} rows in {report.chunks} chunks of "
                     f"{report.chunk_rows} rows; written to {output}")
        return
    from diffimpute import dask as dask_api

    if table_format.dayfirst is not None:
        raise ValueError("--dayfirst and --monthfirst are not read with --dask; write the times as ISO 8601")
    with dask_api.scheduler(scheduler, quiet=quiet):
        frames = dask_api.read_dask(data, index_col, series, sep=table_format.sep, decimal=table_format.decimal)
        paths = dask_api.impute(frames, imputer, n_samples=n_samples, seed=seed, quantiles=levels, output=output,
                                series=series,
                                time=index_col if series is not None else None)
    _echo(quiet, f"imputed with dask ({scheduler}); {len(paths)} Parquet files written to {output}")


@cli.command()
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
@_KIND_OPTION
@_model_options
@table_options
@_user_errors
def evaluate(data, mask, methods, n_samples, output, index_col, seed, quiet, kind, table_format, **options):
    """Hide extra observed cells of DATA, impute them with each method and score the results."""
    if output:
        check_writable(output, TABLE_SUFFIXES | {".json"})
    frame = table_format.read(data, index_col, quiet)
    if _data_kind(frame, kind) == "table":
        from diffimpute.tasks.evaluate import evaluate_table_methods, labelled

        imputer = _imputer_for("table", None, seed, quiet, options)
        names = _method_list(methods or "diffusion,mean,knn,mice,missforest")
        table, _ = evaluate_table_methods(frame, mask, names, n_samples=n_samples, seed=seed,
                                          diffusion_params=imputer.get_params(),
                                          on_method=lambda m: _echo(quiet, f"  fitting and imputing with {m} ..."))
        header = (f"Scores on cells hidden by {mask} (numeric cells in standardised units, lower is better except "
                  "coverage; accuracy and macro-F1 of categorical cells, higher is better):")
        click.echo(header + "\n" + labelled(table).to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
    else:
        names = _method_list(methods or "diffusion,mean,linear,knn,mice")
        table = _run_evaluation(frame, mask, names, n_samples, seed, quiet, _params(**options))
        click.echo(_format_table(table, mask))
    if output:
        _write_report(table, output)
        _echo(quiet, f"table written to {output}")


def _method_list(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Image to write (.png, .svg, .pdf).")
@click.option("--columns", default=None, help="Comma-separated columns to show (default all).")
@click.option("--n-samples", type=int, default=None)
@click.option("--alpha", type=float, default=0.1, show_default=True, help="Band is the central 1-alpha interval.")
@click.option("--index-col", default=None)
@click.option("--quiet", is_flag=True)
@table_options
@_user_errors
def plot(model, data, output, columns, n_samples, alpha, index_col, quiet, table_format):
    """Plot each series in DATA with MODEL's imputation and its uncertainty band."""
    check_writable(output, {".png", ".svg", ".pdf"})
    from diffimpute.report.plots import plot_imputation

    imputer = _load_imputer(model).set_params(verbose=not quiet)
    if not hasattr(imputer, "window_"):
        raise ValueError(f"{model} imputes tables; plot draws time series (use `diffimpute evaluate` for tables)")
    result = imputer.impute(table_format.read(data, index_col, quiet), n_samples=n_samples)
    plot_imputation(result, output, columns=columns.split(",") if columns else None, alpha=alpha)
    _echo(quiet, f"plot written to {output}")


@cli.command()
@click.option("--out", "out_dir", default="diffimpute-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--mask", default="mcar:0.2", show_default=True)
@click.option("--max-steps", type=int, default=None,
              help="Training steps of each diffusion model (default: the library's, 300 fine-tuning the pretrained "
                   "model, 1000 for the LSSDM model trained from scratch).")
@click.option("--n-samples", type=int, default=20, show_default=True, help="Draws per missing cell.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@_user_errors
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
    _echo(quiet, f"Seattle weather: {frame.shape[0]} days x {frame.shape[1]} features; hiding {mask} of the cells")
    methods = ["diffusion", "zero-shot", "lssdm", "mean", "linear", "knn", "mice"]
    params = {"time_budget": None, "n_samples": n_samples, **_params(max_steps=max_steps)}
    table, outputs = _evaluate_with_outputs(frame, mask, methods, n_samples, seed, quiet, params)
    click.echo(_format_table(table, mask))
    _write_report(table, out / "scores.csv")
    plot_imputation(outputs["diffusion"], out / "imputation.png", truth=frame)
    plot_comparison(table, out / "comparison.png")
    write_table(outputs["diffusion"].to_frame(quantiles=(0.05, 0.95)), out / "imputed.csv")
    _echo(quiet, f"wrote {out / 'scores.csv'}, {out / 'imputed.csv'}, {out / 'imputation.png'}, {out / 'comparison.png'}")


def _load_imputer(path: str):
    from diffimpute import DiffusionImputer, TabularImputer, load

    model = load(path)
    if not isinstance(model, DiffusionImputer | TabularImputer):
        raise ValueError(f"{path} holds a {type(model).__name__}, not an imputer; use `diffimpute detect` for detectors")
    return model


def _evaluate_with_outputs(frame, mask, methods, n_samples, seed, quiet, params):
    from diffimpute.tasks.evaluate import evaluate_methods

    def announce(method: str) -> None:
        _echo(quiet, f"  fitting and imputing with {method} ...")

    return evaluate_methods(frame, mask, methods, n_samples=n_samples, seed=seed,
                            diffusion_params={"verbose": not quiet, **params}, on_method=announce)


def _run_evaluation(frame, mask, methods, n_samples, seed, quiet, params) -> pd.DataFrame:
    return _evaluate_with_outputs(frame, mask, methods, n_samples, seed, quiet, params)[0]


def _format_table(table: pd.DataFrame, mask: str) -> str:
    from diffimpute.tasks.evaluate import labelled

    header = f"Scores on cells hidden by {mask} (standardised units; lower is better except coverage):"
    return header + "\n" + labelled(table).to_string(float_format=lambda v: f"{v:.4f}", na_rep="-")


@cli.command()
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
@_KIND_OPTION
@table_options
@_user_errors
def report(data, output, target, holdout, time_budget, n_samples, index_col, seed, quiet, kind, table_format):
    """Write a self-contained HTML data-quality report of DATA: missingness, imputation quality, plausibility.

    A series is scored against linear interpolation, KNN and MICE; a table (records with numeric and
    categorical columns) against KNN, MICE and a MissForest-style imputer.
    """
    from diffimpute.report.quality import quality_report, write_report
    from diffimpute.report.table_quality import table_report

    path = check_writable(output, {".html", ".htm"})
    frame = table_format.read(data, index_col, quiet)
    measure = table_report if _data_kind(frame, kind) == "table" else quality_report
    budget = {} if time_budget is None else {"time_budget": time_budget}
    measured = measure(frame, target=target, holdout=holdout, n_samples=n_samples, seed=seed, title=Path(data).name,
                       progress=not quiet, **budget)
    write_report(measured, path)
    for line in measured.summary:
        _echo(quiet, f"- {line}")
    _echo(quiet, f"report written to {output}")


def _write_report(table: pd.DataFrame, path: str | Path) -> None:
    """The table as printed (methods named as in ``labelled``), as JSON records or a table file."""
    from diffimpute.tasks.evaluate import labelled

    table, path = labelled(table), Path(path)
    if path.suffix.lower() == ".json":
        records = json.loads(table.reset_index().to_json(orient="records"))
        atomic_write_bytes(path, json.dumps(records, indent=2).encode())
    else:
        write_table(table, path)


cli.add_command(detect)
cli.add_command(augment)
cli.add_command(inpaint)

if __name__ == "__main__":  # pragma: no cover
    cli()
