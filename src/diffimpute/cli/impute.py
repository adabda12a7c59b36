"""``diffimpute fit`` and ``diffimpute impute``: train an imputer, then fill the gaps with it.

``impute`` also imputes with the pretrained model alone (no MODEL), and hands series too large for
memory to ``io.stream`` (``--stream``) or ``dask`` (``--dask``); ``fit`` checkpoints training so
that ``--resume`` continues an interrupted run, under torchrun too.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import click
import pandas as pd

from diffimpute.cli.aside import put_back, set_aside, unusable_columns
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
from diffimpute.io.files import TABLE_SUFFIXES, check_writable, write_table


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


def _pretrained_imputer(frame: pd.DataFrame, seed: int | None):
    from diffimpute import DiffusionImputer

    if data_kind(frame, "auto") == "table":
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
        echo(quiet, f"imputed {report.imputed_cells} cells of {report.rows} rows in {report.chunks} chunks of "
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
    echo(quiet, f"imputed with dask ({scheduler}); {len(paths)} Parquet files written to {output}")


@click.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "model_path", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("--index-col", default=None, help="Column to use as the time index (or row labels of a table).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars or messages.")
@click.option("--guess", type=click.Choice(["interpolate", "latent", "gaussian", "none"]), default=None,
              help="First estimate the diffusion model refines. Series: interpolate (default), latent (the LSSDM "
                   "prior) or none (plain CSDI). Tables: by default, per column, the EM conditional mean or "
                   "forests, whichever held-out cells favour; gaussian (the EM conditional mean alone) or none.")
@click.option("--checkpoint", "checkpoint_path", default=None, type=click.Path(dir_okay=False),
              help="Training checkpoint to write (default: the output's name + .ckpt); removed once the model "
                   "is written.")
@click.option("--checkpoint-every", default="60s", show_default=True,
              help="Save training progress every N epochs (5) or every so many seconds or minutes of training "
                   "(90s, 10m); the end of training always saves.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted fit from its checkpoint (same DATA, options and seed); without a "
                   "checkpoint the fit starts afresh.")
@KIND_OPTION
@model_options
@table_options
@user_errors
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
        echo(quiet, f"no checkpoint at {plan.path}; starting afresh")
    frame = table_format.read(data, index_col, quiet)
    kind = data_kind(frame, kind)  # before setting aside: an identifier column makes rows records
    frame, _ = set_aside(frame, unusable_columns(frame), quiet)
    imputer = imputer_for(kind, guess, seed, quiet, options).fit(frame, checkpoint=plan, resume=resume)
    distributed.close()
    if not main:
        return
    imputer.save(model_path)
    for stage in (plan, plan.beside(".prior")):
        Path(stage.path).unlink(missing_ok=True)  # the model is written: the insurance is spent
    history, report = imputer.history_, imputer.validation_
    start = " from the pretrained weights" if getattr(imputer, "pretrained_", False) else ""
    name = method_label(type(imputer).__name__, imputer.refines_)
    echo(quiet, f"trained {name}{start}: {history.steps} steps ({len(history.train_loss)} epochs) "
                 f"in {history.seconds:.1f}s (stopped: {history.stopped}); model written to {model_path}")
    parts = []
    if "mae" in report:  # a table of categories alone has no numeric figures
        parts.append(f"held-out cells ({report['cells']}, standardised units): MAE {report['mae']:.4f} "
                     f"(guess alone {report['guess_mae']:.4f}), CRPS {report['crps']:.4f}, "
                     f"90% interval coverage {report['coverage90']:.1%}")
    if "accuracy" in report:
        parts.append(f"categorical accuracy {report['accuracy']:.1%}")
    if parts:
        echo(quiet, "; ".join(parts))


@click.command()
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
@user_errors
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
        imputer = load_imputer(model).set_params(**given_params(sampler=sampler, sampling_steps=sampling_steps))
        _impute_at_scale(imputer, data, output, scheduler, series, stream, index_col, n_samples, seed, levels, quiet,
                         table_format)
        return
    check_writable(output, TABLE_SUFFIXES)
    read = table_format.read(data, index_col, quiet)
    imputer = _pretrained_imputer(read, seed) if model is None else load_imputer(model)
    known = getattr(imputer, "feature_names_in_", None)
    frame, aside = set_aside(read, unusable_columns(read, None if known is None else list(known)), quiet)
    imputer.set_params(verbose=not quiet, **given_params(sampler=sampler, sampling_steps=sampling_steps))
    result = imputer.impute(frame, n_samples=n_samples, seed=seed)
    table = result.to_frame(quantiles=levels) if levels else result.median()
    write_table(put_back(table, aside, read.columns), output)
    echo(quiet, f"imputed {int(result.missing.sum())} cells with {result.n_samples} draws; written to {output}")
