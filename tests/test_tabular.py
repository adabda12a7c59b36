"""TabularImputer: dtypes and levels round-trip, observed cells untouched, better than mean/mode,
a diffusion model that learns what its linear guess cannot, save/load, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from diffimpute import TabularImputer, load
from diffimpute.data.table import MAX_LEVELS

TINY_TABLE = {"hidden": 32, "n_layers": 1, "diffusion_steps": 20, "max_epochs": 60, "batch_size": 32,
              "n_samples": 8, "sampling_steps": 5, "time_budget": None, "device": "cpu", "verbose": False}


def mixed(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Columns that explain each other: a latent ``z`` drives every column, numeric and categorical."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    return pd.DataFrame({
        "x": 2.0 * z + 0.1 * rng.standard_normal(n),
        "count": pd.array(np.round(5 + 2 * z).clip(0).astype(int), dtype="Int64"),
        "whole": np.round(10 + 3 * z).astype(float),  # integers as a CSV reads them
        "size": pd.Categorical(np.where(z > 0.5, "large", np.where(z < -0.5, "small", "medium")),
                               categories=["small", "medium", "large", "unused"]),
        "side": pd.Series(np.where(z > 0, "up", "down"), dtype=object),
        "flag": z > 0,
    })


def with_holes(frame: pd.DataFrame, rate: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    hidden = np.random.default_rng(seed).random(frame.shape) < rate
    gappy = frame.copy()
    for j, name in enumerate(frame.columns):
        column = gappy[name].astype(object) if frame[name].dtype == bool else gappy[name]
        column = column.mask(hidden[:, j])
        gappy[name] = column
    return gappy, hidden


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    truth = mixed()
    gappy, hidden = with_holes(truth, 0.25, seed=1)
    return truth, gappy, hidden


@pytest.fixture(scope="module")
def fitted(table) -> TabularImputer:
    return TabularImputer(**TINY_TABLE).fit(table[1])


def test_dtypes_levels_and_observed_cells_round_trip(fitted, table) -> None:
    _, gappy, _ = table
    out = fitted.transform(gappy)
    assert list(out.columns) == list(gappy.columns) and out.index.equals(gappy.index)
    assert out.dtypes.tolist() == gappy.dtypes.tolist()
    assert list(out["size"].cat.categories) == ["small", "medium", "large", "unused"]
    assert not out.isna().any().any()
    for name in gappy:
        observed = gappy[name].notna()
        pd.testing.assert_series_equal(out[name][observed], gappy[name][observed], check_exact=True)
    assert set(out["side"]) <= {"up", "down"} and set(out["flag"]) <= {True, False}
    assert (out["whole"] == np.round(out["whole"])).all()  # whole numbers stay whole
    assert gappy["x"].isna().any()  # the input was not filled in place


def test_samples_keep_observed_values_and_levels_are_valid(fitted, table) -> None:
    _, gappy, _ = table
    result = fitted.impute(gappy, n_samples=6)
    codes = fitted.encoder_.codes(gappy)
    observed = ~np.isnan(codes)
    assert result.samples.shape == (6, *gappy.shape)
    assert np.array_equal(result.samples[:, observed], np.broadcast_to(codes[observed], (6, observed.sum())))
    size = list(gappy.columns).index("size")
    assert set(np.unique(result.samples[:, :, size])) <= {0.0, 1.0, 2.0}  # 'unused' was never observed
    probabilities = result.probabilities("size")
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    given = gappy["size"].notna().to_numpy()
    assert (probabilities.to_numpy()[given].max(axis=1) == 1.0).all()
    lower, upper = result.interval(0.1)
    assert (lower["x"] <= upper["x"]).all()
    assert result.numeric_samples().shape == (6, len(gappy), len(result.numeric_columns))


def test_beats_mean_and_mode_on_dependent_columns(fitted, table) -> None:
    truth, gappy, hidden = table
    out = fitted.transform(gappy)
    x_hidden = hidden[:, 0]
    model_error = np.abs(out["x"] - truth["x"])[x_hidden].mean()
    mean_error = np.abs(gappy["x"].mean() - truth["x"])[x_hidden].mean()
    assert model_error < 0.5 * mean_error
    side_hidden = hidden[:, 4]
    accuracy = (out["side"] == truth["side"])[side_hidden].mean()
    mode_accuracy = (gappy["side"].mode()[0] == truth["side"])[side_hidden].mean()
    assert accuracy > mode_accuracy + 0.2


def test_diffusion_learns_what_the_linear_guess_cannot() -> None:
    """``y = |x|`` is uncorrelated with ``x``: the Gaussian guess of ``y`` is its mean, but the
    trained model should read ``y`` off ``x``."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(800)
    truth = pd.DataFrame({"x": x, "y": np.abs(x) + 0.05 * rng.standard_normal(800)})
    hidden = np.zeros(truth.shape, dtype=bool)
    hidden[rng.random(800) < 0.3, 1] = True
    gappy = truth.mask(hidden)
    imputer = TabularImputer(**{**TINY_TABLE, "hidden": 64, "n_layers": 2, "max_epochs": 150},
                             guess="gaussian").fit(gappy)  # what the linear guess misses
    result = imputer.impute(gappy, n_samples=8)
    assert imputer.refines_
    model_error = np.abs(result.median()["y"] - truth["y"])[hidden[:, 1]].mean()
    guess_error = np.abs(result.guess["y"] - truth["y"])[hidden[:, 1]].mean()
    assert model_error < 0.7 * guess_error


