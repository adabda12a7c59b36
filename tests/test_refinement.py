"""The imputer refines a first guess: an untrained model returns the guess, the guess never sees
targets, intervals are calibrated, draws respect each feature's domain, the time budget holds,
and every task trains through the one engine."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import diffimpute.engine.denoising as denoising
import diffimpute.engine.trainer as trainer
from diffimpute import DiffusionImputer, ImDiffusionDetector
from diffimpute.data.batch import Windows
from diffimpute.diffusion.schedules import NoiseSchedule
from diffimpute.engine.calibration import (
    conformal_quantile,
    gap_bins,
    needed_scales,
    quantile_draws,
    rescale,
    residual_quantiles,
)
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.denoiser import Condition
from diffimpute.nn.guess import InterpolationGuess
from diffimpute.report.quality import quality_report
from diffimpute.tasks.evaluate import evaluate_methods, labelled
from tests.conftest import TINY, structured, with_gaps


@pytest.mark.parametrize("prediction", ["x0", "v", "epsilon"])
def test_an_untrained_model_imputes_exactly_its_guess(frame: pd.DataFrame, prediction: str) -> None:
    """x0 prediction with a zero output layer *is* the guess; for v and epsilon the untrained
    network is not, and model selection falls back to the guess because it cannot beat it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it cannot beat its guess, and says so
        imputer = DiffusionImputer(**{**TINY, "max_epochs": 1, "learning_rate": 0.0, "prediction": prediction}).fit(frame)
    assert not imputer.refines_
    result = imputer.impute(frame, n_samples=4)
    np.testing.assert_allclose(result.median().to_numpy(), result.guess.to_numpy(), atol=1e-5)
    # No learned spread, so the draws spread by the guess's own error scale around it.
    assert np.ptp(result.samples, axis=0)[result.missing].min() > 0
    expected = frame.interpolate(method="time", limit_direction="both")
    np.testing.assert_allclose(result.guess.to_numpy(), expected.to_numpy(), atol=1e-5)


def condition_in_training(denoiser, values: torch.Tensor, observed: torch.Tensor, target: torch.Tensor,
                          monkeypatch) -> Condition:
    """What the training loss conditions ``denoiser`` on when it learns to predict the ``target``
    cells of windows of ``values`` (all ``(batch, features, length)``), the other observed cells given."""
    seen: list[Condition] = []
    original = denoising.condition_of

    def recording(*args, **kwargs) -> Condition:
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(denoising, "condition_of", recording)
    positions = torch.arange(values.shape[-1], dtype=torch.float32).expand(len(values), -1)
    windows = Windows(values=values * observed, observed=observed, positions=positions)
    denoising.denoising_loss(denoiser, NoiseSchedule(20), windows, observed & ~target, target,
                             torch.Generator().manual_seed(0), "v")
    return seen[-1]


def test_the_guess_never_sees_target_values(monkeypatch) -> None:
    """Two training batches that differ only in the values of their target cells get the same
    guess and the same conditioning."""
    torch.manual_seed(0)
    denoiser = CSDIDenoiser(3, channels=8, n_layers=1, n_heads=2, guess=InterpolationGuess())
    values = torch.randn(4, 3, 12)
    observed = torch.rand(4, 3, 12) < 0.9
    target = observed & (torch.rand(4, 3, 12) < 0.4)
    changed = torch.where(target, values * 7.0 + 3.0, values)  # new truths at every target cell, and only there
    a = condition_in_training(denoiser, values, observed, target, monkeypatch)
    b = condition_in_training(denoiser, changed, observed, target, monkeypatch)
    assert target.any() and torch.equal(values != changed, target)
    assert torch.equal(a.guess, b.guess) and torch.equal(a.input_bias, b.input_bias)
    assert all(torch.equal(x, y) for x, y in zip(a.side, b.side))


def test_ninety_percent_intervals_cover_85_to_95_percent_of_hidden_cells() -> None:
    """A smooth signal plus independent noise: the hidden value's distribution is known (signal
    plus N(0, 0.3^2)), so a calibrated 90 % interval must hold about 90 % of the truths."""
    rng = np.random.default_rng(11)
    t = np.arange(720)
    signal = np.stack([np.sin(2 * np.pi * t / 48), np.cos(2 * np.pi * t / 48)], axis=1)
    truth = signal + 0.3 * rng.standard_normal(signal.shape)
    gappy, hidden = with_gaps(truth, 0.2, seed=12)
    imputer = DiffusionImputer(**{**TINY, "max_epochs": 15, "n_samples": 32}).fit(gappy)
    lower, upper = imputer.impute(gappy).interval(0.1)
    covered = ((truth >= lower) & (truth <= upper))[hidden]
    assert 0.85 <= covered.mean() <= 0.95, covered.mean()
    assert 0.8 <= imputer.validation_["coverage90"] <= 1.0


