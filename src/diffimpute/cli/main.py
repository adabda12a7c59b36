"""The ``diffimpute`` command: a thin layer over the Python API.

Every command reads CSV or Parquet, writes atomically, shows progress bars unless ``--quiet``,
and turns a user error into one line on stderr and exit status 2. This module is the group and
its global options (``--threads``, logging); each family of commands lives in a module of its own:
``cli.impute`` (fit, impute), ``cli.evaluate`` (evaluate, plot, demo, report), ``cli.detect``,
``cli.augment`` and ``cli.image`` (inpaint).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import click

from diffimpute.cli.augment import augment
from diffimpute.cli.detect import detect
from diffimpute.cli.evaluate import demo, evaluate, plot, report
from diffimpute.cli.image import inpaint
from diffimpute.cli.impute import fit, impute


def _default_threads(torch_default: int) -> int:
    """PyTorch's default thread count, at most the cores this process may run on. Never the
    machine's load: the thread count changes how sums are split, so the same command must use the
    same count on every run to give the same draws."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(torch_default, cores))


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  line: str | None = None) -> str:
    """A warning as one line on stderr, as a user of the command reads it: what happened and what
    to do, without the Python file and source line it was raised from."""
    return f"warning: {message}\n"


@click.group()
@click.version_option(package_name="diffimpute")
@click.option("--threads", type=int, default=None,
              help="CPU threads for PyTorch (default: PyTorch's, at most the cores this process may use).")
def cli(threads: int | None) -> None:
    """Fill missing values in time series and tables with diffusion models, with uncertainty."""
    import torch

    # Off a terminal, progress comes as one INFO line per stage (diffimpute._progress).
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    before, warnings.formatwarning = warnings.formatwarning, _warning_line
    click.get_current_context().call_on_close(lambda: setattr(warnings, "formatwarning", before))

    torch.set_num_threads(threads if threads is not None else _default_threads(torch.get_num_threads()))


cli.add_command(fit)
cli.add_command(impute)
cli.add_command(evaluate)
cli.add_command(plot)
cli.add_command(demo)
cli.add_command(report)
cli.add_command(detect)
cli.add_command(augment)
cli.add_command(inpaint)

if __name__ == "__main__":  # pragma: no cover
    cli()
