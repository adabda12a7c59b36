"""TabularImputer's tree guess settings: a wide table's trees take fewer folds, a narrow one's more."""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffimpute import TabularImputer
from diffimpute.tasks import tabular_guess

QUICK = {"hidden": 16, "n_layers": 1, "diffusion_steps": 10, "max_steps": 20, "batch_size": 32, "n_samples": 4,
         "sampling_steps": 3, "time_budget": None, "device": "cpu", "verbose": False, "guess": "auto"}


def _table(n_columns: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((120, 1))
    values = np.abs(z) + 0.3 * rng.standard_normal((120, n_columns))
    values[rng.random(values.shape) < 0.2] = np.nan
    return pd.DataFrame(values, columns=[f"c{j}" for j in range(n_columns)])


def test_wide_tables_cross_fit_fewer_folds_in_every_round() -> None:
    """Past ``_WIDE_CHANNELS`` the trees of every round are fitted in ``_WIDE_FOLDS`` folds (their
    cost grows with rows x channels, and every guess runs them all); below it in ``_TREE_FOLDS``."""
    for n_columns, folds in ((tabular_guess._WIDE_CHANNELS + 1, tabular_guess._WIDE_FOLDS),
                             (6, tabular_guess._TREE_FOLDS)):
        imputer = TabularImputer(**QUICK, tree_rounds=2, random_state=0).fit(_table(n_columns))
        rounds = imputer.model_.guess.rounds
        assert len(rounds) == 2
        assert all(len(trees.baseline) == folds and len(trees.roots) for trees in rounds)
