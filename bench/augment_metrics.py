"""How good a synthetic copy of a training table is: fidelity, utility, detectability, copying.

Every score compares a synthetic frame with the real frames it stands in for, all with the same
columns and dtypes (``conform`` makes a generator's output so):

- ``quality``: sdmetrics' single-table ``QualityReport`` (column shapes: KS / TV complement per
  column; column pair trends: correlation / contingency similarity per pair), 0-1, higher is better.
- ``utility``: train a random forest on one frame, score it on the real test rows (macro-F1 and
  accuracy for a class, R^2 for a number). Train-on-synthetic (TSTR) against train-on-real (TRTR)
  uses the same forest settings and seed.
- ``discriminator_auc``: out-of-fold ROC AUC of a gradient-boosted classifier told to separate
  the real training rows from as many synthetic rows (5-fold); 0.5 means it cannot tell them apart.
- ``distance_to_closest_record``: Euclidean distance of each synthetic row to its nearest
  training row, against the same distance for real rows the generator never saw (the test
  rows). A generator that copies its training rows puts many synthetic rows closer than real
  unseen rows ever get: ``share_below_holdout_p5`` would be well above 0.05.

Rows are encoded once, with statistics of the real training rows: numeric columns standardised,
categories one-hot (a level the training rows lack encodes as all zeros).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.metrics import accuracy_score, f1_score, r2_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors

FOREST_TREES = 300


# ---------------------------------------------------------------------------- helpers


def is_categorical(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.CategoricalDtype)


def conform(synthetic: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """``synthetic`` with ``like``'s column order and dtypes (categories with ``like``'s levels).

    Raises when a generator left gaps or invented levels: a score on such rows would be silently
    about something else.
    """
    out = synthetic[list(like.columns)].copy()
    for name in like.columns:
        if is_categorical(like[name]):
            levels = like[name].cat.categories
            values = out[name].astype(levels.dtype) if not is_categorical(out[name]) else out[name].astype(object)
            out[name] = pd.Categorical(values, categories=levels)
        else:
            out[name] = pd.to_numeric(out[name]).astype(np.float64)
    if out.isna().any().any():
        bad = out.columns[out.isna().any()].tolist()
        raise ValueError(f"synthetic rows have gaps or unknown levels in {bad}")
    return out


class RowEncoder:
    """Standardised numerics and one-hot categories, with the real training rows' statistics."""

    def __init__(self, train: pd.DataFrame):
        self.numeric = [c for c in train.columns if not is_categorical(train[c])]
        self.categorical = {c: train[c].cat.categories for c in train.columns if is_categorical(train[c])}
        values = train[self.numeric].to_numpy(np.float64)
        self.mean = values.mean(axis=0)
        self.std = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        """``(rows, numeric + one-hot columns)`` float64."""
        parts = [(frame[self.numeric].to_numpy(np.float64) - self.mean) / self.std]
        for name, levels in self.categorical.items():
            codes = pd.Categorical(frame[name], categories=levels).codes
            parts.append(np.eye(len(levels))[codes] * (codes >= 0)[:, None])
        return np.hstack(parts)


def sdmetrics_metadata(frame: pd.DataFrame) -> dict:
    return {
        "columns": {
            c: {"sdtype": "categorical" if is_categorical(frame[c]) else "numerical"} for c in frame.columns
        }
    }


# ---------------------------------------------------------------------------- metrics


def quality(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """sdmetrics QualityReport: ``quality`` (overall), ``column_shapes``, ``pair_trends``."""
    from sdmetrics.reports.single_table import QualityReport

    report = QualityReport()
    report.generate(real, synthetic, sdmetrics_metadata(real), verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    return {
        "quality": float(report.get_score()),
        "column_shapes": float(properties["Column Shapes"]),
        "pair_trends": float(properties["Column Pair Trends"]),
    }


def utility(
    fit_on: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    task: Literal["classification", "regression"],
    reference: pd.DataFrame,
    seed: int = 0,
) -> dict[str, float]:
    """A random forest trained on ``fit_on`` and scored on ``test``, features encoded with the
    statistics of ``reference`` (the real training rows) for every generator alike."""
    features = [c for c in fit_on.columns if c != target]
    encoder = RowEncoder(reference[features])
    x_fit, x_test = encoder(fit_on[features]), encoder(test[features])
    if task == "classification":
        forest = RandomForestClassifier(FOREST_TREES, random_state=seed, n_jobs=1)
        predicted = forest.fit(x_fit, fit_on[target].cat.codes).predict(x_test)
        truth = test[target].cat.codes
        return {"macro_f1": float(f1_score(truth, predicted, average="macro")),
                "accuracy": float(accuracy_score(truth, predicted))}
    forest = RandomForestRegressor(FOREST_TREES, random_state=seed, n_jobs=1)
    predicted = forest.fit(x_fit, fit_on[target]).predict(x_test)
    return {"r2": float(r2_score(test[target], predicted))}


def discriminator_auc(real: pd.DataFrame, synthetic: pd.DataFrame, encoder: RowEncoder, seed: int = 0) -> float:
    """Out-of-fold ROC AUC of real-vs-synthetic; 0.5 is indistinguishable."""
    x = np.vstack([encoder(real), encoder(synthetic)])
    is_synthetic = np.r_[np.zeros(len(real)), np.ones(len(synthetic))]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    model = HistGradientBoostingClassifier(random_state=seed)
    scores = cross_val_predict(model, x, is_synthetic, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(is_synthetic, scores))


def distance_to_closest_record(
    train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, encoder: RowEncoder
) -> dict[str, float]:
    """Nearest-training-row distances of synthetic and of unseen real rows, and the copy share."""
    index = NearestNeighbors(n_neighbors=1).fit(encoder(train))
    synthetic_dcr = index.kneighbors(encoder(synthetic))[0][:, 0]
    holdout_dcr = index.kneighbors(encoder(holdout))[0][:, 0]
    p5 = np.quantile(holdout_dcr, 0.05)
    return {
        "dcr_synthetic_median": float(np.median(synthetic_dcr)),
        "dcr_holdout_median": float(np.median(holdout_dcr)),
        "share_below_holdout_p5": float(np.mean(synthetic_dcr < p5)),
        "share_exact_copies": float(np.mean(synthetic_dcr < 1e-9)),
    }
