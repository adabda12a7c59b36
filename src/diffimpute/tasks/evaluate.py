"""Imputation quality as a data-quality measure: hide observed cells, impute them, score every method.

Every method sees the same data with the same extra cells hidden, and is scored only on those
cells, whose true values are known. Scores are computed on standardised values (each feature
divided by the standard deviation of its observed values) so that features in different units
weigh alike; point methods get CRPS equal to their absolute error, and no interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from diffimpute.baselines import BASELINES, make_baseline
from diffimpute.baselines.tabular import TABLE_BASELINES, TableBaseline
from diffimpute.data.schema import to_panel
from diffimpute.data.table import TableEncoder
from diffimpute.masking.simulate import parse_mask_spec
from diffimpute.metrics.imputation import summarize
from diffimpute.tasks.imputer import DiffusionImputer
from diffimpute.tasks.result import ImputationResult, TableImputationResult
from diffimpute.tasks.tabular import TabularImputer
from diffimpute.tasks.warm_start import ZERO_SHOT_VALIDATION_FRACTION

# Probabilistic methods: the guess each diffusion imputer refines and where it starts; all take
# ``diffusion_params``. "diffusion" fine-tunes the shipped pretrained denoiser, "zero-shot" imputes
# with it untrained, "scratch" trains the CSDI denoiser from random weights; "csdi" is the
# CSDI-faithful setting (no guess, noise prediction), kept for comparison.
PROBABILISTIC_METHODS = {
    "diffusion": {"guess": "interpolate"},
    "zero-shot": {"guess": "interpolate", "max_steps": 0, "validation_fraction": ZERO_SHOT_VALIDATION_FRACTION},
    "scratch": {"guess": "interpolate", "pretrained": None},
    "lssdm": {"guess": "latent"},
    "csdi": {"guess": "none", "prediction": "epsilon"},
}
DEFAULT_METHODS = ("diffusion", "mean", "linear", "knn", "mice")
FELL_BACK = "fell back to its guess"


def _column_scale(values: np.ndarray) -> np.ndarray:
    """Each column's standard deviation over its observed values (1 for a constant column)."""
    scale = np.nanstd(values, axis=0)
    return np.where(scale > 0, scale, 1.0)


def _fit_and_fill(model, gappy, fill: Callable):
    """Fit ``model`` on ``gappy`` and fill it with ``fill(model)``: the output, fit and fill seconds."""
    started = time.perf_counter()
    model.fit(gappy)
    fitted = time.perf_counter()
    output = fill(model)
    return output, fitted - started, time.perf_counter() - fitted


def method_label(method: str, refines: bool | None = None) -> str:
    """How output names ``method``: a diffusion model that did not beat its own guess on held-out
    cells (``refines_`` False) imputes that guess, so it is named for what it imputed."""
    return method if refines is None or refines else f"{method} ({FELL_BACK})"


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """An ``evaluate_methods`` or ``evaluate_table_methods`` table for people to read: each row
    named by ``method_label`` (the index of the table itself stays the method names that its
    outputs are keyed by), without the ``refines`` column that the names now say."""
    if "refines" not in table:
        return table
    names = [method_label(method, None if pd.isna(refines) else bool(refines))
             for method, refines in zip(table.index, table["refines"])]
    return table.drop(columns="refines").set_axis(pd.Index(names, name=table.index.name))


def available_methods() -> list[str]:
    """Names ``evaluate_methods`` accepts."""
    return [*PROBABILISTIC_METHODS, *BASELINES]


def hide_cells(data: pd.DataFrame | np.ndarray, mask: str, seed: int) -> tuple[pd.DataFrame | np.ndarray, np.ndarray]:
    """``data`` with extra observed cells set missing by ``mask`` (e.g. ``"mcar:0.1"``), and that mask."""
    values = data.to_numpy(dtype=np.float64, na_value=np.nan) if isinstance(data, pd.DataFrame) else np.asarray(data, dtype=np.float64)
    hidden = parse_mask_spec(mask)(values, np.random.default_rng(seed))
    if isinstance(data, pd.DataFrame):
        return data.mask(hidden), hidden
    return np.where(hidden, np.nan, values), hidden


