"""The LSSDM setting (guess="latent"): the prior's coarse estimate is a good first guess, it never
sees training targets, both stages survive save/load, any shape works, seeds reproduce."""

from __future__ import annotations

import io
import logging
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from diffimpute import DiffusionImputer, LatentDiffusionImputer
from diffimpute._progress import _LoggedStage
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.guess import LatentGuess, interpolate_gaps
from diffimpute.nn.latent_prior import LatentPrior
from tests.conftest import TINY, structured, with_gaps
from tests.test_refinement import condition_in_training

FAST = {**TINY, "guess": "latent", "max_epochs": 10, "prior_epochs": 40, "prior_hidden": 32}


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values).view(np.uint8)


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> DiffusionImputer:
    return DiffusionImputer(**FAST).fit(frame)


def test_interpolation_matches_numpy_and_keeps_observed_cells() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4, 20))
    mask = rng.random(values.shape) < 0.4
    mask[0, 0] = False  # a feature with nothing observed becomes 0
    filled = interpolate_gaps(torch.from_numpy(values), torch.from_numpy(mask)).numpy()
    for b, k in np.ndindex(3, 4):
        steps = np.flatnonzero(mask[b, k])
        expected = np.zeros(20) if len(steps) == 0 else np.interp(np.arange(20), steps, values[b, k, steps])
        np.testing.assert_allclose(filled[b, k], expected, atol=1e-12)
    assert np.array_equal(filled[mask], values[mask])


def test_interpolation_follows_irregular_time_stamps() -> None:
    values = torch.tensor([[[0.0, 0.0, 3.0]]])
    mask = torch.tensor([[[True, False, True]]])
    positions = torch.tensor([[0.0, 2.0, 3.0]])  # the middle step lies 2/3 of the way along
    assert interpolate_gaps(values, mask, positions)[0, 0, 1].item() == pytest.approx(2.0)


def test_latent_guess_beats_mean_imputation_on_structured_data(model: DiffusionImputer) -> None:
    truth = structured(seed=3)
    gappy, hidden = with_gaps(truth, 0.4, seed=4)
    guess = model.impute(gappy, n_samples=2).guess
    mean_error = np.abs(np.nanmean(gappy, axis=0) - truth)[hidden].mean()
    assert np.abs(guess - truth)[hidden].mean() < 0.5 * mean_error


def test_latent_guess_never_sees_target_values(monkeypatch) -> None:
    """Two training batches that differ only in the values of their target cells get the same
    prior estimate and the same conditioning."""
    torch.manual_seed(0)
    denoiser = CSDIDenoiser(3, channels=8, n_layers=1, n_heads=2, guess=LatentGuess(LatentPrior(3, 2, hidden=8)))
    values = torch.randn(2, 3, 10)
    observed = torch.rand(2, 3, 10) < 0.9
    target = observed & (torch.rand(2, 3, 10) < 0.4)
    changed = torch.where(target, values + 100.0, values)
    a = condition_in_training(denoiser, values, observed, target, monkeypatch)
    b = condition_in_training(denoiser, changed, observed, target, monkeypatch)
    assert target.any() and torch.equal(values != changed, target)
    assert torch.equal(a.guess, b.guess) and torch.equal(a.input_bias, b.input_bias)
    assert all(torch.equal(x, y) for x, y in zip(a.side, b.side))


def test_observed_cells_are_bit_identical_in_samples_median_and_guess(model: DiffusionImputer) -> None:
    values, _ = with_gaps(structured(), 0.3, seed=5)
    index = pd.date_range("2024-02-01", periods=len(values), freq="h")
    frame = pd.DataFrame(
        {"a": values[:, 0], "b": pd.array(np.round(values[:, 1] * 10), dtype="Int64"), "c": values[:, 2].astype(np.float32)},
        index=index,
    )
    result = model.impute(frame, n_samples=3)
    for out in (result.median(), result.guess):
        assert out.dtypes.tolist() == frame.dtypes.tolist() and out.index.equals(frame.index)
        assert not out.isna().any().any()
        for column in frame:
            observed = frame[column].notna()
            pd.testing.assert_series_equal(out[column][observed], frame[column][observed], check_exact=True)
    given = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    observed = ~np.isnan(given)
    for draw in result.samples:
        assert np.array_equal(_bits(draw[0][observed]), _bits(given[observed]))


def test_save_load_round_trips_both_stages(model: DiffusionImputer, frame: pd.DataFrame, tmp_path) -> None:
    path = tmp_path / "lssdm.safetensors"
    model.save(path)
    loaded = DiffusionImputer.load(path)
    assert loaded.get_params() == model.get_params()
    for name, tensor in model.model_.guess.prior.state_dict().items():
        assert torch.equal(loaded.model_.guess.prior.state_dict()[name], tensor)
    before, after = model.impute(frame, n_samples=4, seed=7), loaded.impute(frame, n_samples=4, seed=7)
    assert np.array_equal(before.samples, after.samples)
    pd.testing.assert_frame_equal(before.guess, after.guess, check_exact=True)
    pd.testing.assert_frame_equal(model.encode(frame), loaded.encode(frame), check_exact=True)


