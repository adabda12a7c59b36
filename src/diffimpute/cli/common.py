"""What the imputer commands share: model options, the imputer they build, how they fail.

``fit``, ``impute``, ``evaluate``, ``plot``, ``demo`` and ``report`` take the same model options
(None means the library's default), build or load the same imputers (a ``DiffusionImputer`` for a
series, a ``TabularImputer`` for a table) and turn a user error into one line on stderr and exit
status 2; this module keeps that in one place, so the commands cannot drift apart.
"""

from __future__ import annotations

import functools
import sys

import click
import pandas as pd

# Model options shared by ``fit``, ``evaluate`` and ``demo``; None means the library default.
_MODEL_OPTIONS = [
    click.option("--pretrained", default=None, metavar="NAME",
                 help="Series: start from these pretrained weights: default (shipped in the package), the path "
                      "of an exported weights file, or none (train from scratch)."),
    click.option("--max-steps", type=int, default=None,
                 help="Optimiser steps of training (series: 300 fine-tuning, 1000 from scratch; tables: one "
                      "per row, 300-4000)."),
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


def model_options(command):
    """Decorate ``command`` with the model options, in the order ``--help`` lists them."""
    for option in reversed(_MODEL_OPTIONS):
        command = option(command)
    return command


def given_params(**options) -> dict:
    """The options given, with ``--pretrained none`` as ``pretrained=None``."""
    params = {name: value for name, value in options.items() if value is not None}
    if params.get("pretrained") == "none":
        params["pretrained"] = None
    return params


def user_errors(command):
    """Bad input is the user's to fix: show the message, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ValueError, TypeError, FileNotFoundError) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)

    return wrapper


def echo(quiet: bool, message: str) -> None:
    """Say ``message`` on stdout, unless ``--quiet``."""
    if not quiet:
        click.echo(message)


KIND_OPTION = click.option(
    "--kind", type=click.Choice(["auto", "series", "table"]), default="auto", show_default=True,
    help="series: rows are time steps; table: rows are independent records. auto: a table when a column "
         "is not numeric (categories, text, booleans), otherwise a series.")


def data_kind(frame: pd.DataFrame, kind: str) -> str:
    """``"series"`` or ``"table"``: ``--kind`` as given, or for ``auto`` what the columns' dtypes say."""
    if kind != "auto":
        return kind
    numeric = all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in frame.dtypes)
    return "series" if numeric else "table"


def imputer_for(kind: str, guess: str | None, seed: int, quiet: bool, options: dict):
    """The imputer for ``kind`` with the CLI's options; options that belong to the other kind are errors."""
    from diffimpute import DiffusionImputer, TabularImputer

    params = given_params(**options)
    if kind == "table":
        for name in ("window", "target_strategy", "pretrained"):
            if name in params:
                raise ValueError(f"--{name.replace('_', '-')} is for time series; this data is a table (--kind table)")
        if guess in ("interpolate", "latent"):
            raise ValueError(f"--guess {guess} is for time series; tables take --guess gaussian or none")
        return TabularImputer(**given_params(guess=guess), random_state=seed, verbose=not quiet, **params)
    if guess == "gaussian":
        raise ValueError("--guess gaussian is for tables; series take --guess interpolate, latent or none")
    return DiffusionImputer(**given_params(guess=guess), random_state=seed, verbose=not quiet, **params)


def load_imputer(path: str):
    """The imputer saved at ``path``; any other saved estimator is an error."""
    from diffimpute import DiffusionImputer, TabularImputer, load

    model = load(path)
    if not isinstance(model, DiffusionImputer | TabularImputer):
        raise ValueError(f"{path} holds a {type(model).__name__}, not an imputer; use `diffimpute detect` for detectors")
    return model
