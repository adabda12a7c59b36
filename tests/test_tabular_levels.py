"""Categorical draws from the guess's level probabilities: systematic sampling, and an imputer
whose guess stands in for its model drawing several levels where it is unsure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from diffimpute import TabularImputer
from diffimpute.tasks.level_sets import draw_levels

FAST = {"hidden": 32, "n_layers": 1, "diffusion_steps": 20, "max_epochs": 1, "batch_size": 32,
        "sampling_steps": 5, "time_budget": None, "device": "cpu", "verbose": False}


def test_levels_are_drawn_in_proportion_and_shuffled() -> None:
    """Each level is drawn n p times rounded up or down, so the most drawn is the most likely
    unless another is within 1 / n of it, and the draws are not in level order."""
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=200)
    drawn = draw_levels(probabilities, rng.random((31, 200)))  # 30 draws
    counts = (drawn[..., None] == np.arange(4)).sum(axis=0)  # (cells, levels)
    assert np.all(np.abs(counts - 30 * probabilities) < 1)
    top = np.sort(probabilities, axis=1)
    clear = top[:, -1] - top[:, -2] > 1 / 30
    assert np.array_equal(np.argmax(counts, axis=1)[clear], np.argmax(probabilities, axis=1)[clear])
    assert (np.diff(drawn, axis=0) < 0).any(axis=0).mean() > 0.9


def test_unsure_categorical_cells_draw_several_levels() -> None:
    """A level set by a noisy threshold: where the guess stands in for the model, cells near
    the threshold draw both levels, the most drawn one is the guess's, and the calibrated sets
    hold one level for some cells and two for others."""
    rng = np.random.default_rng(0)
    n = 400
    x = rng.standard_normal(n)
    frame = pd.DataFrame({"x": x, "y": x + 0.5 * rng.standard_normal(n),
                          "side": np.where(x + 1.0 * rng.standard_normal(n) > 0, "up", "down")})
    gappy = frame.copy()
    hidden = rng.random(n) < 0.3
    gappy.loc[hidden, "side"] = None
    imputer = TabularImputer(**FAST).fit(gappy)
    assert not imputer.refines_  # an untrained model does not beat its guess
    result = imputer.impute(gappy, n_samples=40, seed=1)
    draws = result.samples[:, hidden, 2]  # (samples, cells) level codes
    share_up = (draws == 1).mean(axis=0)
    assert ((share_up > 0.1) & (share_up < 0.9)).mean() > 0.1
    guess = (result.guess["side"][hidden] == "up").to_numpy()
    assert np.mean((share_up > 0.5) == guess) > 0.95
    sizes = result.prediction_set("side").to_numpy()[hidden].sum(axis=1)
    assert set(sizes) == {1, 2}


def test_a_table_of_categories_alone_gets_its_accuracy_and_calibrated_sets() -> None:
    """With no numeric column there is no interval to calibrate, yet the held-out categorical cells
    still give ``validation_`` its accuracy and the 90 % sets their threshold (before, every set
    held every level)."""
    rng = np.random.default_rng(1)
    n = 300
    a = rng.choice(["p", "q", "r", "s"], n)
    b = np.where(rng.random(n) < 0.85, a, rng.choice(["p", "q", "r", "s"], n))
    gappy = pd.DataFrame({"a": a, "b": b}).mask(rng.random((n, 2)) < 0.2)
    imputer = TabularImputer(**FAST, random_state=0).fit(gappy)
    assert imputer.validation_["accuracy"] > 0.6 and np.isfinite(imputer.level_set_threshold_)
    sets = imputer.impute(gappy, n_samples=20, seed=0).prediction_set("b").to_numpy()[gappy["b"].isna().to_numpy()]
    assert sets.sum(axis=1).mean() < 3


def test_a_categorical_column_keeps_the_guess_unless_the_model_gains_more_than_chance() -> None:
    """The model's most drawn level must beat the guess's on held-out cells by more than chance,
    as numbers must: the mode of a few dozen draws is noisy, the guess's level is not (a gain of
    one cell in 40 handed a column to the model)."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.standard_normal(60), "side": rng.choice(["up", "down"], 60)})
    imputer = TabularImputer(**FAST).fit(frame)
    codes = imputer.encoder_.codes(frame)
    truth = imputer.scaler_.transform(imputer.encoder_.encode(codes))[:40, :, None]  # (cells, channels, 1)
    wrong = imputer.scaler_.transform(imputer.encoder_.encode(np.c_[codes[:40, 0], 1 - codes[:40, 1]]))[:, :, None]
    target = np.ones(truth.shape, dtype=bool)
    side = imputer.encoder_.channel_column == 1

    def model_keeps_side(model_right: np.ndarray, guess_right: np.ndarray) -> bool:
        draws = np.where(model_right[:, None, None], truth, wrong)[None].repeat(3, axis=0)
        guess = np.where(guess_right[:, None, None], truth, wrong)
        return not imputer._guess_wins(draws, guess, truth, target)[side].any()

    both = np.arange(40) < 20
    # 23 right against 22: the model wins three cells and loses two, which is chance
    assert not model_keeps_side(both | np.isin(np.arange(40), [20, 21, 22]), both | np.isin(np.arange(40), [23, 24]))
    assert not model_keeps_side(both, both)  # a tie keeps the guess
    assert model_keeps_side(np.arange(40) < 32, both)
