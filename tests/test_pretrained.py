"""The pretrained denoiser shipped in the package: loading, zero-shot imputation, fine-tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from diffimpute import DiffusionImputer, load
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.patch import PatchDenoiser
from diffimpute.nn.pretrained import SHIPPED, load_pretrained
from tests.conftest import structured, with_gaps

QUICK = {"n_samples": 4, "sampling_steps": 3, "verbose": False, "device": "cpu"}


@pytest.fixture(scope="module")
def gappy() -> pd.DataFrame:
    values, _ = with_gaps(structured(n_time=160, n_features=3), 0.2, seed=2)
    index = pd.date_range("2024-01-01", periods=len(values), freq="h", name="time")
    return pd.DataFrame(values, index=index, columns=["a", "b", "c"])


def _weights_equal(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> bool:
    state = model.state_dict()
    return all(torch.equal(state[name], tensor) for name, tensor in tensors.items())


def test_shipped_weights_are_small_and_build_for_any_feature_count() -> None:
    assert SHIPPED["default"].stat().st_size <= 8 * 2**20
    weights = load_pretrained("default")
    for n_features in (1, 7, 40):
        model = weights.build(n_features)
        assert isinstance(model, PatchDenoiser) and _weights_equal(model, weights.tensors)
    assert sum(p.numel() for p in model.parameters()) <= 2_000_000
    assert (SHIPPED["default"].parent / "MODEL_CARD.md").is_file()


def test_zero_shot_imputes_without_fit_and_keeps_observed_cells(gappy: pd.DataFrame) -> None:
    imputer = DiffusionImputer.from_pretrained(random_state=0, **QUICK)
    filled = imputer.transform(gappy)
    assert isinstance(filled, pd.DataFrame) and filled.index.equals(gappy.index)
    assert list(filled.columns) == list(gappy.columns) and not filled.isna().any().any()
    observed = gappy.notna().to_numpy()
    assert np.array_equal(filled.to_numpy()[observed], gappy.to_numpy()[observed])
    assert _weights_equal(imputer.model_, load_pretrained("default").tensors)  # nothing was trained
    assert imputer.history_.steps == 0 and "coverage90" in imputer.validation_


def test_zero_shot_adapts_to_each_call(gappy: pd.DataFrame) -> None:
    imputer = DiffusionImputer.from_pretrained(**QUICK)
    imputer.transform(gappy)
    other = gappy.rename(columns={"a": "x"}).iloc[:, :2]
    assert list(imputer.transform(other).columns) == ["x", "b"]  # re-adapted, no schema error


def test_fine_tuning_starts_from_the_shipped_weights(gappy: pd.DataFrame) -> None:
    shipped = load_pretrained("default").tensors
    untouched = DiffusionImputer(max_steps=0, **QUICK).fit(gappy)
    assert untouched.pretrained_ and _weights_equal(untouched.model_, shipped)
    tuned = DiffusionImputer(max_steps=4, validate_every=2, time_budget=None, validation_fraction=0.0,
                             **QUICK).fit(gappy)
    assert tuned.history_.steps == 4 and not _weights_equal(tuned.model_, shipped)
    fresh = PatchDenoiser(3, **load_pretrained("default").model)
    moved = sum((p - shipped[n]).abs().sum() for n, p in tuned.model_.named_parameters())
    apart = sum((p - shipped[n]).abs().sum() for n, p in fresh.named_parameters())
    assert moved < 0.1 * apart  # a few small steps away from the weights, not a new start


def test_from_scratch_keeps_the_csdi_denoiser(gappy: pd.DataFrame) -> None:
    imputer = DiffusionImputer(pretrained=None, max_steps=2, window=16, channels=8, n_layers=1, n_heads=2,
                               **QUICK).fit(gappy)
    assert isinstance(imputer.model_, CSDIDenoiser) and not imputer.pretrained_
    latent = DiffusionImputer(guess="latent", max_steps=2, prior_epochs=1, window=16, **QUICK).fit(gappy)
    assert not latent.pretrained_  # the shipped weights refine interpolation, not a latent prior


@pytest.mark.parametrize("pretrained", ["default", None])
def test_two_fits_with_one_seed_are_identical(gappy: pd.DataFrame, pretrained) -> None:
    params = {"pretrained": pretrained, "max_steps": 6, "validate_every": 3, "window": 32, "random_state": 5,
              "time_budget": None, **QUICK}
    first = DiffusionImputer(**params).fit(gappy)
    second = DiffusionImputer(**params).fit(gappy)
    assert _weights_equal(first.model_, second.model_.state_dict())
    assert first.history_.val_score == second.history_.val_score
    pd.testing.assert_frame_equal(first.transform(gappy), second.transform(gappy))


def test_fine_tuned_model_round_trips_through_save_and_load(gappy: pd.DataFrame, tmp_path) -> None:
    imputer = DiffusionImputer(max_steps=2, window=32, time_budget=None, **QUICK).fit(gappy)
    imputer.save(tmp_path / "tuned.dfi")
    restored = load(tmp_path / "tuned.dfi")
    assert restored.pretrained_ and isinstance(restored.model_, PatchDenoiser)
    pd.testing.assert_frame_equal(restored.transform(gappy), imputer.transform(gappy))


def test_zero_shot_borrows_across_features_where_interpolation_cannot() -> None:
    """Half-day gaps in one feature of four that move together: interpolation cuts across the
    cycle, a model that reads the other features does not (and keeps no feature on the guess)."""
    truth = structured(n_time=192, n_features=4, seed=7)
    hidden = np.zeros(truth.shape, dtype=bool)
    rng = np.random.default_rng(3)
    for start in range(8, 180, 40):
        hidden[start:start + 12, rng.integers(0, 4)] = True
    gappy = np.where(hidden, np.nan, truth)
    imputer = DiffusionImputer.from_pretrained(**QUICK)
    filled = imputer.transform(gappy)
    linear = pd.DataFrame(gappy).interpolate(limit_direction="both").to_numpy()
    assert imputer.refines_ and not imputer.guess_channels_.any()
    assert np.abs(filled - truth)[hidden].mean() < 0.5 * np.abs(linear - truth)[hidden].mean()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"pretrained": "no-such-weights"}, "pretrained must be one of"),
        ({"diffusion_steps": 20}, "other diffusion settings"),
        ({"prediction": "epsilon"}, "other diffusion settings"),
        ({"window": 600}, "at most 512"),
        ({"max_steps": -1}, "max_steps must be"),
        ({"validate_every": 0}, "validate_every"),
    ],
)
def test_bad_pretrained_settings_are_clear_errors(gappy: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DiffusionImputer(**params, **QUICK).fit(gappy)


def test_an_explicit_weights_file_needs_the_interpolation_guess(gappy: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="refine linear interpolation"):
        DiffusionImputer(pretrained=str(SHIPPED["default"]), guess="latent", **QUICK).fit(gappy)


def test_pretraining_objective_shares_one_encoder_pass_and_bounds_outliers() -> None:
    """``denoising_loss(draws=k)`` encodes each window once for k noise levels; ``residual_limit``
    keeps one wild target from swamping the batch (both as ``pretrain/pretrain.py`` uses them)."""
    from diffimpute.data.batch import Windows
    from diffimpute.diffusion.schedules import NoiseSchedule
    from diffimpute.engine.denoising import denoising_loss

    torch.manual_seed(0)
    model = PatchDenoiser(3, channels=16, n_layers=1, n_heads=2, ff_dim=16)
    values = torch.randn(4, 3, 32)
    values[0, 0, 5] = 1e3  # a target far outside its window's other cells
    windows = Windows(values=values, observed=torch.ones(4, 3, 32, dtype=torch.bool),
                      positions=torch.arange(32.0).expand(4, 32))
    target = torch.zeros(4, 3, 32, dtype=torch.bool)
    target[:, :, 4:8] = True
    calls = []
    encode = model.condition
    model.condition = lambda *args, **kwargs: calls.append(1) or encode(*args, **kwargs)
    schedule = NoiseSchedule(50, "quad", 1e-4, 0.5)

    def loss(**kwargs) -> float:
        return float(denoising_loss(model, schedule, windows, ~target, target, torch.Generator().manual_seed(1), "v",
                                    **kwargs))

    wild, bounded = loss(draws=4), loss(draws=4, residual_limit=10.0)
    assert calls == [1, 1]
    assert wild > 1e3 and bounded < 10.0
    with pytest.raises(ValueError, match="one per window"):
        loss(draws=2, steps=torch.zeros(4, dtype=torch.long))