def test_same_seed_same_draws_and_save_load_round_trip(fitted, table, tmp_path) -> None:
    _, gappy, _ = table
    first = fitted.impute(gappy, n_samples=4, seed=7)
    again = fitted.impute(gappy, n_samples=4, seed=7)
    assert np.array_equal(first.samples, again.samples)
    path = tmp_path / "table.dfi"
    fitted.save(path)
    loaded = load(path)
    assert isinstance(loaded, TabularImputer)
    assert np.array_equal(loaded.impute(gappy, n_samples=4, seed=7).samples, first.samples)
    assert loaded.get_params() == fitted.get_params()


def test_numeric_arrays_come_back_as_arrays() -> None:
    truth = mixed()[["x", "whole"]].to_numpy()
    gappy = truth.copy()
    gappy[::7, 0] = np.nan
    out = TabularImputer(**{**TINY_TABLE, "max_epochs": 2}).fit(gappy).transform(gappy)
    assert isinstance(out, np.ndarray) and out.shape == truth.shape
    assert np.array_equal(out[~np.isnan(gappy)], gappy[~np.isnan(gappy)])


def test_all_missing_rows_and_constant_columns_are_handled(table) -> None:
    _, gappy, _ = table
    gappy = gappy.copy()
    gappy["constant"] = 4.0
    gappy.iloc[:3] = None
    gappy["constant"] = gappy["constant"].astype(float)
    gappy.loc[gappy.index[5], "constant"] = np.nan
    out = TabularImputer(**{**TINY_TABLE, "max_epochs": 2}).fit(gappy).transform(gappy)
    assert not out.iloc[:3].isna().any().any()
    assert set(out["size"].iloc[:3]) <= {"small", "medium", "large"}
    assert out.loc[out.index[5], "constant"] == 4.0