def test_calibration_finds_the_factor_that_covers_the_requested_share() -> None:
    rng = np.random.default_rng(0)
    truth = rng.standard_normal(4000)
    samples = 0.2 * rng.standard_normal((200, 4000))  # five times too narrow
    factor = conformal_quantile(needed_scales(samples, truth, 0.9), 0.9)
    assert 4.0 < factor < 6.0
    wide = rescale(samples, np.array([factor]))
    lower, upper = np.quantile(wide, [0.05, 0.95], axis=0)
    assert 0.88 <= ((truth >= lower) & (truth <= upper)).mean() <= 0.92


def test_held_out_residual_quantiles_give_calibrated_draws_for_a_guess() -> None:
    rng = np.random.default_rng(1)
    given = rng.random((40, 2, 24)) < 0.7
    gap = gap_bins(given)
    feature = np.broadcast_to(np.arange(2)[None, :, None], given.shape)
    residual = rng.standard_t(3, size=given.shape) * (1 + gap)  # heavy tails, wider in longer gaps
    table = residual_quantiles(residual[~given], feature[~given], gap[~given], 2)
    draws = quantile_draws(table, given, 40, rng)
    assert np.all(draws[:, given] == 0) and np.allclose(np.median(draws, axis=0), 0)
    fresh = rng.standard_t(3, size=given.shape) * (1 + gap)
    lower, upper = np.quantile(draws, [0.05, 0.95], axis=0)
    assert 0.85 <= ((fresh >= lower) & (fresh <= upper))[~given].mean() <= 0.95


def test_pooled_residual_quantiles_keep_each_features_spread() -> None:
    """Sparse features share pooled quantiles; one whose residuals run three times wider than
    another's (its scale from training rows was off) still gets intervals near 90 % coverage."""
    rng = np.random.default_rng(4)
    spread = np.array([0.5, 1.5])
    feature = np.repeat(np.arange(2), 90)  # 90 cells each: too few for quantiles of their own
    residual = rng.standard_normal(180) * spread[feature]
    table = residual_quantiles(residual, feature, np.full(180, 4), 2)
    fresh = rng.standard_normal((20000, 2)) * spread
    for j in range(2):
        lower, upper = np.interp([0.05, 0.95], (np.arange(99) + 0.5) / 99, table[j, 4])
        assert 0.82 <= ((fresh[:, j] >= lower) & (fresh[:, j] <= upper)).mean() <= 0.96  # before: 1.0, 0.75
    # a feature with cells enough keeps exactly its own quantiles
    dense = np.r_[residual, rng.standard_normal(150) * 3]
    features = np.r_[feature, np.full(150, 2)]
    table = residual_quantiles(dense, features, np.full(330, 4), 3)
    np.testing.assert_allclose(table[2, 4], np.quantile(dense[180:], (np.arange(99) + 0.5) / 99))


def test_gap_bins_measure_the_distance_to_the_nearest_given_cell() -> None:
    given = np.array([[True, False, False, False, False, False, False, False, False, False, False, True]])
    # distances 0,1,2,3,4,5,5,4,3,2,1,0 -> bins: 1 -> 0, 2 -> 1, 3-4 -> 2, 5-8 -> 3
    assert gap_bins(given).tolist() == [[0, 0, 1, 2, 2, 3, 3, 2, 2, 1, 0, 0]]
    assert gap_bins(np.zeros((1, 5), dtype=bool)).tolist() == [[4] * 5]


def test_nonnegative_features_stay_nonnegative_and_integer_columns_integral() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(240)
    rain = np.maximum(0.0, rng.gamma(0.3, 2.0, 240) - 0.3)  # mostly zeros, never negative
    counts = rng.poisson(3 + 2 * np.sin(t / 10)).astype(float)
    temperature = np.sin(t / 12) * 5 - 1
    frame = pd.DataFrame({"rain": rain, "counts": counts, "temp": temperature})
    gappy = frame.mask(rng.random(frame.shape) < 0.3)
    draws = DiffusionImputer(**{**TINY, "max_epochs": 2}).fit(gappy).impute(gappy, n_samples=8).samples
    assert draws[..., 0].min() >= 0.0
    assert np.array_equal(draws[..., 1], np.round(draws[..., 1]))
    assert draws[..., 2].min() < 0.0  # a feature with negative values is left alone
    free = DiffusionImputer(**{**TINY, "max_epochs": 2, "keep_integers": False}).fit(gappy)
    free_counts = free.impute(gappy, n_samples=8).samples[..., 1]
    assert not np.array_equal(free_counts, np.round(free_counts))  # switched off: fractional draws


def test_time_budget_stops_training_and_keeps_a_usable_model(frame: pd.DataFrame) -> None:
    started = time.perf_counter()
    imputer = DiffusionImputer(**{**TINY, "max_epochs": 10_000, "patience": 10_000, "time_budget": 2.0}).fit(frame)
    assert time.perf_counter() - started < 20
    assert imputer.history_.stopped == "time_budget"
    assert 0 < len(imputer.history_.train_loss) < 10_000
    assert not imputer.transform(frame).isna().any().any()