def test_encode_gives_one_latent_code_per_time_step(model: DiffusionImputer, frame: pd.DataFrame) -> None:
    codes = model.encode(frame)
    assert codes.index.equals(frame.index) and list(codes.columns) == ["z0", "z1"]
    assert np.isfinite(codes.to_numpy()).all()
    panel = np.stack([frame.to_numpy()[:40], frame.to_numpy()[40:80]])
    assert model.encode(panel).shape == (2, 40, 2)
    with pytest.raises(ValueError, match="encode needs guess='latent'"):
        DiffusionImputer(**{**TINY, "max_epochs": 1}).fit(frame).encode(frame)


@pytest.mark.parametrize(("n_features", "window", "n_time"), [(1, 8, 30), (5, 13, 41), (12, 32, 64)])
def test_any_feature_count_and_window_length(n_features: int, window: int, n_time: int) -> None:
    values, _ = with_gaps(structured(n_time, n_features, seed=n_features), 0.3, seed=n_features)
    params = {**FAST, "window": window, "max_epochs": 1, "prior_epochs": 1, "prior_hidden": 8, "n_samples": 2}
    imputer = DiffusionImputer(**params).fit(values)
    result = imputer.impute(values)
    assert result.samples.shape == (2, 1, n_time, n_features)
    assert result.guess.shape == values.shape and not np.isnan(result.guess).any()
    assert imputer.encode(values).shape[:1] == (n_time,)


def test_seeded_runs_are_identical_and_seeds_matter(frame: pd.DataFrame) -> None:
    params = {**FAST, "max_epochs": 2, "prior_epochs": 2, "prior_hidden": 8}
    first = DiffusionImputer(**params, random_state=3).fit(frame).impute(frame)
    second = DiffusionImputer(**params, random_state=3).fit(frame).impute(frame)
    other = DiffusionImputer(**params, random_state=4).fit(frame).impute(frame)
    assert np.array_equal(first.samples, second.samples)
    pd.testing.assert_frame_equal(first.guess, second.guess, check_exact=True)
    assert not np.array_equal(first.samples, other.samples)


def test_prior_epochs_are_a_step_budget_that_the_clock_only_caps(model: DiffusionImputer) -> None:
    """With a time budget set, the prior's learning rate must drop by its epochs, not by the clock."""
    assert model.time_budget is not None and model.prior_history_.stopped == "max_steps"
    assert len(model.prior_history_.train_loss) == FAST["prior_epochs"]


def test_lssdm_name_builds_the_latent_setting_with_shared_parameters() -> None:
    imputer = LatentDiffusionImputer(channels=8)
    assert isinstance(imputer, DiffusionImputer)
    assert imputer.guess == "latent" and imputer.channels == 8
    assert set(imputer.get_params()) == set(DiffusionImputer().get_params())


def test_feature_graph_options_and_bad_parameters(frame: pd.DataFrame, tmp_path) -> None:
    params = {**FAST, "max_epochs": 1, "prior_epochs": 1, "prior_hidden": 8}
    ring = np.ones((3, 3)) - np.eye(3)
    fitted = DiffusionImputer(**params, adjacency=ring).fit(frame)
    fitted.save(tmp_path / "graph.safetensors")  # an array parameter still saves as JSON
    assert np.array_equal(DiffusionImputer.load(tmp_path / "graph.safetensors").adjacency, ring)
    assert isinstance(fitted.adjacency, np.ndarray)
    DiffusionImputer(**params, adjacency="correlation").fit(frame)
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        DiffusionImputer(**params, adjacency=np.ones((2, 2))).fit(frame)
    with pytest.raises(ValueError, match="guess must be one of"):
        DiffusionImputer(**{**params, "guess": "joint"}).fit(frame)
    with pytest.raises(ValueError, match="prior_kernel must be odd"):
        DiffusionImputer(**params, prior_kernel=4).fit(frame)


def test_progress_names_no_validation_figure_where_there_is_none(frame: pd.DataFrame, monkeypatch, caplog) -> None:
    """The prior trains without held-out cells: its progress shows no "best nan" or "val nan";
    the refiner's, checked on held-out cells, shows its figures."""
    shown: list[tuple[str, dict]] = []
    original = _LoggedStage.set_postfix

    def recording(self, **values) -> None:
        shown.append((self.desc, values))
        original(self, **values)

    monkeypatch.setattr(_LoggedStage, "set_postfix", recording)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: one log line per stage, as in CI
    params = {**FAST, "max_epochs": 2, "prior_epochs": 2, "prior_hidden": 8, "verbose": True}
    with caplog.at_level(logging.INFO, logger="diffimpute"):
        DiffusionImputer(**params).fit(frame)
    assert {desc for desc, _ in shown} == {"training prior", "training"}
    assert all("nan" not in value for _, values in shown for value in values.values())
    assert not any("best" in values or "val" in values for desc, values in shown if desc == "training prior")
    assert shown[-1] == ("training", {"stopped": "max_epochs", "best": shown[-1][1]["best"]})
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("training")]
    assert len(lines) == 2 and "nan" not in " ".join(lines)
