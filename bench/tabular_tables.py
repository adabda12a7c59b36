"""The tables of the tabular imputation benchmark, and the cells it hides in them.

Seven small public tables with numeric and categorical columns, each a pandas DataFrame whose
numeric columns are float or int and whose categorical columns are ``category``. None needs a
download: the scikit-learn tables ship with scikit-learn, penguins with ``palmerpenguins`` and
cars with ``vega_datasets`` (a diffimpute dependency). Penguins and cars have real gaps; those
cells are never scored, since their truth is unknown.

``hide`` draws the evaluation mask with diffimpute's own mechanisms, so the benchmark hides
cells exactly as ``diffimpute.masking.simulate`` documents.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn import datasets as sk

from diffimpute.masking.simulate import parse_mask_spec

MASKS = ("mcar:0.1", "mcar:0.3", "mcar:0.5", "mar:0.3", "mnar:0.3")


# ---------------------------------------------------------------------------- helpers


def _with_label(bunch, name: str) -> pd.DataFrame:
    """A scikit-learn bunch as a frame, its class target as a category column ``name``."""
    frame = bunch.frame.drop(columns="target")
    levels = pd.Categorical.from_codes(bunch.target, categories=list(bunch.target_names))
    return frame.assign(**{name: levels})


# ----------------------------------------------------------------------------- tables


def load_iris() -> pd.DataFrame:
    """150 flowers: four float measurements (cm) and ``species`` (3 levels)."""
    return _with_label(sk.load_iris(as_frame=True), "species")


def load_wine() -> pd.DataFrame:
    """178 wines: thirteen float chemical measurements and ``cultivar`` (3 levels)."""
    return _with_label(sk.load_wine(as_frame=True), "cultivar")


def load_diabetes() -> pd.DataFrame:
    """442 patients in original units: nine floats, ``sex`` (2 levels) and the float target
    ``progression`` (disease progression after one year), kept as a column like any other."""
    bunch = sk.load_diabetes(as_frame=True, scaled=False)
    frame = bunch.frame.rename(columns={"target": "progression"})
    return frame.assign(sex=frame["sex"].astype(int).astype("category"))


def load_breast_cancer() -> pd.DataFrame:
    """569 tumours: thirty float features; numeric only, so the diagnosis is left out."""
    return sk.load_breast_cancer(as_frame=True).data


def load_digits() -> pd.DataFrame:
    """1,797 8x8 images as a table of integer pixels (0-16); the three pixels that are 0 in
    every image are dropped (61 columns)."""
    frame = sk.load_digits(as_frame=True).data.astype(np.int64)
    return frame.loc[:, frame.nunique() > 1]


def load_penguins() -> pd.DataFrame:
    """344 penguins: four float measurements, ``species``, ``island``, ``sex`` (categories),
    with its natural gaps (2 rows without measurements, 11 without sex). ``year`` (the study
    season, not a property of the bird) is dropped."""
    from palmerpenguins import load_penguins as load

    frame = load().drop(columns="year")
    for column in ("species", "island", "sex"):
        frame[column] = frame[column].astype("category")
    return frame


def load_cars() -> pd.DataFrame:
    """406 cars: six numeric columns (``Cylinders`` int), the model ``Year`` as an int and
    ``Origin`` (3 levels), with its natural gaps (8 MPG, 6 horsepower). ``Name`` (an
    identifier) is dropped."""
    from vega_datasets import data

    frame = data.cars().drop(columns="Name")
    frame["Year"] = frame["Year"].dt.year.astype(np.int64)
    frame["Origin"] = frame["Origin"].astype("category")
    return frame


TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "iris": load_iris,
    "wine": load_wine,
    "diabetes": load_diabetes,
    "breast_cancer": load_breast_cancer,
    "digits": load_digits,
    "penguins": load_penguins,
    "cars": load_cars,
}


# ------------------------------------------------------------------------------ masks


def as_values(frame: pd.DataFrame) -> np.ndarray:
    """``(rows, columns)`` float64 array: categories as their integer codes, NaN where missing."""
    columns = [
        frame[c].cat.codes.where(frame[c].notna()) if isinstance(frame[c].dtype, pd.CategoricalDtype) else frame[c]
        for c in frame.columns
    ]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])


def hide(frame: pd.DataFrame, spec: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The frame with a simulated mask blanked, and that mask ``(rows, columns)``.

    ``spec`` is a ``diffimpute`` mask spec such as ``"mar:0.3"``; only observed cells are
    hidden. Blanking makes pandas turn an int column into float64 (NaN needs a float), as it
    would for any user's table with gaps; category columns keep their levels.
    """
    hidden = parse_mask_spec(spec)(as_values(frame), np.random.default_rng(seed))
    return frame.mask(pd.DataFrame(hidden, index=frame.index, columns=frame.columns)), hidden
