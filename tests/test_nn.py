"""The CSDI denoiser: any feature count and window length, conditions shared across draws."""

from __future__ import annotations

import pytest
import torch

from diffimpute.nn.csdi import CSDIDenoiser


def _inputs(batch: int, n_features: int, length: int):
    values = torch.randn(batch, 1, n_features, length)
    mask = torch.rand(batch, n_features, length) > 0.5
    positions = torch.arange(length, dtype=torch.float32).expand(batch, length)
    return values, mask, positions


@pytest.mark.parametrize(("n_features", "length"), [(1, 10), (3, 1), (5, 24), (7, 9)])
def test_output_shape_for_any_feature_count_and_length(n_features: int, length: int) -> None:
    model = CSDIDenoiser(n_features, channels=8, n_layers=2, n_heads=2, d_step=16, d_time=16, d_feature=4)
    condition = model.condition(*_inputs(3, n_features, length))
    out = model(torch.randn(3, 4, n_features, length), torch.randint(0, 50, (12,)), condition)
    assert out.shape == (3, 4, n_features, length)


def test_samples_folded_into_batch_match_separate_passes() -> None:
    torch.manual_seed(0)
    model = CSDIDenoiser(4, channels=8, n_layers=2, n_heads=2, d_step=16, d_time=16, d_feature=4).eval()
    for parameter in model.output.parameters():  # zero-initialised; give it weights to compare
        torch.nn.init.normal_(parameter)
    values, mask, positions = _inputs(2, 4, 6)
    x = torch.randn(2, 3, 4, 6)
    with torch.no_grad():
        together = model(x, torch.tensor([5]), model.condition(values, mask, positions))
        for s in range(3):
            alone = model(x[:, s : s + 1], torch.tensor([5]), model.condition(values, mask, positions))
            assert torch.allclose(together[:, s : s + 1], alone, atol=1e-5)


def test_wrong_feature_count_is_rejected() -> None:
    model = CSDIDenoiser(4, channels=8, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match="4 features"):
        model.condition(*_inputs(2, 5, 6))


def test_channels_must_split_into_heads() -> None:
    with pytest.raises(ValueError, match="divisible"):
        CSDIDenoiser(4, channels=10, n_heads=3)


def test_cross_feature_guess_fills_a_long_gap_from_correlated_features_and_keeps_given_cells() -> None:
    from diffimpute.nn.guess import CrossFeatureGuess, gap_distance, interpolate_gaps

    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(64, 1, 32, generator=generator).cumsum(-1)  # one random walk, three views
    values = torch.cat([latent, -2 * latent, 0.5 * latent], dim=1) + 0.01 * torch.randn(64, 3, 32, generator=generator)
    hidden = torch.zeros(64, 3, 32, dtype=torch.bool)
    hidden[:, 1, 8:24] = True  # feature 1 hidden for half the window
    positions = torch.arange(32.0).expand(64, 32)
    guess = CrossFeatureGuess(3, 32).fit(values, hidden, positions)
    filled = guess(values, ~hidden, positions)
    assert torch.equal(filled[~hidden], values[~hidden])
    error = (filled - values)[hidden].abs().mean()
    interpolation_error = (interpolate_gaps(values * ~hidden, ~hidden, positions) - values)[hidden].abs().mean()
    assert error < 0.1 * interpolation_error
    assert gap_distance(~hidden)[0, 1, 8:24].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1]


def test_cross_feature_guess_keeps_a_short_gap_of_an_uncorrelated_feature_near_its_interpolation() -> None:
    from diffimpute.nn.guess import CrossFeatureGuess, interpolate_gaps

    generator = torch.Generator().manual_seed(1)
    values = torch.randn(64, 2, 32, generator=generator).cumsum(-1) / 4  # two independent smooth paths
    hidden = torch.zeros(64, 2, 32, dtype=torch.bool)
    hidden[:, 0, 15] = True
    positions = torch.arange(32.0).expand(64, 32)
    guess = CrossFeatureGuess(2, 32).fit(values, hidden, positions)
    interpolated = interpolate_gaps(values * ~hidden, ~hidden, positions)
    filled = guess(values, ~hidden, positions)
    assert (filled - interpolated)[hidden].abs().max() < 0.1 * values.std()  # only pulled a little towards the mean
    assert (filled - values)[hidden].abs().mean() < 1.1 * (interpolated - values)[hidden].abs().mean()
