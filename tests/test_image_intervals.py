"""Texture-aware intervals of the image inpainter's guess: each pixel's place in its hole,
the guess's local error, draws whose sample quantiles sit where the table says, and coverage that
holds on flat and on busy images alike, and for scattered pixels and blocks alike."""

from __future__ import annotations

import numpy as np
import torch

from diffimpute import ImageInpainter
from diffimpute.engine.calibration import binned_quantile_draws
from diffimpute.masking.image import random_pixels, square_holes
from diffimpute.nn.harmonic import HarmonicGuess
from diffimpute.tasks.image_intervals import fold_error, for_sample_quantiles, hole_bins


def test_hole_bins_tell_thin_holes_from_the_rim_and_depth_of_thick_ones() -> None:
    given = np.zeros((1, 1, 12 * 12), dtype=bool)
    given[0, 0, 0] = True  # the top-left corner: every hidden pixel is in one thick hole
    bins = hole_bins(given, 12, 12).reshape(12, 12)
    distance = np.maximum(*np.indices((12, 12)))
    expected = np.select([distance == 0, distance <= 1, distance == 2, distance <= 4], [0, 1, 2, 3], 4)
    assert np.array_equal(bins, expected)
    block = np.ones((8, 8), dtype=bool)
    block[2:6, 2:6] = False  # a 4 x 4 hole: a rim of 12 pixels around 4 two away from any given one
    block[0, 7] = False  # a scattered pixel: a thin hole
    bins = hole_bins(block.reshape(1, 1, 64), 8, 8).reshape(8, 8)
    assert bins[0, 7] == 0 and (bins[3:5, 3:5] == 2).all()
    rim = ~block
    rim[3:5, 3:5] = rim[0, 7] = False
    assert (bins[rim] == 1).all() and (bins[block] == 0).all()
    assert (hole_bins(np.zeros((1, 1, 16), dtype=bool), 4, 4) == 4).all()  # nothing given: farthest


def test_fold_error_is_large_where_the_image_is_busy() -> None:
    """Left half flat, right half noise: the harmonic fill's error at given pixels it did not see,
    averaged locally, is near 0 on the left and near the noise's scale on the right."""
    rng = np.random.default_rng(0)
    image = np.zeros((16, 16))
    image[:, 8:] = rng.normal(0, 1, (16, 8))
    values, given = image.reshape(1, 1, -1), np.ones((1, 1, 256), dtype=bool)
    guess = HarmonicGuess(16, 16)

    def fill(mask: np.ndarray) -> np.ndarray:
        return guess(torch.from_numpy(values), torch.from_numpy(mask), torch.zeros(1, 256)).numpy()

    spread = fold_error(fill, values, given, 16, 16).reshape(16, 16)
    assert spread[:, :5].max() < 0.4 and spread[:, 11:].mean() > 0.8


def test_sample_intervals_of_stratified_draws_cover_their_level() -> None:
    """Draws from a normal quantile table re-read for 30 draws: the sample 90 % interval covers
    about 90 % of fresh normal values (stratified draws read plainly cover about 87 %)."""
    levels = (np.arange(99) + 0.5) / 99
    table = np.sort(np.random.default_rng(1).normal(size=200_000))[(levels * 200_000).astype(int)][None, None]
    given = np.zeros((2000, 1, 16), dtype=bool)
    bins = np.zeros(given.shape, dtype=np.int64)
    truth = np.random.default_rng(2).normal(size=given.shape)

    def coverage(t: np.ndarray) -> float:
        draws = binned_quantile_draws(t, bins, given, 30, np.random.default_rng(3))
        low, high = np.quantile(draws, [0.05, 0.95], axis=0)
        return float(((truth >= low) & (truth <= high)).mean())

    assert 0.89 < coverage(for_sample_quantiles(table, 30)) < 0.91
    assert coverage(table) < 0.885


def _textures(n: int, seed: int) -> np.ndarray:
    """``n`` 12 x 12 images: a smooth ramp plus noise of standard deviation 0.1 (even images) or 3 (odd)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((12, 12)) / 12
    ramp = rng.uniform(-5, 5, (n, 1, 1)) * rows + rng.uniform(-5, 5, (n, 1, 1)) * cols
    noise = np.where(np.arange(n)[:, None, None] % 2 == 0, 0.1, 3.0) * rng.normal(size=(n, 12, 12))
    return (ramp + noise).astype(np.float32)


def test_fallback_intervals_hold_on_flat_and_busy_images_and_survive_save_load(tmp_path) -> None:
    """A model that falls back to its harmonic guess covers about 90 % of hidden pixels in flat and
    in noisy images alike (one width per gap size would cover nearly all of the first and too few of
    the second), with intervals about as much wider as the noise is, and loads with the same draws."""
    train, test = _textures(400, 0), _textures(60, 1)
    hide = random_pixels(test, 0.5, np.random.default_rng(0))
    images = np.where(hide, np.nan, test)
    model = ImageInpainter(guess="harmonic", channels=8, n_heads=2, diffusion_steps=20, sampling_steps=5,
                           max_epochs=1, validation_fraction=0.3, time_budget=None, device="cpu",
                           verbose=False).fit(train)
    assert not model.refines_  # one epoch does not beat the guess: these are the guess's intervals
    result = model.impute(images, n_samples=30, seed=1)
    low, high = result.interval(0.1)
    inside = (test >= low) & (test <= high)
    flat, busy = hide & (np.arange(60) % 2 == 0)[:, None, None], hide & (np.arange(60) % 2 == 1)[:, None, None]
    assert 0.85 < inside[flat].mean() < 0.95 and 0.85 < inside[busy].mean() < 0.95
    assert 0.885 < inside[hide].mean() < 0.92  # 30 draws' sample interval read as a 90 % one, not 87 %
    width = high - low
    assert width[busy].mean() > 10 * width[flat].mean()
    model.save(tmp_path / "fallback.safetensors")
    loaded = ImageInpainter.load(tmp_path / "fallback.safetensors")
    assert np.array_equal(loaded.impute(images, n_samples=30, seed=1).samples, result.samples)


def test_fallback_intervals_hold_for_blocks_as_well_as_scattered_pixels() -> None:
    """Digits, the neighbour guess alone: 90 % intervals cover 85-95 % of hidden pixels under 4 x 4
    holes as under 50 % scattered ones. Fitted on the held-out holes alone, with one bin for every
    pixel next to a given one, the blocks' rims were scored as scattered pixels: 0.76-0.79."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float64)
    order = np.random.default_rng(0).permutation(len(images))
    train, test = images[order[:1200]], images[order[1200:1500]]
    model = ImageInpainter(guess="neighbours", channels=8, n_heads=2, max_steps=5, time_budget=None,
                           device="cpu", random_state=1, verbose=False).fit(train)
    assert not model.refines_  # five steps do not beat the guess: these are the guess's intervals
    for hide in (square_holes(test, 4, np.random.default_rng(1)), random_pixels(test, 0.5, np.random.default_rng(1))):
        low, high = model.impute(np.where(hide, np.nan, test), n_samples=30, seed=1).interval(0.1)
        assert 0.85 < ((test >= low) & (test <= high))[hide].mean() < 0.95
