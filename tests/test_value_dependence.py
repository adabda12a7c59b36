"""The imputer names the columns whose gaps sit at other values than their observed cells."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from diffimpute import TabularImputer, load
from diffimpute.masking.simulate import mcar, mnar

TINY = {
    "hidden": 16,
    "n_layers": 1,
    "diffusion_steps": 10,
    "max_epochs": 2,
    "batch_size": 64,
    "n_samples": 4,
    "sampling_steps": 2,
    "time_budget": None,
    "device": "cpu",
    "verbose": False,
}


def correlated(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(n)
    return pd.DataFrame(
        {
            "a": base + 0.3 * rng.standard_normal(n),
            "b": base + 0.3 * rng.standard_normal(n),
            "c": base + 0.3 * rng.standard_normal(n),
        }
    )


def fitted(mask) -> tuple[TabularImputer, list[str]]:
    truth = correlated()
    hidden = mask(truth.to_numpy(), 0.3, np.random.default_rng(1))
    hidden[:, 1:] = False  # only ``a`` has gaps
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imputer = TabularImputer(**TINY).fit(truth.mask(hidden))
    return imputer, [str(w.message) for w in caught]


def test_self_masked_column_is_named_and_saved(tmp_path) -> None:
    """Large values of ``a`` hidden (MNAR): ``a`` is named, in the attribute, a warning and a saved file."""
    imputer, messages = fitted(mnar)
    assert imputer.value_dependent_columns_ == ["a"]
    assert any("'a' (higher" in m and "MNAR" in m for m in messages)
    imputer.save(tmp_path / "m.dfi")
    assert load(tmp_path / "m.dfi").value_dependent_columns_ == ["a"]


def test_gaps_at_random_are_not_named() -> None:
    imputer, messages = fitted(mcar)
    assert imputer.value_dependent_columns_ == []
    assert not any("MNAR" in m for m in messages)