def test_unfitted_imputer_raises() -> None:
    with pytest.raises(NotFittedError):
        TabularImputer().transform(mixed())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(id=[f"row{i}" for i in range(len(f))]), f"at most {MAX_LEVELS} levels"),
        (lambda f: f.assign(x=np.nan), "entirely missing"),
        (lambda f: f.head(5), "at least 8"),
    ],
)
def test_bad_tables_at_fit_are_clear_errors(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        TabularImputer(**TINY_TABLE).fit(change(mixed()))


def test_bad_tables_at_transform_are_clear_errors(fitted, table) -> None:
    _, gappy, _ = table
    unseen = gappy.copy()
    unseen["side"] = unseen["side"].astype(object)
    unseen.loc[unseen.index[0], "side"] = "sideways"
    with pytest.raises(ValueError, match="not seen at fit.*sideways"):
        fitted.transform(unseen)
    with pytest.raises(ValueError, match="columns do not match"):
        fitted.transform(gappy.drop(columns=["x"]))
    with pytest.raises(ValueError, match="was numeric at fit"):
        fitted.transform(gappy.assign(x="text"))


@pytest.mark.parametrize(
    ("params", "message"),
    [({"guess": "kalman"}, "guess"), ({"denoiser": "unet"}, "denoiser"), ({"guess_ridge": 2.0}, "guess_ridge"),
     ({"random_state": -1}, "random_state"), ({"hidden": 0}, "hidden"), ({"tree_rounds": 0}, "tree_rounds")],
)
def test_bad_parameters_are_clear_errors(params, message) -> None:
    with pytest.raises(ValueError, match=message):
        TabularImputer(**{**TINY_TABLE, **params}).fit(mixed())


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_are_refused_at_fit_and_at_transform(fitted, table, value) -> None:
    _, gappy, _ = table
    bad = gappy.copy()
    bad.loc[bad.index[3], "x"] = value
    bad.loc[bad.index[5], "whole"] = value
    message = r"infinite values in columns \['x', 'whole'\].*replace\(\[np.inf, -np.inf\], np.nan\)"
    with pytest.raises(ValueError, match=message):
        TabularImputer(**TINY_TABLE).fit(bad)
    with pytest.raises(ValueError, match=message):
        fitted.transform(bad)


def test_columns_missing_from_the_whole_table_get_wide_intervals(fitted, table) -> None:
    """A column observed at fit but not at all in the data imputed: its cells are read off the other
    columns, and its draws spread at least as widely as the column did at fit."""
    truth, gappy, _ = table
    with pytest.warns(UserWarning, match=r"columns \['x', 'side'\] have no observed value in X"):
        result = fitted.impute(gappy.assign(x=np.nan, side=None), n_samples=8)
    median = result.median()
    x = result.samples[:, :, 0]
    assert (x.std(axis=0) >= 0.999 * gappy["x"].std(ddof=0)).all()
    mean_error = np.abs(gappy["x"].mean() - truth["x"]).mean()
    assert np.abs(median["x"] - truth["x"]).mean() < 0.5 * mean_error  # read off the other columns
    assert set(median["side"]) <= {"up", "down"}
    with pytest.raises(ValueError, match="X has no observed value"):
        fitted.transform(pd.DataFrame({name: [None] * 4 for name in gappy}))


def test_columns_of_large_numbers_are_not_decoded_as_levels(monkeypatch) -> None:
    """Choosing between the model and its guess per column takes the most frequent draw of
    categorical columns only: numeric columns near 10^6 and 10^9 once allocated a counter per
    value up to theirs."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal(120)
    frame = pd.DataFrame({"near_million": np.round(1_000_000 + 300 * z).clip(999_000, 1_001_000),
                          "near_billion": np.round(1e9 + 1e6 * z),
                          "side": np.where(z > 0, "up", "down")})
    gappy, _ = with_holes(frame, 0.2, seed=6)
    compared, guess_wins = [], TabularImputer._guess_wins

    def counted(self, *cells):
        compared.append(cells)
        return guess_wins(self, *cells)

    # whatever the tiny model learns, go on to compare it with its guess column by column
    monkeypatch.setattr(TabularImputer, "_beats_guess", lambda self, held, device: True)
    monkeypatch.setattr(TabularImputer, "_guess_wins", counted)
    out = TabularImputer(**{**TINY_TABLE, "max_epochs": 2}).fit(gappy).transform(gappy)
    assert compared and not out.isna().any().any()
    assert out["near_million"].between(990_000, 1_010_000).all()


def test_no_held_out_cells_turns_selection_and_calibration_off(table) -> None:
    _, gappy, _ = table
    imputer = TabularImputer(**{**TINY_TABLE, "max_epochs": 2, "validation_fraction": 0}).fit(gappy)
    assert imputer.validation_ == {} and imputer.refines_
    assert not imputer.transform(gappy).isna().any().any()


def test_transformer_denoiser_runs_through_the_same_engine(table) -> None:
    _, gappy, _ = table
    imputer = TabularImputer(**{**TINY_TABLE, "denoiser": "transformer", "channels": 8, "n_heads": 2,
                                "max_epochs": 2}).fit(gappy)
    assert not imputer.transform(gappy).isna().any().any()
    from diffimpute.nn.csdi import CSDIDenoiser

    assert isinstance(imputer.model_, CSDIDenoiser)
    imputer.refines_, imputer.guess_channels_[:] = True, False  # sample through the transformer, not the guess
    result = imputer.impute(gappy, n_samples=3)
    assert np.isfinite(result.numeric_samples()).all()
    assert result.samples[:, result.missing].std(axis=0).max() > 0  # draws differ: the network was sampled


# ------------------------------------------------------------------ evaluation, baselines, CLI


def test_table_evaluation_scores_numeric_and_categorical_cells() -> None:
    from diffimpute.tasks.evaluate import evaluate_table_methods, hide_table_cells

    truth = mixed()
    for mask in ("mcar:0.3", "mar:0.3", "mnar:0.3"):
        gappy, hidden = hide_table_cells(truth, mask, seed=0)
        assert hidden.any() and gappy.isna().to_numpy()[hidden].all()
        assert gappy.dtypes.tolist()[:5] == truth.dtypes.tolist()[:5]  # the bool column becomes object with gaps
    table, outputs = evaluate_table_methods(truth, "mcar:0.3", ["diffusion", "mean", "knn"], n_samples=8,
                                            diffusion_params={**TINY_TABLE, "max_epochs": 20})
    assert list(table.index) == ["diffusion", "mean", "knn"]
    assert 0 <= table.loc["diffusion", "coverage_90%"] <= 1 and np.isnan(table.loc["mean", "coverage_90%"])
    assert table.loc["diffusion", "mae"] < table.loc["mean", "mae"]
    assert table.loc["diffusion", "accuracy"] > table.loc["mean", "accuracy"]
    # the mean baseline's categorical cells take the column's mode
    gappy, hidden = hide_table_cells(truth, "mcar:0.3", seed=0)
    filled = outputs["mean"]
    assert (filled["side"][hidden[:, 4]] == gappy["side"].mode()[0]).all()
    with pytest.raises(ValueError, match="table methods"):
        evaluate_table_methods(truth, "mcar:0.3", ["linear"])


def test_cli_fits_imputes_and_evaluates_a_mixed_csv(tmp_path) -> None:
    from click.testing import CliRunner

    from diffimpute.cli.main import cli

    gappy, _ = with_holes(mixed(120), 0.2, seed=4)
    data = tmp_path / "table.csv"
    gappy.to_csv(data, index=False)
    model, out = tmp_path / "table.dfi", tmp_path / "filled.csv"
    runner = CliRunner()
    fitted = runner.invoke(cli, ["fit", str(data), "-o", str(model), "--epochs", "3", "--quiet"])
    assert fitted.exit_code == 0, fitted.output
    assert isinstance(load(model), TabularImputer)  # auto: text columns make it a table
    imputed = runner.invoke(cli, ["impute", str(model), str(data), "-o", str(out), "--quantiles", "0.05,0.95",
                                  "--n-samples", "4", "--quiet"])
    assert imputed.exit_code == 0, imputed.output
    filled = pd.read_csv(out)
    assert list(filled.columns[:gappy.shape[1]]) == list(gappy.columns)  # and no column of row numbers
    assert not filled[list(gappy.columns)].isna().any().any()
    assert set(filled["side"]) <= {"up", "down"} and "x_q0.05" in filled and "side_q0.05" not in filled
    scored = runner.invoke(cli, ["evaluate", str(data), "--mask", "mcar:0.2", "--methods", "diffusion,mean",
                                 "--epochs", "3", "--n-samples", "4", "--quiet"])
    assert scored.exit_code == 0, scored.output
    assert "accuracy" in scored.output and "diffusion" in scored.output
    wrong = runner.invoke(cli, ["fit", str(data), "-o", str(model), "--window", "8"])
    assert wrong.exit_code == 2 and "time series" in wrong.output


def test_mixed_type_text_and_single_level_columns_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "mixed": pd.Series([1, "x", 2.5] * 20, dtype=object),
                          "one": ["k"] * 60, "s": pd.Series(["p", "q"] * 30, dtype="string")})
    frame.loc[::5, "a"] = np.nan
    frame.loc[::7, "mixed"] = None
    frame.loc[::6, "one"] = None
    frame.loc[::9, "s"] = pd.NA
    imputer = TabularImputer(**{**TINY_TABLE, "max_epochs": 2}).fit(frame)
    imputer.save(tmp_path / "mixed.dfi")
    out = load(tmp_path / "mixed.dfi").transform(frame)
    assert out.dtypes.tolist() == frame.dtypes.tolist() and not out.isna().any().any()
    assert set(out["mixed"]) <= {1, "x", 2.5} and set(out["one"]) == {"k"} and set(out["s"]) <= {"p", "q"}


def curved(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """``bend`` is a parabola of ``x``, uncorrelated with it: linear in no column, easy for trees."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    noise = rng.standard_normal(n)
    return pd.DataFrame({"x": x, "bend": x**2 + 0.1 * rng.standard_normal(n), "noise": noise,
                         "near": x + 0.3 * noise})


def test_tree_guess_runs_the_fitted_trees_exactly() -> None:
    """The trees copied into tensors give scikit-learn's own predictions, NaN routing included."""
    from sklearn.ensemble import ExtraTreesRegressor

    from diffimpute.nn import tree_guess

    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((300, 3)).astype(np.float32)
    inputs[rng.random(inputs.shape) < 0.3] = np.nan
    label = np.nan_to_num(inputs[:, 1]) ** 2 - np.nan_to_num(inputs[:, 2])
    model = ExtraTreesRegressor(20, **tree_guess._FOREST, random_state=0).fit(inputs[:, 1:], label)
    used, offset, trees, roots = np.array([1, 2]), 0, [], []
    for member in model.estimators_:
        trees.append(tree_guess._node_arrays(member.tree_, offset, used, member.tree_.value[:, 0, 0] / 20))
        roots.append(offset)
        offset += len(trees[-1]["feature"])
    guess = tree_guess.TreeGuess(3)
    guess._set_trees(trees, roots, [0] * len(roots), [0] * len(roots), np.zeros((1, 3)))
    query = rng.standard_normal((500, 3)).astype(np.float32)
    query[rng.random(query.shape) < 0.4] = np.nan
    ours = guess.predict_rows(torch.from_numpy(query))[:, 0].numpy()
    np.testing.assert_allclose(ours, model.predict(query[:, 1:]), atol=1e-5)


def test_auto_guess_takes_trees_where_they_beat_the_gaussian_guess(tmp_path) -> None:
    """On held-out cells of a parabola the tree guess wins and is chosen for that column; the
    chosen guess, trees included, comes back from a saved file bit for bit."""
    truth = curved()
    gappy, _ = with_holes(truth, 0.3, seed=2)
    imputer = TabularImputer(**{**TINY_TABLE, "max_epochs": 5}, guess="auto").fit(gappy)
    choice = imputer.model_.guess
    assert float(choice.tree_weight[1]) == 1.0  # bend
    windows = imputer._windows(imputer.scaler_.transform(imputer.encoder_.encode(imputer.encoder_.codes(truth))))
    hide_bend = windows.observed.clone()
    hide_bend[:, 1] = False
    bend = windows.values[:, 1, 0]
    gaussian, trees = choice.candidates(windows.values, hide_bend, windows.positions)
    assert (trees[:, 1, 0] - bend).abs().mean() < 0.5 * (gaussian[:, 1, 0] - bend).abs().mean()
    path = tmp_path / "trees.dfi"
    imputer.save(path)
    loaded = load(path)
    assert torch.equal(loaded.model_.guess.tree_weight, choice.tree_weight)
    assert np.array_equal(loaded.impute(gappy, n_samples=4, seed=3).samples,
                          imputer.impute(gappy, n_samples=4, seed=3).samples)


def test_tree_guess_is_cross_fitted() -> None:
    """A training row's key takes trees that never saw it: on rows of pure noise the in-fold
    trees would recall each row's label, the out-of-fold ones cannot; key 0 averages the folds."""
    from diffimpute.nn.tree_guess import TreeGuess

    rng = np.random.default_rng(0)
    rows = torch.from_numpy(rng.standard_normal((400, 4)).astype(np.float32))
    given = torch.ones_like(rows, dtype=torch.bool)
    folds = np.arange(400) % 4 + 1
    guess = TreeGuess(4).fit(rows.double().numpy(), rows.double().numpy(), np.arange(4), 0, folds)
    assert len(guess.baseline) == 4 and set(guess.tree_fold.tolist()) == {0, 1, 2, 3}
    hide_first = given.clone()
    hide_first[:, 0] = False
    values, positions = rows.unsqueeze(-1), torch.from_numpy(folds).float().unsqueeze(-1)

    def error(keys: torch.Tensor) -> float:
        return float((guess(values, hide_first.unsqueeze(-1), keys)[:, 0, 0] - rows[:, 0]).abs().mean())

    in_fold = positions % 4 + 1  # every row guessed by a fold that was fitted on it
    assert error(positions) > error(in_fold) + 0.05
    assert error(positions) > 0.75  # noise: no better than its mean (about 0.8) out of fold
    manual = torch.stack([guess(values, hide_first.unsqueeze(-1), torch.full_like(positions, k))
                          for k in range(1, 5)]).mean(0)
    torch.testing.assert_close(guess(values, hide_first.unsqueeze(-1), torch.zeros_like(positions)), manual)


def test_training_is_a_step_budget_in_proportion_to_the_rows() -> None:
    """Training length is optimiser steps (``_STEPS_PER_ROW`` per training row, at least
    ``_MIN_STEPS``), not seconds, so a seed gives the same model on any machine; a time budget
    only caps it."""
    from diffimpute.tasks import tabular

    gappy, _ = with_holes(mixed(400), 0.25, seed=1)
    imputer = TabularImputer(**{**TINY_TABLE, "max_epochs": 10_000, "patience": 10_000, "time_budget": 600},
                             guess="gaussian").fit(gappy)
    rows = len(gappy)  # a few rows have no cell left to train on once cells are held out
    assert tabular._MIN_STEPS < 0.9 * tabular._STEPS_PER_ROW * rows <= imputer.train_steps_
    assert imputer.train_steps_ <= tabular._STEPS_PER_ROW * rows
    assert imputer.history_.steps == imputer.train_steps_ and imputer.history_.stopped == "max_steps"


def test_a_model_saved_before_the_tree_rounds_loads_and_imputes_as_its_one_round(fitted, table, tmp_path) -> None:
    """Files saved before the MissForest-style rounds hold one set of trees under ``guess.trees.``;
    they failed to load ('Missing key(s) in state_dict: guess.rounds.0...')."""
    from diffimpute.engine.checkpoint import load_checkpoint, save_checkpoint

    fitted.save(tmp_path / "now.safetensors")
    tensors, metadata = load_checkpoint(tmp_path / "now.safetensors")
    old_layout = {key.replace(".guess.rounds.0.", ".guess.trees."): value for key, value in tensors.items()
                  if ".guess.rounds.1." not in key}
    assert any(".guess.trees." in key for key in old_layout)
    save_checkpoint(tmp_path / "old.safetensors", old_layout, metadata)
    old = TabularImputer.load(tmp_path / "old.safetensors")
    one_round = TabularImputer.load(tmp_path / "now.safetensors")
    del one_round.model_.guess.rounds[1:]
    assert len(old.model_.guess.rounds) == 1
    gappy = table[1]
    pd.testing.assert_frame_equal(old.transform(gappy), one_round.transform(gappy))
