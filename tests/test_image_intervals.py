"""Texture-aware intervals of the image inpainter's guess: distances to the nearest given pixel,
the guess's local error, draws whose sample quantiles sit where the table says, and coverage that
holds on flat and on busy images alike."""

from __future__ import annotations

import numpy as np
import torch

from diffimpute import ImageInpainter
from diffimpute.engine.calibration import binned_quantile_draws
from diffimpute.masking.image import random_pixels
from diffimpute.nn.harmonic import HarmonicGuess
from diffimpute.tasks.image_intervals import distance_bins, fold_error, for_sample_quantiles


def test_distance_bins_follow_chebyshev_distance_to_the_nearest_given_pixel() -> None:
    given = np.zeros((1, 1, 12 * 12), dtype=bool)
    given[0, 0, 0] = True  # the top-left corner
    bins = distance_bins(given, 12, 12).reshape(12, 12)
    distance = np.maximum(*np.indices((12, 12)))
    expected = np.select([distance <= 1, distance == 2, distance <= 4], [0, 1, 2], 3)
    assert np.array_equal(bins, expected)
    assert (distance_bins(np.zeros((1, 1, 16), dtype=bool), 4, 4) == 3).all()  # nothing given: farthest


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
