"""The peers of the tabular imputation benchmark, behind one signature.

Every peer is ``peer(gappy, seed) -> Imputation``: it gets the same gappy DataFrame (numeric
columns float or int, categorical columns ``category``, NaN where missing) and returns a filled
frame plus, when it draws several imputations, the draws of its numeric columns. Each peer sees
only the gappy frame: an int column blanked by the mask arrives as float64, so "integer" is
inferred from the observed values wherever a peer can use it.

Encodings, chosen per peer as its authors intend or as the brief of issue 10 fixes them:

- KNN: standardised numeric columns plus one-hot categoricals (a missing level makes every
  dummy of that cell NaN); the largest imputed dummy wins.
- MICE and MissForest (scikit-learn ``IterativeImputer``): categoricals as integer codes,
  imputed by regression and rounded and clipped back to a valid level.
- ForestDiffusion: the same NaN-keeping one-hot, fed as plain columns. Its own ``cat_indexes``
  dummy-codes with ``pd.get_dummies``, which turns a missing level into the reference level
  (all dummies 0), so a hidden category would come back as that level instead of being imputed.
- HyperImpute: integer codes; it treats a column with at most ``class_threshold`` (5) distinct
  values as categorical and imputes it with a classifier.
- miceforest: the frame as it is (it handles ``category`` natively).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tabular_tables import as_values

# Settings, recorded in bench/README.md. ForestDiffusion's are cut from its defaults
# (n_t=50, duplicate_K=100) so that one fit stays within minutes on one core.
FOREST_DIFFUSION = {"n_t": 20, "duplicate_K": 20, "n_estimators": 100, "max_depth": 7, "diffusion_type": "vp"}
FOREST_DIFFUSION_DRAWS = 10
MICEFOREST = {"num_datasets": 10, "iterations": 3}
MISSFOREST_TREES = 100  # missForest's defaults: ntree=100, mtry=sqrt(p), maxiter=10
MAX_ITER = 10


@dataclass
class Imputation:
    """One method's answer for one gappy frame.

    ``filled`` has the input's columns and index, categoricals as ``category`` with the
    input's levels. ``draws`` is ``(n_draws, rows, n_numeric)`` over the numeric columns in
    frame order, or None for a single imputation; ``lower`` / ``upper`` ``(rows, n_numeric)``
    bound its central 90 % interval. Seconds are wall clock. ``fitted``: what a method says
    of its own fit (ours: held-out set coverage, whether it refined its guess, training steps).
    ``sets``: per categorical column, its 90 % prediction sets ``(rows, levels)`` bool with the
    levels as columns, or None for a method without them.
    """

    filled: pd.DataFrame
    fit_s: float
    impute_s: float
    draws: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    fitted: dict | None = None
    sets: dict[str, pd.DataFrame] | None = None


# ---------------------------------------------------------------------------- helpers


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not isinstance(frame[c].dtype, pd.CategoricalDtype)]


def from_codes(values: np.ndarray, template: pd.DataFrame) -> pd.DataFrame:
    """A filled ``(rows, columns)`` code array back to a frame like ``template``: category codes
    rounded and clipped to a valid level, observed cells copied from ``template``."""
    out = pd.DataFrame(values, index=template.index, columns=template.columns)
    for column in categorical_columns(template):
        levels = template[column].cat.categories
        codes = np.clip(np.rint(out[column].to_numpy()), 0, len(levels) - 1).astype(int)
        out[column] = pd.Categorical.from_codes(codes, categories=levels)
    return template.where(template.notna(), out)


class OneHot:
    """Numeric columns (optionally standardised) next to full one-hot dummies of each
    categorical column; a missing level makes all its dummies NaN, so it is imputed, not read
    as a level. ``decode`` takes the largest dummy per categorical."""

    def __init__(self, frame: pd.DataFrame, standardise: bool) -> None:
        self.template = frame
        self.numeric = numeric_columns(frame)
        values = frame[self.numeric].to_numpy(dtype=np.float64)
        self.mean = np.nanmean(values, axis=0) if standardise else np.zeros(len(self.numeric))
        spread = np.nanstd(values, axis=0) if standardise else np.ones(len(self.numeric))
        self.std = np.where(spread > 0, spread, 1.0)

    def encode(self) -> np.ndarray:
        """``(rows, n_numeric + total levels)`` float64 with NaN where missing."""
        blocks = [(self.template[self.numeric].to_numpy(dtype=np.float64) - self.mean) / self.std]
        for column in categorical_columns(self.template):
            series = self.template[column]
            dummies = np.eye(len(series.cat.categories))[series.cat.codes.clip(lower=0)]
            blocks.append(np.where(series.isna().to_numpy()[:, None], np.nan, dummies))
        return np.column_stack(blocks)

    def decode(self, encoded: np.ndarray) -> pd.DataFrame:
        out = self.template.copy()
        out[self.numeric] = encoded[:, : len(self.numeric)] * self.std + self.mean
        start = len(self.numeric)
        for column in categorical_columns(self.template):
            levels = self.template[column].cat.categories
            codes = encoded[:, start : start + len(levels)].argmax(axis=1)
            out[column] = pd.Categorical.from_codes(codes, categories=levels)
            start += len(levels)
        return self.template.where(self.template.notna(), out)


def from_draws(frames: list[pd.DataFrame], fit_s: float, impute_s: float) -> Imputation:
    """Several filled frames as one Imputation: the median of the draws for numeric cells, the
    most frequent level for categorical cells, and the 5 % / 95 % quantiles as the interval."""
    template = frames[0]
    numeric = numeric_columns(template)
    draws = np.stack([f[numeric].to_numpy(dtype=np.float64) for f in frames])
    filled = template.copy()
    filled[numeric] = np.median(draws, axis=0)
    for column in categorical_columns(template):
        codes = np.stack([f[column].cat.codes.to_numpy() for f in frames])
        counts = np.stack([(codes == level).sum(axis=0) for level in range(len(template[column].cat.categories))])
        filled[column] = pd.Categorical.from_codes(counts.argmax(axis=0), categories=template[column].cat.categories)
    lower, upper = np.quantile(draws, [0.05, 0.95], axis=0)
    return Imputation(filled, fit_s, impute_s, draws, lower, upper)


def _whole_numbers(frame: pd.DataFrame, columns: list[str]) -> list[int]:
    """Positions (within ``columns``) of columns whose observed values are all integers."""
    return [i for i, c in enumerate(columns) if np.all(np.mod(frame[c].dropna().to_numpy(dtype=float), 1) == 0)]


def _timed(function: Callable, *args, **kwargs):
    started = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - started


# ------------------------------------------------------------------------------ peers


def mean_mode(gappy: pd.DataFrame, seed: int) -> Imputation:
    """Each numeric column's observed mean, each categorical column's most frequent level."""
    started = time.perf_counter()
    fill = {c: gappy[c].mean() for c in numeric_columns(gappy)}
    fill |= {c: gappy[c].mode().iloc[0] for c in categorical_columns(gappy)}
    fit_s = time.perf_counter() - started
    filled, impute_s = _timed(gappy.fillna, fill)
    return Imputation(filled, fit_s, impute_s)


def knn(gappy: pd.DataFrame, seed: int) -> Imputation:
    """scikit-learn ``KNNImputer`` (5 neighbours, uniform weights) on the standardised one-hot table."""
    from sklearn.impute import KNNImputer

    encoder = OneHot(gappy, standardise=True)
    encoded = encoder.encode()
    model, fit_s = _timed(KNNImputer(n_neighbors=5).fit, encoded)
    filled, impute_s = _timed(model.transform, encoded)
    return Imputation(encoder.decode(filled), fit_s, impute_s)


def _iterative(gappy: pd.DataFrame, seed: int, estimator) -> Imputation:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    values = as_values(gappy)
    imputer = IterativeImputer(estimator=estimator, max_iter=MAX_ITER, sample_posterior=False, random_state=seed,
                               keep_empty_features=True)
    model, fit_s = _timed(imputer.fit, values)
    filled, impute_s = _timed(model.transform, values)
    return Imputation(from_codes(filled, gappy), fit_s, impute_s)


def mice(gappy: pd.DataFrame, seed: int) -> Imputation:
    """scikit-learn ``IterativeImputer`` with ``BayesianRidge``, 10 rounds, posterior means."""
    from sklearn.linear_model import BayesianRidge

    return _iterative(gappy, seed, BayesianRidge())


def missforest(gappy: pd.DataFrame, seed: int) -> Imputation:
    """MissForest as ``IterativeImputer`` with a random forest of missForest's defaults
    (100 trees, sqrt(p) features per split), 10 rounds."""
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=MISSFOREST_TREES, max_features="sqrt", n_jobs=1, random_state=seed)
    return _iterative(gappy, seed, forest)


def forest_diffusion(gappy: pd.DataFrame, seed: int) -> Imputation:
    """ForestDiffusion's VP diffusion with XGBoost, fast (non-REPAINT) imputation, 10 draws."""
    from ForestDiffusion import ForestDiffusionModel

    encoder = OneHot(gappy, standardise=False)
    encoded = encoder.encode()
    model, fit_s = _timed(ForestDiffusionModel, encoded, int_indexes=_whole_numbers(gappy, encoder.numeric),
                          n_jobs=1, seed=seed, **FOREST_DIFFUSION)
    # Impute the full encoded table: with X=None it would impute its training copy, which has
    # lost the rows that were entirely missing.
    scaled = model.scaler.transform(encoded)
    draws, impute_s = _timed(model.impute, k=FOREST_DIFFUSION_DRAWS, X=scaled)
    return from_draws([encoder.decode(d) for d in draws], fit_s, impute_s)


