"""How good synthetic rows are as stand-ins for real ones: shapes, trends, detectability, utility, copying.

Every figure compares synthetic rows with real rows the generator was *not* fitted on wherever it
can, because scores on the training rows reward a generator for copying them:

- ``column_shapes``: per column, 1 - Kolmogorov-Smirnov statistic (numbers) or 1 - total
  variation distance (categories); 1 is the same marginal distribution.
- ``pair_trends``: per pair of numeric columns, 1 - |Pearson r real - r synthetic| / 2.
- ``discriminator_auc``: out-of-fold ROC AUC of a random forest telling real from synthetic
  rows; 0.5 means it cannot.
- ``train_on_synthetic``: balanced accuracy on real rows of a forest trained on synthetic rows
  (TSTR); the same forest trained on real training rows gives TRTR.
- ``dcr_share``: share of synthetic rows closer to a training row than to a held-out real row,
  against as many training rows as held-out rows (so that 0.5 is ideal and more means copying).

Rows are compared as ``RowSpace`` encodes them: numbers standardised with the training rows'
mean and spread, categories one-hot. Forests are small (``FOREST_TREES``) so that ``fit`` can
afford them on two CPU cores.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types
from scipy.stats import ks_2samp
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors

FOREST_TREES = 100
DCR_SUBSAMPLES = 10


# ------------------------------------------------------------------------- helpers


def _is_number(column: pd.Series) -> bool:
    return types.is_numeric_dtype(column.dtype) and not types.is_bool_dtype(column.dtype)


class RowSpace:
    """Rows of a frame -> points ``(rows, numbers + one-hot levels)``, with the statistics of ``reference``.

    A missing number becomes the reference mean (0) and a missing or unseen level all zeros, so
    that a gap never counts as a value of its own.
    """

    def __init__(self, reference: pd.DataFrame) -> None:
        self.numbers = [c for c in reference.columns if _is_number(reference[c])]
        self.levels = {c: pd.unique(reference[c].dropna()) for c in reference.columns if c not in self.numbers}
        values = reference[self.numbers].to_numpy(np.float64)
        self.mean = np.nanmean(values, axis=0) if len(self.numbers) else np.zeros(0)
        spread = np.nanstd(values, axis=0) if len(self.numbers) else np.zeros(0)
        self.scale = np.where(spread > 0, spread, 1.0)

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        parts = [np.nan_to_num((frame[self.numbers].to_numpy(np.float64) - self.mean) / self.scale)]
        for name, levels in self.levels.items():
            column = frame[name].astype(object).to_numpy()
            parts.append(np.stack([column == level for level in levels], axis=1).astype(np.float64))
        return np.hstack(parts)


def nearest_distance(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row of ``points`` to its nearest row of ``reference``, ``(rows,)``."""
    return NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(points)[0][:, 0]


