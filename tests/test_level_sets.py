"""Calibrated 90 % prediction sets for categorical cells."""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffimpute import TabularImputer, load
from diffimpute.tasks.level_sets import cumulative_before, in_set, set_threshold


def test_sets_take_levels_from_the_most_drawn() -> None:
    shares = np.array([[0.1, 0.6, 0.3], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(cumulative_before(shares), [[0.9, 0.0, 0.6], [0.0, 0.5, 1.0]])
    assert in_set(shares, 0.55).tolist() == [[False, True, False], [True, True, False]]


def test_threshold_covers_ninety_percent_of_fresh_cells() -> None:
    """Overconfident shares (the truth drawn less often than its level says): the calibrated sets
    still hold the truth about 90 % of the time on new cells drawn alike."""
    rng = np.random.default_rng(0)

    def cells(n: int) -> tuple[np.ndarray, np.ndarray]:
        shares = rng.dirichlet(np.full(4, 0.3), size=n)
        blurred = 0.5 * shares + 0.5 * rng.dirichlet(np.ones(4), size=n)  # what the truth follows
        truth = np.array([rng.choice(4, p=p) for p in blurred])
        return shares, truth

    threshold = set_threshold(*cells(2000))
    shares, truth = cells(4000)
    coverage = in_set(shares, threshold)[np.arange(len(truth)), truth].mean()
    assert 0.87 <= coverage <= 0.93
    naive = in_set(shares, 0.9)[np.arange(len(truth)), truth].mean()
    assert naive < 0.85  # uncalibrated shares under-cover here


def test_imputer_gives_calibrated_sets_that_survive_save(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    x = rng.standard_normal(n)
    level = np.where(x + 0.8 * rng.standard_normal(n) > 0, "up", "down")
    frame = pd.DataFrame({"x": x, "y": x + 0.5 * rng.standard_normal(n), "c": pd.Categorical(level)})
    gappy = frame.mask(pd.DataFrame(rng.random(frame.shape) < 0.3, columns=frame.columns))
    imputer = TabularImputer(hidden=16, n_layers=1, diffusion_steps=10, max_epochs=3, n_samples=16,
                             sampling_steps=3, time_budget=None, device="cpu", verbose=False).fit(gappy)
    assert np.isfinite(imputer.level_set_threshold_) and "set_coverage90" in imputer.validation_
    sets = imputer.impute(gappy, seed=1).prediction_set("c")
    missing = gappy["c"].isna().to_numpy()
    assert sets.to_numpy().any(axis=1).all()
    observed = ~missing
    assert (sets.to_numpy()[observed].sum(axis=1) == 1).all()
    truth = frame["c"].to_numpy()[missing]
    coverage = np.mean([sets.iloc[i][t] for i, t in zip(np.flatnonzero(missing), truth)])
    assert coverage >= 0.75
    imputer.save(tmp_path / "c.dfi")
    assert load(tmp_path / "c.dfi").level_set_threshold_ == imputer.level_set_threshold_
