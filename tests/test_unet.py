"""The 2-D UNet denoiser and the harmonic guess: any image size, the engine's contract, class labels."""

from __future__ import annotations

import pytest
import torch

from diffimpute.nn.harmonic import HarmonicGuess, harmonic_fill
from diffimpute.nn.neighbours import NeighbourGuess
from diffimpute.nn.unet import UNetDenoiser


def _inputs(batch: int, n_features: int, height: int, width: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(batch, n_features, height * width, generator=generator)
    mask = torch.rand(batch, n_features, height * width, generator=generator) > 0.5
    positions = torch.zeros(batch, height * width)
    return (values * mask).unsqueeze(1), mask, positions


def _with_output_weights(model: UNetDenoiser) -> UNetDenoiser:
    for parameter in model.output.parameters():  # zero-initialised; give it weights to compare
        torch.nn.init.normal_(parameter, std=0.1)
    return model.eval()


@pytest.mark.parametrize(("n_features", "height", "width", "n_levels"),
                         [(1, 8, 8, 2), (1, 5, 5, 2), (3, 9, 14, 3), (4, 4, 4, 1), (1, 28, 28, 2)])
def test_output_shape_for_odd_and_even_sizes(n_features: int, height: int, width: int, n_levels: int) -> None:
    model = UNetDenoiser(n_features, height, width, channels=8, n_levels=n_levels, d_step=16,
                         guess=HarmonicGuess(height, width))
    condition = model.condition(*_inputs(2, n_features, height, width))
    out = model(torch.randn(2, 3, n_features, height * width), torch.randint(0, 50, (6,)), condition)
    assert out.shape == (2, 3, n_features, height * width)


def test_untrained_output_is_zero_so_draws_equal_the_guess() -> None:
    model = UNetDenoiser(1, 8, 8, channels=8, d_step=16)
    out = model(torch.randn(2, 2, 1, 64), torch.tensor([7]), model.condition(*_inputs(2, 1, 8, 8)))
    assert torch.equal(out, torch.zeros_like(out))


def test_samples_folded_into_batch_match_separate_passes() -> None:
    torch.manual_seed(0)
    model = _with_output_weights(UNetDenoiser(2, 6, 7, channels=8, d_step=16, attention=True, n_heads=2))
    condition = model.condition(*_inputs(2, 2, 6, 7))
    x = torch.randn(2, 3, 2, 42)
    with torch.no_grad():
        together = model(x, torch.tensor([5]), condition)
        for s in range(3):
            alone = model(x[:, s : s + 1], torch.tensor([5]), condition)
            assert torch.allclose(together[:, s : s + 1], alone, atol=1e-5)


def test_class_labels_change_the_output_and_none_is_the_null_class() -> None:
    torch.manual_seed(0)
    model = _with_output_weights(UNetDenoiser(1, 8, 8, channels=8, d_step=16, n_classes=3))
    values, mask, positions = _inputs(2, 1, 8, 8)
    x = torch.randn(2, 2, 1, 64)
    with torch.no_grad():
        first = model(x, torch.tensor([9]), model.condition(values, mask, positions, label=torch.tensor([0, 0])))
        second = model(x, torch.tensor([9]), model.condition(values, mask, positions, label=torch.tensor([2, 2])))
        unlabelled = model(x, torch.tensor([9]), model.condition(values, mask, positions))
        null = model(x, torch.tensor([9]), model.condition(values, mask, positions, label=torch.tensor([3, 3])))
    assert not torch.allclose(first, second)
    assert torch.equal(unlabelled, null)


def test_label_errors_are_clear() -> None:
    values, mask, positions = _inputs(2, 1, 8, 8)
    plain = UNetDenoiser(1, 8, 8, channels=8, d_step=16)
    with pytest.raises(ValueError, match="n_classes=0"):
        plain.condition(values, mask, positions, label=torch.tensor([0, 1]))
    labelled = UNetDenoiser(1, 8, 8, channels=8, d_step=16, n_classes=2)
    with pytest.raises(ValueError, match=r"in \[0, 2\]"):
        labelled.condition(values, mask, positions, label=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="int64"):
        labelled.condition(values, mask, positions, label=torch.tensor([0.0, 1.0]))


def test_wrong_image_size_is_rejected() -> None:
    model = UNetDenoiser(1, 8, 8, channels=8, d_step=16)
    with pytest.raises(ValueError, match="8 x 8"):
        model.condition(*_inputs(2, 1, 6, 6))


def test_harmonic_fill_keeps_given_pixels_and_solves_laplace() -> None:
    """A linear ramp is harmonic: from its border alone the fill recovers the interior."""
    ramp = torch.linspace(0.0, 1.0, 16).expand(16, 16).clone()
    known = torch.zeros(16, 16, dtype=torch.bool)
    known[0], known[-1], known[:, 0], known[:, -1] = True, True, True, True
    filled = harmonic_fill(torch.where(known, ramp, 5.0)[None, None], known[None, None], sweeps=200)[0, 0]
    assert torch.equal(filled[known], ramp[known])
    assert (filled - ramp).abs().max() < 1e-3


def test_harmonic_guess_of_an_empty_channel_is_zero() -> None:
    guess = HarmonicGuess(4, 4)
    values = torch.randn(1, 2, 16)
    mask = torch.zeros(1, 2, 16, dtype=torch.bool)
    mask[0, 0, :3] = True
    out = guess(values, mask, torch.zeros(1, 16))
    assert torch.equal(out[0, 0, :3], values[0, 0, :3]) and torch.equal(out[0, 1], torch.zeros(16))


def test_neighbour_guess_matches_knn_imputation() -> None:
    """With complete donors it is scikit-learn's KNNImputer (uniform weights) on flattened images."""
    from sklearn.impute import KNNImputer

    generator = torch.Generator().manual_seed(0)
    donors = torch.randn(40, 1, 16, generator=generator, dtype=torch.float64)
    queries = torch.randn(6, 1, 16, generator=generator, dtype=torch.float64)
    given = torch.rand(6, 1, 16, generator=generator) > 0.4
    guess = NeighbourGuess(40, 1, 4, 4).double().fit(donors, torch.ones_like(donors, dtype=torch.bool)).eval()
    guess.k.fill_(3)
    ours = guess(queries * given, given, torch.zeros(6, 16))
    flat = torch.where(given, queries, torch.nan).flatten(1).numpy()
    theirs = KNNImputer(n_neighbors=3).fit(donors.flatten(1).numpy()).transform(flat)
    assert torch.allclose(ours.flatten(1), torch.from_numpy(theirs), atol=1e-9)


def test_neighbour_guess_never_borrows_an_image_from_itself_in_training() -> None:
    generator = torch.Generator().manual_seed(1)
    donors = torch.randn(10, 1, 16, generator=generator)
    guess = NeighbourGuess(10, 1, 4, 4).fit(donors, torch.ones_like(donors, dtype=torch.bool))
    guess.k.fill_(1)
    given = torch.zeros(1, 1, 16, dtype=torch.bool)
    given[..., :8] = True
    query = donors[3:4]
    guess.eval()
    assert torch.equal(guess(query * given, given, torch.zeros(1, 16)), query)  # its own copy is nearest
    guess.train()
    assert not torch.allclose(guess(query * given, given, torch.zeros(1, 16))[..., 8:], query[..., 8:])