def _forest(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(FOREST_TREES, min_samples_leaf=2, random_state=seed, n_jobs=1)


# ------------------------------------------------------------------------- scores on points


def dcr_share(synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray, seed: int = 0) -> float:
    """Share of ``synthetic`` rows nearer to ``train`` than to ``holdout`` (ties count half).

    ``train`` is subsampled to ``len(holdout)`` rows, so a generator that learned the distribution
    and nothing more scores 0.5 whatever the sizes; the share is averaged over ``DCR_SUBSAMPLES``
    seeded subsamples, because one subsample of a small hold-out moves it by several points."""
    to_holdout = nearest_distance(synthetic, holdout)
    if len(train) <= len(holdout):
        subsets = [np.arange(len(train))]
    else:
        rng = np.random.default_rng(seed)
        subsets = [rng.choice(len(train), len(holdout), replace=False) for _ in range(DCR_SUBSAMPLES)]
    shares = []
    for rows in subsets:
        to_train = nearest_distance(synthetic, train[rows])
        shares.append(np.mean(to_train < to_holdout) + 0.5 * np.mean(to_train == to_holdout))
    return float(np.mean(shares))


def discriminator_auc(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> float:
    """Out-of-fold (3-fold) ROC AUC of a forest separating ``real`` from ``synthetic`` points."""
    points = np.vstack([real, synthetic])
    is_synthetic = np.r_[np.zeros(len(real)), np.ones(len(synthetic))]
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    scores = cross_val_predict(_forest(seed), points, is_synthetic, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(is_synthetic, scores))


def train_on_synthetic(fit_points: np.ndarray, fit_labels: np.ndarray, test_points: np.ndarray,
                       test_labels: np.ndarray, seed: int = 0) -> float:
    """Balanced accuracy on the test rows of a forest trained on ``fit_points`` (TSTR or TRTR)."""
    fit_labels, test_labels = np.asarray(fit_labels).astype(str), np.asarray(test_labels).astype(str)
    if len(np.unique(fit_labels)) < 2:  # a one-class training set predicts that class
        return float(balanced_accuracy_score(test_labels, np.full(len(test_labels), fit_labels[0])))
    predicted = _forest(seed).fit(fit_points, fit_labels).predict(test_points)
    return float(balanced_accuracy_score(test_labels, predicted))


# ------------------------------------------------------------------------- scores on frames


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame) -> pd.Series:
    """Per column: 1 - KS statistic (numbers) or 1 - total variation distance (categories)."""
    scores = {}
    for name in real.columns:
        a, b = real[name].dropna(), synthetic[name].dropna()
        if len(a) == 0 or len(b) == 0:
            scores[name] = np.nan
        elif _is_number(real[name]):
            scores[name] = 1.0 - ks_2samp(a.to_numpy(np.float64), b.to_numpy(np.float64)).statistic
        else:
            p = a.astype(object).value_counts(normalize=True)
            q = b.astype(object).value_counts(normalize=True)
            scores[name] = 1.0 - 0.5 * p.sub(q, fill_value=0).abs().sum()
    return pd.Series(scores, name="shape", dtype=np.float64)


def pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame) -> pd.DataFrame:
    """Per pair of numeric columns: both correlations and 1 - |difference| / 2, worst pairs first."""
    numbers = [c for c in real.columns if _is_number(real[c])]
    r_real = real[numbers].astype(np.float64).corr()
    r_synthetic = synthetic[numbers].astype(np.float64).corr()
    rows = [{"pair": f"{a} ~ {b}", "real_r": r_real.loc[a, b], "synthetic_r": r_synthetic.loc[a, b]}
            for a, b in itertools.combinations(numbers, 2)]
    frame = pd.DataFrame(rows, columns=["pair", "real_r", "synthetic_r"]).set_index("pair")
    frame["trend"] = 1.0 - (frame["real_r"] - frame["synthetic_r"]).abs() / 2
    return frame.sort_values("trend")


@dataclass(frozen=True)
class SyntheticQuality:
    """Every figure of one synthetic frame; ``tstr`` / ``trtr`` are None without a label column."""

    shapes: pd.Series
    trends: pd.DataFrame
    discriminator_auc: float
    dcr_share: float
    tstr: float | None
    trtr: float | None

    def summary(self) -> dict[str, float | None]:
        """The headline numbers: means of the per-column and per-pair scores, and the rest."""
        return {"column_shapes": float(self.shapes.mean()),
                "pair_trends": float(self.trends["trend"].mean()) if len(self.trends) else None,
                "discriminator_auc": self.discriminator_auc, "dcr_share": self.dcr_share,
                "tstr": self.tstr, "trtr": self.trtr,
                "tstr_over_trtr": None if self.tstr is None or not self.trtr else self.tstr / self.trtr}


def synthetic_quality(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame,
                      target: str | None = None, seed: int = 0) -> SyntheticQuality:
    """Score ``synthetic`` against the real ``train`` rows the generator saw and ``holdout`` rows it
    did not (same columns). ``target``: the class column for TSTR / TRTR (scored on ``holdout``)."""
    missing = [c for c in train.columns if c not in synthetic.columns or c not in holdout.columns]
    if missing:
        raise ValueError(f"synthetic and held-out rows must have the training columns; missing {missing}")
    if target is not None and target not in train.columns:
        raise ValueError(f"target {target!r} is not a column; columns are {list(train.columns)}")
    features = [c for c in train.columns if c != target]
    space = RowSpace(train[features])
    points = {name: space(frame[features]) for name, frame in
              (("train", train), ("synthetic", synthetic), ("holdout", holdout))}
    tstr = trtr = None
    if target is not None:
        tstr = train_on_synthetic(points["synthetic"], synthetic[target], points["holdout"], holdout[target], seed)
        trtr = train_on_synthetic(points["train"], train[target], points["holdout"], holdout[target], seed)
    return SyntheticQuality(shapes=column_shapes(holdout, synthetic), trends=pair_trends(holdout, synthetic),
                            discriminator_auc=discriminator_auc(points["holdout"], points["synthetic"], seed),
                            dcr_share=dcr_share(points["synthetic"], points["train"], points["holdout"], seed),
                            tstr=tstr, trtr=trtr)