def hyperimpute(gappy: pd.DataFrame, seed: int) -> Imputation:
    """HyperImpute with its defaults. Its ``fit`` does nothing and ``transform`` both searches
    and imputes, so all of its time is counted as fit seconds."""
    from hyperimpute.plugins.imputers import Imputers

    codes = pd.DataFrame(as_values(gappy), columns=[str(c) for c in gappy.columns])
    plugin = Imputers().get("hyperimpute", random_state=seed)
    filled, fit_s = _timed(plugin.fit_transform, codes)
    return Imputation(from_codes(np.asarray(filled, dtype=np.float64), gappy), fit_s, 0.0)


def miceforest(gappy: pd.DataFrame, seed: int) -> Imputation:
    """miceforest (LightGBM random forests, mean matching): 10 datasets, 3 iterations, one thread."""
    import miceforest as mf

    started = time.perf_counter()
    kernel = mf.ImputationKernel(gappy.rename(columns=str), num_datasets=MICEFOREST["num_datasets"], random_state=seed)
    kernel.mice(MICEFOREST["iterations"], num_threads=1)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    frames = [kernel.complete_data(dataset=i).set_axis(gappy.columns, axis=1) for i in range(MICEFOREST["num_datasets"])]
    return from_draws(frames, fit_s, time.perf_counter() - started)


PEERS: dict[str, Callable[[pd.DataFrame, int], Imputation]] = {
    "mean_mode": mean_mode,
    "knn": knn,
    "mice": mice,
    "missforest": missforest,
    "forest_diffusion": forest_diffusion,
    "hyperimpute": hyperimpute,
    "miceforest": miceforest,
}