def test_validation_reports_model_and_guess_on_held_out_cells(fitted: DiffusionImputer) -> None:
    report = fitted.validation_
    assert report["cells"] > 0 and {"mae", "crps", "coverage90", "guess_mae"} <= set(report)
    assert np.isfinite(fitted.history_.val_score).any()


def test_fit_warns_naming_both_figures_when_the_model_does_not_beat_its_guess(frame: pd.DataFrame) -> None:
    with pytest.warns(UserWarning, match=r"MAE .* vs guess"):
        DiffusionImputer(**{**TINY, "max_epochs": 1, "learning_rate": 0.0}).fit(frame)


def test_every_task_trains_through_the_one_engine(frame: pd.DataFrame, monkeypatch) -> None:
    calls: list[str] = []
    original = trainer.train

    def counting(*args, **kwargs):
        calls.append(kwargs.get("desc", "training"))
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "train", counting)
    for module in ("diffimpute.tasks.imputer_prior", "diffimpute.tasks.refiner", "diffimpute.tasks.anomaly"):
        monkeypatch.setattr(f"{module}.train", counting)
    DiffusionImputer(**{**TINY, "max_epochs": 1, "guess": "latent", "prior_epochs": 1}).fit(frame)
    ImDiffusionDetector(window=16, stride=8, n_segments=4, channels=8, n_layers=1, n_heads=2, max_epochs=1,
                        sampler="ddim", sampling_steps=2, device="cpu",
                        verbose=False).fit(pd.DataFrame(structured(200, 3)))
    assert calls == ["training prior", "training", "training detector"]


def test_training_beats_the_guess_where_features_explain_each_other() -> None:
    """A rough shared signal seen through three sensors: interpolation along time is poor, but a
    missing cell is nearly determined by the other sensors at the same time step."""
    rng = np.random.default_rng(5)
    base = np.zeros(600)
    for i in range(1, 600):
        base[i] = 0.6 * base[i - 1] + rng.standard_normal()
    truth = base[:, None] * np.array([1.0, -2.0, 0.5]) + 0.05 * rng.standard_normal((600, 3))
    gappy, hidden = with_gaps(truth, 0.2, seed=6)
    imputer = DiffusionImputer(**{**TINY, "max_epochs": 40, "n_samples": 8}).fit(gappy)
    result = imputer.impute(gappy)
    model_error = np.abs(result.median() - truth)[hidden].mean()
    guess_error = np.abs(result.guess - truth)[hidden].mean()
    assert imputer.refines_ and model_error < 0.7 * guess_error, (model_error, guess_error)


# ------------------------------------------------------------------ naming a model that fell back

# Untrained, x0 prediction *is* the guess (see the first test): such a model cannot beat its guess.
FALLS_BACK = {**TINY, "max_epochs": 1, "learning_rate": 0.0, "prediction": "x0"}


@pytest.mark.filterwarnings("ignore:the diffusion model did not beat")
def test_evaluation_names_a_model_that_fell_back_to_its_guess(frame: pd.DataFrame) -> None:
    table, outputs = evaluate_methods(frame, "mcar:0.2", ["diffusion", "linear"], n_samples=4,
                                      diffusion_params=FALLS_BACK)
    assert list(table.index) == list(outputs) == ["diffusion", "linear"]  # the keys of the outputs
    assert table.loc["diffusion", "refines"] is np.False_ and pd.isna(table.loc["linear", "refines"])
    shown = labelled(table)
    assert list(shown.index) == ["diffusion (fell back to its guess)", "linear"] and "refines" not in shown
    refined = table.assign(refines=pd.array([True, pd.NA], dtype="boolean"))
    assert list(labelled(refined).index) == ["diffusion", "linear"]


@pytest.mark.filterwarnings("ignore:the diffusion model did not beat")
def test_the_report_never_names_a_model_that_fell_back_as_diffusion_winning(frame: pd.DataFrame) -> None:
    gappy = frame.copy()
    gappy.iloc[100:104, 0] = gappy.iloc[150:153, 1] = np.nan  # gaps of a few rows, as the report's mask copies
    report = quality_report(gappy, methods=("diffusion", "linear"), time_budget=None, n_samples=4, target="c",
                            diffusion_params=FALLS_BACK, progress=False)
    label = "diffusion (fell back to its guess)"
    assert report.scores.loc["diffusion", "refines"] is np.False_ and report.imputer_refines is False
    assert any(line.startswith("The diffusion imputer fell back to its guess") for line in report.summary)
    best = next(line for line in report.summary if line.startswith("Best method by column"))
    assert "diffusion for" not in best and (label in best or "diffusion" not in best)
    html = report.to_html()
    assert f"<th>{label}</th>" in html and "<th>diffusion-imputed (fell back to its guess)</th>" in html
    assert f"mae_{label}" in html and f"imputed medians of {label}" in html
    assert "<th>diffusion</th>" not in html and "<th>diffusion-imputed</th>" not in html
