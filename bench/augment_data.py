"""The real data sets of the augmentation benchmark, each split into train / tune / test.

Eight small public tables that ship with scikit-learn, ``vega_datasets`` or ``palmerpenguins``
(no download) and one time-series-window set read from the shared data folder:

| name | rows | columns | downstream task (the ``target`` column) |
|---|---|---|---|
| ``breast_cancer`` | 569 | 30 float | ``diagnosis``: malignant / benign |
| ``wine`` | 178 | 13 float | ``cultivar``: 3 classes |
| ``cars`` | 392 | 6 numeric, ``Year`` int | ``Origin``: 3 classes (rows with a gap dropped) |
| ``diabetes`` | 442 | 9 float, ``sex`` category | ``progression``: regression |
| ``iris`` | 150 | 4 float | ``species``: 3 classes |
| ``digits`` | 1,797 | 61 int pixels (constant ones dropped) | ``digit``: 10 classes |
| ``penguins`` | 333 | 4 float, ``island``, ``sex`` (rows with a gap dropped) | ``species``: 3 classes |
| ``seattle_weather`` | 1,461 | 4 float, ``month`` int | ``weather``: 5 classes (sun ... snow) |
| ``skab`` | 2,322 windows | 16 s x 8 sensors | ``anomalous``: the window is mostly a fault |

SKAB (Skoltech Anomaly Benchmark, GPL-3.0, ``shared/data/skab``): the 34 labelled runs of a
water-circulation rig (valve1, valve2, other), cut into non-overlapping 16-second windows; a
window is ``anomalous`` when more than half of its seconds are labelled as a fault (34.8 % of
windows). The split is by *run*, so no window of a test run sits next to a training window.
Windows travel as flat rows (``Pressure@t03``: time-major, one column per sensor and second) so
that the table generators and scorers see them like any table; ``as_windows`` folds them back to
``(windows, time, sensors)`` for a generator that models the time axis.

Splits are fixed (seed 0) for every generator and seed: 60 / 15 / 25 % of rows (tables,
stratified by class) or of runs (SKAB). ``tune`` is for choosing a setting of ours; figures are
reported on ``test``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from bench import tabular_tables
from bench.datasets import shared_data_dir

FRACTIONS = (0.60, 0.15, 0.25)  # train, tune, test
SKAB_WINDOW = 16
SKAB_SENSORS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)


@dataclass(frozen=True)
class AugmentDataset:
    """One benchmark data set: its three splits and what to predict in them.

    Every split is a frame of feature columns plus the ``target`` column; a classification
    target is a ``category`` column with the same levels in every split. ``window`` is
    ``(time, features)`` for a set of flattened windows and ``None`` for a plain table.
    """

    name: str
    task: Literal["classification", "regression"]
    target: str
    train: pd.DataFrame
    tune: pd.DataFrame
    test: pd.DataFrame
    window: tuple[int, int] | None = None

    @property
    def features(self) -> list[str]:
        return [c for c in self.train.columns if c != self.target]


# ---------------------------------------------------------------------------- helpers


def as_windows(frame: pd.DataFrame, window: tuple[int, int]) -> np.ndarray:
    """Flat window rows -> ``(windows, time, features)`` float64 (columns are time-major)."""
    return frame.to_numpy(dtype=np.float64).reshape(len(frame), *window)


def window_columns(window: int, sensors: tuple[str, ...]) -> list[str]:
    """Time-major flat column names, ``sensor@tNN``."""
    return [f"{s}@t{t:02d}" for t in range(window) for s in sensors]


def _split_rows(frame: pd.DataFrame, stratify: pd.Series | None) -> dict[str, pd.DataFrame]:
    """60 / 15 / 25 % of rows (seed 0), stratified by ``stratify`` when given."""
    rest, test = train_test_split(frame, test_size=FRACTIONS[2], random_state=0, stratify=stratify)
    strat_rest = None if stratify is None else stratify.loc[rest.index]
    tune_share = FRACTIONS[1] / (FRACTIONS[0] + FRACTIONS[1])
    train, tune = train_test_split(rest, test_size=tune_share, random_state=0, stratify=strat_rest)
    return {k: v.reset_index(drop=True) for k, v in {"train": train, "tune": tune, "test": test}.items()}


def _table(name: str, frame: pd.DataFrame, target: str, task: str) -> AugmentDataset:
    stratify = frame[target] if task == "classification" else None
    return AugmentDataset(name=name, task=task, target=target, **_split_rows(frame, stratify))


# ----------------------------------------------------------------------------- tables


def load_breast_cancer() -> AugmentDataset:
    """569 tumours, 30 float features, ``diagnosis`` (malignant / benign)."""
    from sklearn.datasets import load_breast_cancer as load

    bunch = load(as_frame=True)
    diagnosis = pd.Categorical.from_codes(bunch.target, categories=list(bunch.target_names))
    return _table("breast_cancer", bunch.data.assign(diagnosis=diagnosis), "diagnosis", "classification")


def load_wine() -> AugmentDataset:
    """178 wines, 13 float measurements, ``cultivar`` (3 classes)."""
    return _table("wine", tabular_tables.load_wine(), "cultivar", "classification")


def load_cars() -> AugmentDataset:
    """392 complete cars (14 rows with a gap dropped), ``Origin`` (USA / Europe / Japan)."""
    frame = tabular_tables.load_cars().dropna().reset_index(drop=True)
    return _table("cars", frame, "Origin", "classification")


def load_diabetes() -> AugmentDataset:
    """442 patients, nine floats and ``sex``; predict ``progression`` (regression)."""
    return _table("diabetes", tabular_tables.load_diabetes(), "progression", "regression")


def load_iris() -> AugmentDataset:
    """150 flowers, four float measurements, ``species`` (3 classes)."""
    return _table("iris", tabular_tables.load_iris(), "species", "classification")


def load_digits() -> AugmentDataset:
    """1,797 8x8 digit images as 61 integer pixel columns, ``digit`` (10 classes)."""
    from sklearn.datasets import load_digits as load

    bunch = load(as_frame=True)
    pixels = tabular_tables.load_digits()
    digit = pd.Categorical.from_codes(bunch.target, categories=[str(d) for d in bunch.target_names])
    return _table("digits", pixels.assign(digit=digit), "digit", "classification")


def load_penguins() -> AugmentDataset:
    """333 complete penguins (11 rows with a gap dropped), ``species`` (3 classes)."""
    frame = tabular_tables.load_penguins().dropna().reset_index(drop=True)
    frame["sex"] = frame["sex"].cat.remove_unused_categories()
    return _table("penguins", frame, "species", "classification")


def load_seattle_weather() -> AugmentDataset:
    """1,461 days of Seattle weather: precipitation, temperatures, wind and the ``month``; predict
    the ``weather`` (5 classes). The date itself is dropped (an identifier)."""
    from vega_datasets import data

    frame = data.seattle_weather()
    frame = frame.assign(month=frame["date"].dt.month.astype(np.int64)).drop(columns="date")
    frame["weather"] = frame["weather"].astype("category")
    return _table("seattle_weather", frame, "weather", "classification")


# ---------------------------------------------------------------------------- windows


def load_skab(window: int = SKAB_WINDOW) -> AugmentDataset:
    """SKAB's labelled runs as flat ``window``-second windows, split by run (see module doc)."""
    root = shared_data_dir() / "skab"
    runs = sorted(root.glob("valve1/*.csv")) + sorted(root.glob("valve2/*.csv")) + sorted(root.glob("other/*.csv"))
    order = np.random.default_rng(0).permutation(len(runs))
    n_test = round(FRACTIONS[2] * len(runs))
    n_tune = round(FRACTIONS[1] * len(runs))
    split_of = {int(i): "test" for i in order[:n_test]}
    split_of |= {int(i): "tune" for i in order[n_test : n_test + n_tune]}
    columns = window_columns(window, SKAB_SENSORS)
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "tune": [], "test": []}
    for i, path in enumerate(runs):
        run = pd.read_csv(path, sep=";")
        n = len(run) // window
        # (windows, time, sensors) -> flat time-major rows
        values = run[list(SKAB_SENSORS)].to_numpy(np.float64)[: n * window].reshape(n, window * len(SKAB_SENSORS))
        fault = run["anomaly"].to_numpy()[: n * window].reshape(n, window).mean(axis=1) > 0.5
        rows = pd.DataFrame(values, columns=columns)
        rows["anomalous"] = pd.Categorical(np.where(fault, "fault", "normal"), categories=["normal", "fault"])
        parts[split_of.get(i, "train")].append(rows)
    splits = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    return AugmentDataset(
        name="skab", task="classification", target="anomalous", window=(window, len(SKAB_SENSORS)), **splits
    )


DATASETS: dict[str, Callable[[], AugmentDataset]] = {
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "cars": load_cars,
    "diabetes": load_diabetes,
    "iris": load_iris,
    "digits": load_digits,
    "penguins": load_penguins,
    "seattle_weather": load_seattle_weather,
    "skab": load_skab,
}
