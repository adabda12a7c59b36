"""Real series for pretraining, each cut to its training part and standardised per column.

Only sources whose licences allow training, and never ETT (it is the zero-shot test):

=====================  ==================================  ===========================================
source                 part used                           licence
=====================  ==================================  ===========================================
Beijing PM2.5 (UCI)    first 60 % of the hours (the bench's  CC BY 4.0 (Liang et al. 2015)
                       train split), 7 numeric columns
PhysioNet 2012 set-a   the bench's seed-0 train patients    ODC Attribution v1.0 (Silva et al. 2012)
                       (70 %), 35 variables x 48 h
SKAB                   ``anomaly-free.csv`` only            GPL-3.0 (data used to train, not shipped)
vega_datasets          seattle-temps, sf-temps (hourly),    BSD-3-Clause package; NOAA / US BLS data,
(installed package)    us-employment (monthly)              US public domain
=====================  ==================================  ===========================================

Seattle weather, also in vega_datasets, is left out: it is ``diffimpute demo``'s data, and the
demo must show a model that never saw it. The shared data come from ``bench/datasets.py`` (``../shared/data``); a source that cannot be
read is left out with a message, so pretraining runs on synthetic data alone if need be.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@dataclass
class RealSeries:
    """One source: ``(series, time, features)`` standardised values, NaN where missing."""

    name: str
    values: np.ndarray

    @property
    def length(self) -> int:
        return self.values.shape[1]


def _standardise(frame: np.ndarray) -> np.ndarray:
    mean = np.nanmean(frame, axis=0)
    std = np.nanstd(frame, axis=0)
    return ((frame - mean) / np.where(std > 1e-9, std, 1.0)).astype(np.float32)


def _beijing() -> RealSeries:
    from datasets import BEIJING_NUMERIC_COLUMNS, load_beijing_pm25

    train = load_beijing_pm25()["frames"]["train"][BEIJING_NUMERIC_COLUMNS].to_numpy(np.float64)
    return RealSeries("beijing", _standardise(train)[None])


def _physionet() -> RealSeries:
    from datasets import load_physionet2012

    return RealSeries("physionet", load_physionet2012(seed=0)["train"])


def _skab() -> RealSeries:
    from datasets import shared_data_dir

    frame = pd.read_csv(shared_data_dir() / "skab" / "anomaly-free" / "anomaly-free.csv", sep=";")
    return RealSeries("skab", _standardise(frame.drop(columns=["datetime"]).to_numpy(np.float64))[None])


def _vega() -> list[RealSeries]:
    from vega_datasets import data

    hourly = [data.seattle_temps()[["temp"]], data.sf_temps()[["temp"]]]
    employment = data.us_employment().drop(columns=["month"])
    frames = {"seattle-temps": hourly[0], "sf-temps": hourly[1], "us-employment": employment}
    return [RealSeries(name, _standardise(f.to_numpy(np.float64))[None]) for name, f in frames.items()]


def load_real_series() -> list[RealSeries]:
    """Every readable source; prints what it took."""
    sources: list[RealSeries] = []
    for loader in (_beijing, _physionet, _skab):
        try:
            sources.append(loader())
        except (FileNotFoundError, OSError) as error:
            print(f"left out {loader.__name__[1:]}: {error}")
    sources.extend(_vega())
    for source in sources:
        observed = np.isfinite(source.values).mean()
        print(f"real: {source.name} {source.values.shape} observed {observed:.1%}")
    return sources


def real_batch(source: RealSeries, n: int, n_features: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, n_features, length)`` random crops of random series, a random subset of its columns
    (in random order) each time."""
    n_series, total, width = source.values.shape
    out = np.empty((n, n_features, length), dtype=np.float32)
    for i in range(n):
        s = rng.integers(0, n_series)
        start = rng.integers(0, total - length + 1)
        columns = rng.permutation(width)[:n_features]
        out[i] = source.values[s, start:start + length][:, columns].T
    return out