def evaluate_methods(
    data: pd.DataFrame | np.ndarray,
    mask: str = "mcar:0.1",
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    n_samples: int = 50,
    alpha: float = 0.1,
    seed: int = 0,
    diffusion_params: dict | None = None,
    on_method: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, ImputationResult | pd.DataFrame | np.ndarray]]:
    """Score ``methods`` on cells hidden from ``data`` by ``mask``.

    ``"diffusion"`` is the default imputer (fine-tuned from the pretrained denoiser, refining linear
    interpolation), ``"zero-shot"`` the pretrained denoiser untrained, ``"scratch"`` the default
    trained from random weights, ``"lssdm"`` refines the LSSDM latent prior, ``"csdi"`` is the
    CSDI-faithful setting; ``diffusion_params`` go to all of them, except where they would
    change what defines a method (its guess, prediction, start and, for ``"zero-shot"``, no training).
    Returns the table (one row per method: mae, rmse, crps, crps_q19, coverage, width, fit and
    impute seconds, and ``refines``: for a diffusion method, False where it did not beat its own
    guess and imputed that guess, NA for a baseline; ``labelled(table)`` names such rows "diffusion
    (fell back to its guess)") and each method's output (an ``ImputationResult`` for probabilistic
    methods).
    """
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {available_methods()}")
    if not methods:
        raise ValueError(f"pass at least one method; choose from {available_methods()}")
    truth = to_panel(data)
    scale = _column_scale(truth.reshape(-1, truth.shape[-1]))
    gappy, hidden = hide_cells(data, mask, seed)
    hidden_panel = hidden.reshape(truth.shape)
    if not hidden_panel.any():
        raise ValueError(f"mask {mask!r} hid no cells; use a higher rate or more data")
    rows, outputs = [], {}
    for method in methods:
        if on_method is not None:
            on_method(method)
        if method in PROBABILISTIC_METHODS:
            # the method's own settings win: "zero-shot" stays untrained whatever budget the others get
            params = {"random_state": seed, **(diffusion_params or {}), **PROBABILISTIC_METHODS[method]}
            model = DiffusionImputer(**params)
            output, fit_seconds, impute_seconds = _fit_and_fill(
                model, gappy, lambda fitted: fitted.impute(gappy, n_samples=n_samples, seed=seed))
            samples, refines = output.samples, model.refines_
        else:
            output, fit_seconds, impute_seconds = _fit_and_fill(make_baseline(method), gappy,
                                                                lambda model: model.transform(gappy))
            samples, refines = to_panel(output)[None], pd.NA
        scores = summarize(samples / scale, truth / scale, hidden_panel, alpha=alpha)
        point = method not in PROBABILISTIC_METHODS
        rows.append(
            {
                "method": method,
                "mae": scores["mae"],
                "rmse": scores["rmse"],
                "crps": scores["crps_sample"],
                "crps_q19": scores["crps_quantile"],
                f"coverage_{1 - alpha:.0%}": np.nan if point else scores["coverage"],
                f"width_{1 - alpha:.0%}": np.nan if point else scores["width"],
                "fit_seconds": fit_seconds,
                "impute_seconds": impute_seconds,
                "refines": refines,
            }
        )
        outputs[method] = output
    return pd.DataFrame(rows).set_index("method").astype({"refines": "boolean"}), outputs


# ------------------------------------------------------------------------- tables

TABLE_METHODS = ("diffusion", *TABLE_BASELINES)


