"""The generators the augmentation benchmark compares, each behind one function.

Every function fits on the real training frame (features and the target column), draws
``n_rows`` synthetic rows and returns them as a frame with the training frame's columns, with its
fit and sampling wall times. Peers see windows as flat rows; ours sees them as
``(windows, time, features)`` when the data set is a window set.

Peers (SDV 2.0, in the benchmark's own environment, ``bench/requirements-augment.txt``):

- ``gaussian_copula``: ``GaussianCopulaSynthesizer`` with SDV's defaults.
- ``ctgan``: ``CTGANSynthesizer`` with SDV's defaults (300 epochs, batch 500) unless
  ``ctgan_epochs`` says otherwise; CPU only.

Both are seeded through the global NumPy / torch generators before ``fit`` (SDV takes no seed
argument) and through SDV's own sampling seed after it, so a seed fixes both fit and sample.

Ours, ``diffimpute.DiffusionAugmenter`` with its defaults (``time_budget`` aside), three ways:

- ``ours``: the default way a user would call it: a table with its target as one more column;
  a window set as a ``(windows, time, features)`` array with its class as ``y`` (a window array
  has nowhere else to carry a label), generated class-conditionally with the training labels.
- ``ours_y``: a table's features with its class as ``y`` (classification only), generated
  class-conditionally for the training labels.
- ``ours_flat``: a window set treated as a plain table (flat rows, target as a column).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from bench.augment_data import AugmentDataset, as_windows
from bench.augment_metrics import is_categorical


@dataclass(frozen=True)
class Synthetic:
    """A generator's rows (the training frame's columns) and its wall times in seconds."""

    frame: pd.DataFrame
    fit_seconds: float
    sample_seconds: float


# ---------------------------------------------------------------------------- helpers


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _sdv_metadata(frame: pd.DataFrame):
    """Explicit SDV metadata (detection would call a small-integer column categorical)."""
    from sdv.metadata import Metadata

    columns = {c: {"sdtype": "categorical" if is_categorical(frame[c]) else "numerical"} for c in frame.columns}
    return Metadata.load_from_dict({"tables": {"table": {"columns": columns}}})


def _sdv(synthesizer_cls, data: AugmentDataset, n_rows: int, seed: int, **params) -> Synthetic:
    _seed_everything(seed)
    synthesizer = synthesizer_cls(_sdv_metadata(data.train), **params)
    start = time.perf_counter()
    # CTGAN refuses pandas' category dtype; SDV models object columns as categories
    train = data.train.astype({c: object for c in data.train.columns if is_categorical(data.train[c])})
    synthesizer.fit({"table": train})  # SDV 2 takes and returns {table name: frame}
    fitted = time.perf_counter()
    synthesizer._set_random_state(seed)  # SDV otherwise samples every fit with one fixed seed
    frame = synthesizer.sample(num_rows=n_rows)["table"]
    return Synthetic(frame, fitted - start, time.perf_counter() - fitted)


# ------------------------------------------------------------------------------ peers


def gaussian_copula(data: AugmentDataset, n_rows: int, seed: int, **_) -> Synthetic:
    from sdv.single_table import GaussianCopulaSynthesizer

    return _sdv(GaussianCopulaSynthesizer, data, n_rows, seed)


def ctgan(data: AugmentDataset, n_rows: int, seed: int, ctgan_epochs: int = 300, **_) -> Synthetic:
    from sdv.single_table import CTGANSynthesizer

    return _sdv(CTGANSynthesizer, data, n_rows, seed, epochs=ctgan_epochs, enable_gpu=False)


# -------------------------------------------------------------------------------- ours


def _augmenter(seed: int, time_budget: float | None):
    from diffimpute import DiffusionAugmenter

    params = {"random_state": seed, "verbose": False}
    if time_budget is not None:
        params["time_budget"] = time_budget
    return DiffusionAugmenter(**params)


def _class_labels(labels: pd.Series, n_rows: int) -> np.ndarray:
    """The training labels, repeated to ``n_rows``: synthetic classes in the training shares."""
    return np.resize(labels.to_numpy(), n_rows)


def _timed_fit_generate(augmenter, fit_args: tuple, generate_args: tuple) -> tuple[object, float, float]:
    start = time.perf_counter()
    augmenter.fit(*fit_args)
    fitted = time.perf_counter()
    out = augmenter.generate(*generate_args)
    return out, fitted - start, time.perf_counter() - fitted


def ours(data: AugmentDataset, n_rows: int, seed: int, time_budget: float | None = None, **_) -> Synthetic:
    augmenter = _augmenter(seed, time_budget)
    if data.window is None:
        frame, fit_s, sample_s = _timed_fit_generate(augmenter, (data.train,), (n_rows,))
        return Synthetic(frame, fit_s, sample_s)
    labels = data.train[data.target]
    y_new = _class_labels(labels, n_rows)
    windows, fit_s, sample_s = _timed_fit_generate(
        augmenter, (as_windows(data.train[data.features], data.window), labels.to_numpy()), (n_rows, y_new)
    )
    frame = pd.DataFrame(np.asarray(windows).reshape(n_rows, -1), columns=data.features)
    return Synthetic(frame.assign(**{data.target: y_new}), fit_s, sample_s)


def ours_y(data: AugmentDataset, n_rows: int, seed: int, time_budget: float | None = None, **_) -> Synthetic:
    if data.task != "classification" or data.window is not None:
        raise ValueError("ours_y is for classification tables; windows already use y in 'ours'")
    labels = data.train[data.target]
    y_new = _class_labels(labels, n_rows)
    frame, fit_s, sample_s = _timed_fit_generate(
        _augmenter(seed, time_budget), (data.train[data.features], labels.to_numpy()), (n_rows, y_new)
    )
    return Synthetic(pd.DataFrame(frame).assign(**{data.target: y_new}), fit_s, sample_s)


def ours_flat(data: AugmentDataset, n_rows: int, seed: int, time_budget: float | None = None, **_) -> Synthetic:
    if data.window is None:
        raise ValueError("ours_flat is for window sets; on a table it is 'ours'")
    frame, fit_s, sample_s = _timed_fit_generate(_augmenter(seed, time_budget), (data.train,), (n_rows,))
    return Synthetic(frame, fit_s, sample_s)


GENERATORS: dict[str, Callable[..., Synthetic]] = {
    "gaussian_copula": gaussian_copula,
    "ctgan": ctgan,
    "ours": ours,
    "ours_y": ours_y,
    "ours_flat": ours_flat,
}
PEERS = ("gaussian_copula", "ctgan")
