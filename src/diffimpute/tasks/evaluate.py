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

from diffimpute.baselines import BASELINES, make_baseline
from diffimpute.data.schema import to_panel
from diffimpute.masking.simulate import parse_mask_spec
from diffimpute.metrics.imputation import summarize
from diffimpute.tasks.imputer import DiffusionImputer
from diffimpute.tasks.result import ImputationResult

# Probabilistic methods: the guess each diffusion imputer refines; all take ``diffusion_params``.
# "csdi" is the CSDI-faithful setting (no guess, noise prediction), kept for comparison.
PROBABILISTIC_METHODS = {
    "diffusion": {"guess": "interpolate"},
    "lssdm": {"guess": "latent"},
    "csdi": {"guess": "none", "prediction": "epsilon"},
}
DEFAULT_METHODS = ("diffusion", "mean", "linear", "knn", "mice")


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

    ``"diffusion"`` is the default imputer (refining linear interpolation), ``"lssdm"`` refines the
    LSSDM latent prior, ``"csdi"`` is the CSDI-faithful setting; ``diffusion_params`` go to all three.
    Returns the table (one row per method: mae, rmse, crps, crps_q19, coverage, width, fit and
    impute seconds) and each method's output (an ``ImputationResult`` for probabilistic methods).
    """
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {available_methods()}")
    if not methods:
        raise ValueError(f"pass at least one method; choose from {available_methods()}")
    truth = to_panel(data)
    scale = np.nanstd(truth.reshape(-1, truth.shape[-1]), axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    gappy, hidden = hide_cells(data, mask, seed)
    hidden_panel = hidden.reshape(truth.shape)
    if not hidden_panel.any():
        raise ValueError(f"mask {mask!r} hid no cells; use a higher rate or more data")
    rows, outputs = [], {}
    for method in methods:
        if on_method is not None:
            on_method(method)
        started = time.perf_counter()
        if method in PROBABILISTIC_METHODS:
            params = {**PROBABILISTIC_METHODS[method], "random_state": seed, **(diffusion_params or {})}
            model = DiffusionImputer(**params).fit(gappy)
            fitted = time.perf_counter()
            output = model.impute(gappy, n_samples=n_samples, seed=seed)
            samples = output.samples
        else:
            model = make_baseline(method).fit(gappy)
            fitted = time.perf_counter()
            output = model.transform(gappy)
            samples = to_panel(output)[None]
        finished = time.perf_counter()
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
                "fit_seconds": fitted - started,
                "impute_seconds": finished - fitted,
            }
        )
        outputs[method] = output
    return pd.DataFrame(rows).set_index("method"), outputs
