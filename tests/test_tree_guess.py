"""TreeGuess's categorical columns: one forest classifier per column, its trees copied exactly,
its level probabilities on the column's channels' scaled 0 and 1; MissForest's rounds; boosted
trees from older files."""

from __future__ import annotations

import numpy as np
import torch

from diffimpute.nn import tree_guess


def _levels_table(n: int = 400, seed: int = 0):
    """Two numeric channels, a three-level column (channels 2-4) and a two-level one (5-6), the
    levels set by thresholds on the numbers; the one-hot channels shifted and scaled as the
    scaler leaves them. Returns inputs, labels, channel_column, categorical, shift, scale, codes."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    three = np.digitize(x + 0.3 * rng.standard_normal(n), [-0.5, 0.5])
    two = (y > 0).astype(int) ^ (rng.random(n) < 0.1)
    hot = np.column_stack([three[:, None] == np.arange(3), two[:, None] == np.arange(2)]).astype(np.float64)
    shift, scale = hot.mean(axis=0), hot.std(axis=0)
    labels = np.column_stack([x, y, (hot - shift) / scale])
    inputs = labels.copy()
    inputs[rng.random(inputs.shape) < 0.2] = np.nan
    channel_column = np.array([0, 1, 2, 2, 2, 3, 3])
    return inputs, labels, channel_column, channel_column >= 2, shift, scale, (three, two)


def test_levels_are_a_classifiers_probabilities_on_the_channels_scale() -> None:
    """A row keyed to fold 1 gets the probabilities of scikit-learn's forest fitted on fold 2's
    rows, for three levels and two."""
    from sklearn.ensemble import ExtraTreesClassifier

    inputs, labels, channel_column, categorical, shift, scale, codes = _levels_table()
    folds = np.arange(len(inputs)) % 2 + 1
    guess = tree_guess.TreeGuess(7).fit(inputs, labels, channel_column, 0, folds, categorical=categorical)
    query = inputs.astype(np.float32)
    keys = torch.ones(len(query), dtype=torch.int64)
    shares = (guess.predict_rows(torch.from_numpy(query), keys)[:, 2:].numpy() * scale) + shift
    train = folds == 2
    columns = ((slice(0, 3), [0, 1, 5, 6], codes[0]), (slice(3, 5), [0, 1, 2, 3, 4], codes[1]))
    for channels, used, level in columns:
        model = ExtraTreesClassifier(tree_guess.FOREST_TREES // 2, **tree_guess._FOREST, random_state=1)
        model.fit(inputs[train][:, used], level[train])
        np.testing.assert_allclose(shares[:, channels], model.predict_proba(query[:, used]), atol=1e-5)


def test_a_level_missing_from_a_fold_gets_no_share() -> None:
    """A level no row of a fold's training rows holds gets probability 0 from that fold's trees,
    and the other levels still add to one."""
    inputs, labels, channel_column, categorical, shift, scale, codes = _levels_table(seed=1)
    folds = np.where(codes[0] == 2, 2, 1 + np.arange(len(inputs)) % 2)  # level 2 only in fold 2
    guess = tree_guess.TreeGuess(7).fit(inputs, labels, channel_column, 0, folds, categorical=categorical)
    shares = guess.predict_rows(torch.from_numpy(inputs), torch.full((len(inputs),), 2))
    low, high = guess.level_value[:, 2:5]
    probabilities = ((shares[:, 2:5] - low) / (high - low)).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert probabilities[:, 2].max() < 1e-6


def test_later_rounds_are_fitted_on_the_round_befores_out_of_fold_guess() -> None:
    """MissForest's iteration: round 2's fold-1 trees are scikit-learn's model fitted on the rows
    whose hidden cells hold round 1's guess by trees that never saw the row, and the guess chains
    Gaussian -> round 1 -> round 2."""
    from sklearn.ensemble import ExtraTreesRegressor

    from diffimpute.nn.guess import GaussianGuess

    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, 400)
    values = torch.from_numpy(np.column_stack([x, x**2, np.sin(2 * x)]) + 0.1 * rng.standard_normal((400, 3)))
    values = values.float()
    given = torch.from_numpy(rng.random((400, 3)) > 0.3)
    gaussian = GaussianGuess(3)
    gaussian.fit(values, given)
    choice = tree_guess.ColumnChoiceGuess(gaussian, [tree_guess.TreeGuess(3), tree_guess.TreeGuess(3)])
    folds = np.arange(400) % 2 + 1
    labels = values.double().numpy()
    choice.fit_rounds(values, given, labels, np.arange(3), 0, folds, np.zeros(3, dtype=bool))
    first, second = choice.rounds
    filled = gaussian(values.unsqueeze(-1), given.unsqueeze(-1), torch.zeros(400, 1))[..., 0]
    inputs = torch.where(given, values, first.predict_rows(filled, torch.from_numpy(folds))).numpy()
    train = folds == 2
    model = ExtraTreesRegressor(tree_guess.FOREST_TREES // 2, **tree_guess._FOREST, random_state=16 + 1)
    model.fit(inputs[train][:, 1:], labels[train, 0])
    ours = second.predict_rows(torch.from_numpy(inputs), torch.ones(400, dtype=torch.int64))[:, 0]
    np.testing.assert_allclose(ours.numpy(), model.predict(inputs[:, 1:]), atol=1e-4)
    keys = torch.from_numpy(folds).float().unsqueeze(-1)
    chained = second(values.unsqueeze(-1), given.unsqueeze(-1), keys,
                     fill=first(values.unsqueeze(-1), given.unsqueeze(-1), keys, fill=filled.unsqueeze(-1)))
    torch.testing.assert_close(choice.candidates(values.unsqueeze(-1), given.unsqueeze(-1), keys)[1], chained)


def test_a_column_of_many_levels_on_few_rows_is_fitted_not_refused() -> None:
    """35 levels of three rows each in a fold of 105 (boosted trees' 15 % inner split held fewer
    rows than levels and raised 'test_size = 16 should be greater or equal to the number of classes')."""
    rng = np.random.default_rng(0)
    level = np.repeat(np.arange(35), 6)
    hot = (level[:, None] == np.arange(35)).astype(np.float64)
    x = level / 35 + 0.01 * rng.standard_normal(len(level))
    labels = np.column_stack([x, hot])
    channel_column = np.r_[0, np.ones(35, dtype=int)]
    folds = np.arange(len(level)) % 2 + 1
    guess = tree_guess.TreeGuess(36).fit(labels.copy(), labels, channel_column, 0, folds,
                                         categorical=channel_column == 1)
    shares = guess.predict_rows(torch.from_numpy(labels), torch.zeros(len(level), dtype=torch.int64))[:, 1:]
    assert torch.isfinite(shares).all()
    assert len(guess.roots) > 0  # trees were grown, not only level frequencies


def test_a_file_of_boosted_trees_loads_with_its_level_scores_softmaxed() -> None:
    """Files saved before the forests hold boosted trees, whose level channels sum raw scores: one
    without ``raw_level_scores`` loads with it set, so its levels are a softmax of those sums, as
    they were guessed when it was saved (a strict load failed on the missing key)."""
    inputs, labels, channel_column, categorical, shift, scale, codes = _levels_table()
    guess = tree_guess.TreeGuess(7).fit(inputs, labels, channel_column, 0, np.arange(len(inputs)) % 2 + 1,
                                        categorical=categorical)
    # as such a file holds it: no raw_level_scores, node indices as int64
    state = {k: v.long() if k in ("feature", "left", "right") else v
             for k, v in guess.state_dict().items() if k != "raw_level_scores"}
    old = tree_guess.TreeGuess(7)
    old.load_state_dict(state)
    assert bool(old.raw_level_scores) and old.feature.dtype == torch.int32
    query = torch.from_numpy(inputs.astype(np.float32))
    summed = guess.predict_rows(query)  # forest shares, on the channels' scale
    low, high = guess.level_value[:, 2:5]
    shares = (summed[:, 2:5] - low) / (high - low)
    torch.testing.assert_close(old.predict_rows(query)[:, 2:5], low + torch.softmax(shares, dim=1) * (high - low))
    torch.testing.assert_close(old.predict_rows(query)[:, :2], summed[:, :2])


def test_rows_of_mixed_folds_walked_together_and_only_the_needed_cells_match_one_by_one() -> None:
    """Rows of every fold (and of none) walk their trees in one pass, and a cell left out of
    ``needed`` skips its trees: a needed cell gets its row's baseline plus the leaves of its own
    fold's trees (all folds', averaged, for key 0), a cell not needed the baseline alone."""
    inputs, labels, channel_column, categorical, *_ = _levels_table(n=300, seed=2)
    folds = np.arange(len(inputs)) % 3 + 1
    guess = tree_guess.TreeGuess(7).fit(inputs, labels, channel_column, 0, folds, categorical=categorical)
    query = torch.from_numpy(inputs[:40].astype(np.float32))
    keys = torch.arange(40) % 4  # folds 1-3 and key 0 (all folds), mixed
    needed = torch.from_numpy(np.random.default_rng(0).random(query.shape) < 0.5)
    needed[:, 2:5] = needed[:, [2]]  # a categorical column's channels are needed together
    needed[:, 5:7] = needed[:, [5]]
    together = guess.predict_rows(query, keys, needed)
    weights = guess._fold_weights(keys, torch.float32)
    baseline = weights @ guess.baseline
    tables = guess._walk_tables(7, torch.float32)
    for i, key in enumerate(keys.tolist()):
        trees = torch.nonzero((guess.tree_fold == key - 1) | (key == 0)).squeeze(1)[None]
        sums = guess._leaf_sums(query[i:i + 1], trees, weights[i:i + 1], tables, torch.ones_like(trees, dtype=torch.bool))
        alone = guess._levels(baseline[i:i + 1] + sums)[0]
        torch.testing.assert_close(together[i][needed[i]], alone[needed[i]], rtol=0, atol=1e-6)
    numeric = ~needed[:, :2]
    torch.testing.assert_close(together[:, :2][numeric], baseline[:, :2][numeric], rtol=0, atol=0)


def test_a_row_key_past_the_folds_is_a_clear_error() -> None:
    """Key k runs fold k's trees; a key with no fold is refused by name, not an index error."""
    import pytest

    inputs, labels, channel_column, categorical, *_ = _levels_table(n=120)
    guess = tree_guess.TreeGuess(7).fit(inputs, labels, channel_column, 0, np.arange(120) % 2 + 1,
                                        categorical=categorical)
    with pytest.raises(ValueError, match="row keys must lie in 0..2"):
        guess.predict_rows(torch.from_numpy(inputs[:4]), torch.tensor([0, 1, 2, 3]))


def test_walk_tables_are_rebuilt_when_other_trees_are_loaded_or_the_dtype_changes() -> None:
    """The walk tables are cached per fitted trees: loading another fit's trees over them, or moving
    them to float64, must walk the new trees, not the cached ones."""
    inputs, labels, channel_column, categorical, *_ = _levels_table(n=200)
    folds = np.arange(200) % 2 + 1
    first = tree_guess.TreeGuess(7).fit(inputs, labels, channel_column, 0, folds, categorical=categorical)
    other = tree_guess.TreeGuess(7).fit(inputs, labels, channel_column, 5, folds, categorical=categorical)
    query = torch.from_numpy(inputs[:30].astype(np.float32))
    before = first.predict_rows(query)
    first.load_state_dict(other.state_dict())
    after = first.predict_rows(query)
    torch.testing.assert_close(after, other.predict_rows(query), rtol=0, atol=0)
    assert not torch.equal(before, after)
    torch.testing.assert_close(first.double().predict_rows(query.double()), after.double(), rtol=0, atol=1e-6)
