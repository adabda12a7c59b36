"""TabularImputer's tree guess settings: a wide table's trees take fewer folds, a narrow one's more."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from diffimpute import TabularImputer
from diffimpute.engine.calibration import residual_quantiles
from diffimpute.tasks import tabular_guess
from diffimpute.tasks.held_out import UnseenResiduals

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


def test_trees_are_refitted_on_every_observed_cell_once_chosen() -> None:
    """After selection and calibration the trees learn from the held-out cells too (as
    MissForest uses every cell): they are the trees the same settings fit on the whole table,
    not those fitted with the held-out cells hidden."""
    import copy

    from diffimpute.nn.tree_guess import ColumnChoiceGuess

    table = _table(5)
    imputer = TabularImputer(**QUICK, random_state=0).fit(table)
    choice = imputer.model_.guess
    assert bool(choice.tree_weight.any())
    codes = imputer.encoder_.codes(table)
    scaled = imputer.scaler_.transform(imputer.encoder_.encode(codes))
    held = imputer._held_out_columns(codes, np.random.default_rng(imputer.seed_))
    assert held.any()

    def trees_fitted_on(rows: np.ndarray) -> ColumnChoiceGuess:
        again = ColumnChoiceGuess(choice.gaussian, [copy.deepcopy(trees) for trees in choice.rounds])
        imputer._fit_trees(again, imputer._windows(rows).with_observed_cells())
        return again

    whole = trees_fitted_on(scaled)
    without_held = trees_fitted_on(np.where(held[:, imputer.encoder_.channel_column], np.nan, scaled))
    for ours, other in zip(choice.rounds, whole.rounds):
        assert torch.equal(ours.leaf_value, other.leaf_value) and torch.equal(ours.threshold, other.threshold)
    assert not torch.equal(choice.rounds[0].leaf_value, without_held.rounds[0].leaf_value)


def test_the_guess_intervals_cover_nine_in_ten_hidden_cells_with_few_held_out() -> None:
    """With the guess imputed, its intervals come from its errors: at training cells its trees never
    saw as well as at the held-out ones, so that a handful of held-out cells (1 % here) still gives
    intervals that cover about 90 % of the really hidden cells, not an extreme of a few errors."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(800)
    truth = pd.DataFrame({"x": x, "y": x + 0.5 * rng.standard_normal(800),
                          "z": np.abs(x) + 0.5 * rng.standard_normal(800)})
    hidden = rng.random(truth.shape) < 0.2
    imputer = TabularImputer(**QUICK, validation_fraction=0.01, random_state=0).fit(truth.mask(hidden))
    assert not imputer.refines_
    result = imputer.impute(truth.mask(hidden), n_samples=50, seed=0)
    lower, upper = result.interval(0.1)
    inside = (lower.to_numpy() <= truth.to_numpy()) & (truth.to_numpy() <= upper.to_numpy())
    assert 0.85 <= inside[hidden].mean() <= 0.95


def test_the_unseen_errors_come_from_trees_that_never_saw_their_rows(monkeypatch) -> None:
    """The calibration cells are guessed with each row's own fold key (trees fitted without it), never
    key 0 (the average over all folds, whose trees saw the row): in-sample errors would run narrow."""
    seen = []
    guess_of = TabularImputer._guess_of

    def spy(self, windows, cond_mask, device, on_chunk=None):
        seen.append(windows.positions.clone())
        return guess_of(self, windows, cond_mask, device, on_chunk)

    original = TabularImputer._unseen_residuals

    def watched(self, train_windows, device):
        monkeypatch.setattr(TabularImputer, "_guess_of", spy)
        try:
            return original(self, train_windows, device)
        finally:
            monkeypatch.setattr(TabularImputer, "_guess_of", guess_of)

    monkeypatch.setattr(TabularImputer, "_unseen_residuals", watched)
    TabularImputer(**QUICK, random_state=0).fit(_table(5))
    keys = torch.cat(seen)
    assert len(keys) and bool((keys >= 1).all()) and len(keys.unique()) == tabular_guess._TREE_FOLDS


def test_unseen_errors_of_some_columns_leave_the_others_intervals_alone() -> None:
    """Unseen errors come only from the columns the trees guess alone. A column with too few
    held-out cells pools its quantiles over columns; hundreds of unseen cells of a well-guessed
    column must not set that pool (on a 303-row, 22-column table they cut coverage to 0.72)."""
    rng = np.random.default_rng(0)
    feature = np.repeat(np.arange(3), 30)  # 30 held-out cells per column: pooled quantiles
    residual = rng.standard_normal(90)
    unseen = UnseenResiduals(0.1 * rng.standard_normal(1000), np.zeros(1000, dtype=np.int64),
                             np.full(1000, 4))  # column 0 alone, ten times narrower
    refiner = SimpleNamespace(_n_channels=lambda: 3)
    table = TabularImputer._residual_table(refiner, residual, feature, np.full(90, 4), unseen)
    alone = residual_quantiles(residual, feature, np.full(90, 4), 3)
    np.testing.assert_array_equal(table[1:], alone[1:])
    assert table[0, 4, -1] - table[0, 4, 0] < 0.5 * (alone[0, 4, -1] - alone[0, 4, 0])  # its own, narrow