def hide_table_cells(frame: pd.DataFrame, mask: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``frame`` with extra observed cells set missing by ``mask``, and that mask ``(rows, columns)``.

    The mechanisms see categorical cells as their level index, so ``mar`` can let a category
    drive the missingness of other columns and ``mnar`` hides the later levels more often.
    """
    codes = TableEncoder.of(frame).codes(frame)
    hidden = parse_mask_spec(mask)(codes, np.random.default_rng(seed))
    return frame.mask(pd.DataFrame(hidden, index=frame.index, columns=frame.columns)), hidden


def evaluate_table_methods(
    frame: pd.DataFrame,
    mask: str = "mcar:0.3",
    methods: Sequence[str] = ("diffusion", "mean", "knn", "mice", "missforest"),
    *,
    n_samples: int = 50,
    alpha: float = 0.1,
    seed: int = 0,
    diffusion_params: dict | None = None,
    on_method: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, TableImputationResult | pd.DataFrame]]:
    """Score ``methods`` on cells of a table hidden by ``mask``.

    Numeric cells are scored in standardised units (MAE, RMSE, CRPS; interval coverage and width
    for ``diffusion``), categorical cells by accuracy and macro-F1 of the most likely level
    (macro-F1 averaged over the categorical columns). Returns the table (one row per method;
    ``refines`` as in ``evaluate_methods``) and each method's output.
    """
    unknown = [m for m in methods if m not in TABLE_METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown or no table methods {list(unknown)}; choose from {list(TABLE_METHODS)}")
    encoder = TableEncoder.of(frame)
    truth = encoder.codes(frame)
    numeric = encoder.numeric
    scale = _column_scale(truth[:, numeric])
    gappy, hidden = hide_table_cells(frame, mask, seed)
    if not hidden.any():
        raise ValueError(f"mask {mask!r} hid no cells; use a higher rate or more data")
    rows, outputs = [], {}
    for method in methods:
        if on_method is not None:
            on_method(method)
        if method == "diffusion":
            model = TabularImputer(**{"random_state": seed, **(diffusion_params or {})})
            output, fit_seconds, impute_seconds = _fit_and_fill(
                model, gappy, lambda fitted: fitted.impute(gappy, n_samples=n_samples, seed=seed))
            samples, point, refines = output.samples, encoder.codes(output.median()), model.refines_
        else:
            output, fit_seconds, impute_seconds = _fit_and_fill(TableBaseline(method, random_state=seed), gappy,
                                                                lambda model: model.transform(gappy))
            point, refines = encoder.codes(output), pd.NA
            samples = point[None]
        row = {"method": method, **_numeric_scores(samples, truth, hidden, numeric, scale, alpha,
                                                    probabilistic=method == "diffusion"),
               **_categorical_scores(point, truth, hidden, ~numeric),
               "fit_seconds": fit_seconds, "impute_seconds": impute_seconds, "refines": refines}
        rows.append(row)
        outputs[method] = output
    return pd.DataFrame(rows).set_index("method").astype({"refines": "boolean"}), outputs


def _numeric_scores(samples, truth, hidden, numeric, scale, alpha, probabilistic: bool) -> dict:
    cells = hidden[:, numeric]
    if not cells.any():
        return {}
    scores = summarize(samples[:, :, numeric] / scale, truth[:, numeric] / scale, cells, alpha=alpha)
    return {"mae": scores["mae"], "rmse": scores["rmse"], "crps": scores["crps_sample"],
            f"coverage_{1 - alpha:.0%}": scores["coverage"] if probabilistic else np.nan,
            f"width_{1 - alpha:.0%}": scores["width"] if probabilistic else np.nan}


def _categorical_scores(point, truth, hidden, categorical) -> dict:
    cells = hidden & categorical[None]
    if not cells.any():
        return {}
    per_column = [f1_score(truth[cells[:, j], j], point[cells[:, j], j], average="macro")
                  for j in np.flatnonzero(categorical) if cells[:, j].any()]
    return {"accuracy": float((point == truth)[cells].mean()), "macro_f1": float(np.mean(per_column))}
