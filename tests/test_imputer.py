"""DiffusionImputer: same type out as in, observed cells untouched, reproducible, better than the mean."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from diffimpute import DiffusionImputer, load
from tests.conftest import TINY, structured, with_gaps


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values).view(np.uint8)


def test_frame_round_trip_keeps_index_columns_dtypes_and_observed_bits(fitted: DiffusionImputer) -> None:
    values, _ = with_gaps(structured(), 0.3, seed=5)
    index = pd.date_range("2024-02-01", periods=len(values), freq="h", name="stamp")
    frame = pd.DataFrame(
        {
            "a": values[:, 0],
            "b": pd.array(np.round(values[:, 1] * 10), dtype="Int64"),
            "c": values[:, 2].astype(np.float32),
        },
        index=index,
    )
    frame.loc[frame.index[3], "a"] = None
    frame.loc[frame.index[4], "b"] = pd.NA
    out = fitted.transform(frame)
    assert out is not frame
    assert out.index.equals(frame.index) and list(out.columns) == ["a", "b", "c"]
    assert out.dtypes.tolist() == frame.dtypes.tolist()
    assert not out.isna().any().any()
    for column in frame:
        observed = frame[column].notna()
        pd.testing.assert_series_equal(out[column][observed], frame[column][observed], check_exact=True)
    assert frame["a"].isna().sum() > 0  # the input was not modified in place


def test_numpy_arrays_and_panels_keep_their_shape(fitted: DiffusionImputer) -> None:
    values, _ = with_gaps(structured(), 0.2, seed=2)
    assert fitted.transform(values).shape == values.shape
    panel = np.stack([values[:64], values[64:128]])
    result = fitted.impute(panel, n_samples=3)
    assert result.samples.shape == (3, 2, 64, 3)
    assert result.median().shape == panel.shape
    assert np.array_equal(result.median()[~np.isnan(panel)], panel[~np.isnan(panel)])


def test_quantiles_are_ordered_and_interval_brackets_median(fitted: DiffusionImputer, frame: pd.DataFrame) -> None:
    result = fitted.impute(frame, n_samples=16)
    lower, upper = result.interval(0.2)
    median = result.median()
    assert (lower <= median).all().all() and (median <= upper).all().all()
    q = [result.quantile(level).to_numpy() for level in (0.1, 0.3, 0.7, 0.9)]
    assert all(np.all(a <= b) for a, b in zip(q, q[1:]))
    assert (upper - lower).to_numpy()[result.missing[0]].mean() > 0  # real spread where imputed
    table = result.to_frame(quantiles=(0.05, 0.95))
    assert list(table.columns) == ["a", "b", "c", "a_q0.05", "b_q0.05", "c_q0.05", "a_q0.95", "b_q0.95", "c_q0.95"]


def test_seeded_runs_are_identical_and_seeds_matter(frame: pd.DataFrame) -> None:
    params = {**TINY, "max_epochs": 2}
    first = DiffusionImputer(**params, random_state=3).fit(frame).impute(frame, n_samples=4)
    second = DiffusionImputer(**params, random_state=3).fit(frame).impute(frame, n_samples=4)
    other = DiffusionImputer(**params, random_state=4).fit(frame).impute(frame, n_samples=4)
    assert np.array_equal(first.samples, second.samples)
    assert not np.array_equal(first.samples, other.samples)


def test_trained_model_beats_mean_imputation_on_structured_data(fitted: DiffusionImputer) -> None:
    truth = structured(seed=7)
    gappy, hidden = with_gaps(truth, 0.3, seed=8)
    median = fitted.transform(gappy)
    model_error = np.abs(median - truth)[hidden].mean()
    mean_error = np.abs(np.nanmean(gappy, axis=0) - truth)[hidden].mean()
    assert model_error < 0.5 * mean_error, (model_error, mean_error)


def test_ddpm_and_few_step_ddim_both_run(fitted: DiffusionImputer, frame: pd.DataFrame) -> None:
    for sampler, steps in [("ddpm", None), ("ddim", 2)]:
        out = copy.deepcopy(fitted).set_params(sampler=sampler, sampling_steps=steps).transform(frame)
        assert not out.isna().any().any()


def test_save_load_round_trip_gives_identical_outputs(fitted: DiffusionImputer, frame: pd.DataFrame, tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    restored = load(path)
    assert restored.get_params() == fitted.get_params()
    assert np.array_equal(restored.impute(frame, seed=1).samples, fitted.impute(frame, seed=1).samples)


def test_scikit_learn_conventions(fitted: DiffusionImputer, frame: pd.DataFrame) -> None:
    params = fitted.get_params()
    assert params["window"] == 16 and params["n_samples"] == 8
    assert not hasattr(clone(fitted), "model_")
    with pytest.raises(NotFittedError):
        DiffusionImputer().transform(frame)
    pipeline = make_pipeline(DiffusionImputer(**{**TINY, "max_epochs": 1}), FunctionTransformer(lambda x: x * 2))
    out = pipeline.fit_transform(frame)
    assert out.shape == frame.shape and not np.isnan(np.asarray(out, dtype=float)).any()


def test_fully_observed_data_comes_back_unchanged_without_sampling(fitted: DiffusionImputer) -> None:
    complete = structured()[:50]
    result = fitted.impute(complete, n_samples=2)
    assert np.array_equal(result.median(), complete)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_time=st.integers(16, 60), rate=st.floats(0.0, 0.9), seed=st.integers(0, 2**16))
def test_observed_cells_are_bit_identical_for_random_frames_and_masks(
    fitted: DiffusionImputer, n_time: int, rate: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_time, 3)) * 10.0 ** rng.integers(-3, 4)
    hidden = rng.random(values.shape) < rate
    hidden[rng.integers(0, n_time, 3), [0, 1, 2]] = False  # every feature observed somewhere (else an error)
    values[hidden] = np.nan
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    out = fitted.impute(frame, n_samples=2).median().to_numpy()
    observed = ~np.isnan(values)
    assert np.array_equal(_bits(out[observed]), _bits(values[observed]))
    assert not np.isnan(out).any()


def test_clip_margin_keeps_an_untrained_model_within_range(frame: pd.DataFrame) -> None:
    # The CSDI-faithful setting (no guess, noise prediction) is the one an untrained model blows up.
    params = {**TINY, "max_epochs": 1, "sampler": "ddpm", "sampling_steps": None, "guess": "none",
              "prediction": "epsilon", "calibrate": False}
    observed = frame.to_numpy()
    low, high = np.nanmin(observed, axis=0), np.nanmax(observed, axis=0)
    clipped = DiffusionImputer(**params).fit(frame).impute(frame, n_samples=4).samples
    slack = 1e-5 * (high - low)  # float32 sampling
    assert np.all(clipped >= low - (high - low) - slack) and np.all(clipped <= high + (high - low) + slack)
    free = DiffusionImputer(**{**params, "clip_margin": None}).fit(frame).impute(frame, n_samples=4).samples
    assert np.abs(free).max() > np.abs(clipped).max()


def test_a_dead_sensor_is_imputed_from_the_other_features_with_honest_intervals() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(400)
    base = np.sin(t / 12) + 0.3 * np.sin(t / 5)
    frame = pd.DataFrame({"a": base, "b": 2 * base, "c": -base}) + 0.05 * rng.normal(size=(400, 3))
    train, test = frame.iloc[:300], frame.iloc[300:]
    model = DiffusionImputer(max_steps=2, window=32, n_samples=20, verbose=False).fit(train)
    dead = test.assign(c=np.nan)
    with pytest.warns(UserWarning, match=r"features \['c'\] have no observed value"):
        result = model.impute(dead)
    error = np.abs(result.median()["c"] - test["c"]).mean()
    assert error < 0.3 * np.abs(train["c"].mean() - test["c"]).mean()
    lower, upper = result.interval(0.1)
    assert ((test["c"] >= lower["c"]) & (test["c"] <= upper["c"])).mean() >= 0.8
    assert result.median()[["a", "b"]].equals(test[["a", "b"]])
    with pytest.raises(ValueError, match="no observed value at all"):
        model.impute(test * np.nan)


def test_validation_figures_come_from_held_out_cells_that_did_not_choose_the_model(monkeypatch) -> None:
    """Half of the held-out targets choose the checkpoint and the fallback, the other half are
    reported: the choice never sees a reported cell, and ``validation_`` counts only those."""
    from diffimpute.tasks import refiner

    gappy, _ = with_gaps(structured(n_time=240, seed=0), 0.1, seed=1)
    scored = []
    original = refiner.GuessRefiner._validation_mae

    def recording(self, model, held, device):
        scored.append(held)
        return original(self, model, held, device)

    monkeypatch.setattr(refiner.GuessRefiner, "_validation_mae", recording)
    model = DiffusionImputer(**{**TINY, "max_epochs": 2}).fit(gappy)
    held = scored[0]
    assert held.reported.any() and held.picked.any() and not (held.reported & held.picked).any()
    assert model.validation_["cells"] == int((held.reported & held.target).sum())


@pytest.mark.parametrize("coverage, warns", [(0.64, True), (0.9, False), (0.99, True)])
def test_held_out_coverage_outside_the_expected_range_warns(coverage: float, warns: bool) -> None:
    import warnings

    model = DiffusionImputer()
    model.refines_ = True
    reported = np.ones((4, 3, 20), dtype=bool)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model._report(reported, 0.5, {"crps_sample": 0.3, "coverage": coverage}, coverage, np.ones(reported.shape))
    assert any("90 % intervals covered" in str(w.message) for w in caught) == warns
    assert model.validation_["coverage90"] == coverage and model.validation_["cells"] == reported.sum()
