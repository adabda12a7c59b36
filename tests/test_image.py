"""ImageInpainter: observed pixels kept, a trained model beats mean fill and its guess, seeds,
save/load, the result object, bad input, the picture and the ``inpaint`` command."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

import diffimpute
from diffimpute import ImageInpainter
from diffimpute.cli.main import cli
from diffimpute.engine.checkpoint import load_checkpoint
from diffimpute.masking.image import random_pixels, square_holes
from diffimpute.report.image_plots import plot_inpainting

TINY = {"channels": 8, "n_heads": 2, "diffusion_steps": 20, "sampling_steps": 5, "n_samples": 8, "batch_size": 32,
        "max_epochs": 25, "time_budget": None, "device": "cpu", "verbose": False,
        "guess": "harmonic"}  # a weak guess, so that the briefly trained model must beat it
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """240 training and 40 test digits (8 x 8, values 0-16), float32."""
    images = load_digits().images.astype(np.float32)
    return images[:240], images[240:280]


@pytest.fixture(scope="module")
def fitted(digits) -> ImageInpainter:
    """A trained tiny model refining the harmonic fill."""
    return ImageInpainter(**TINY).fit(digits[0])


@pytest.fixture(scope="module")
def gappy(digits) -> tuple[np.ndarray, np.ndarray]:
    test = digits[1]
    hide = random_pixels(test, 0.5, np.random.default_rng(0))
    return np.where(hide, np.nan, test).astype(np.float32), hide


def _mse(estimate: np.ndarray, truth: np.ndarray, hide: np.ndarray) -> float:
    return float(((estimate - truth)[hide] ** 2).mean())


def test_trained_model_beats_mean_fill_and_its_own_guess(digits, fitted, gappy) -> None:
    train, test = digits
    images, hide = gappy
    result = fitted.impute(images)
    model = _mse(result.median(), test, hide)
    mean_fill = _mse(np.broadcast_to(train.mean(axis=0), test.shape), test, hide)
    assert fitted.refines_
    assert model < 0.9 * mean_fill
    assert model < _mse(result.guess, test, hide)


def test_neighbour_guess_beats_mean_fill_on_holes_and_survives_save_load(digits, tmp_path) -> None:
    """The neighbour guess borrows pixels from similar training digits: far better than their mean
    at a 4 x 4 hole, whether or not the briefly trained model refines it; its bank is saved too."""
    train, test = digits
    hide = square_holes(test, 4, np.random.default_rng(3))
    images = np.where(hide, np.nan, test)
    model = ImageInpainter(**{**TINY, "max_epochs": 1, "guess": "neighbours"}).fit(train)
    filled = model.transform(images)
    assert _mse(filled, test, hide) < 0.7 * _mse(np.broadcast_to(train.mean(axis=0), test.shape), test, hide)
    model.save(tmp_path / "neighbours.safetensors")
    loaded = ImageInpainter.load(tmp_path / "neighbours.safetensors")
    assert int(loaded.model_.guess.k) == int(model.model_.guess.k)
    assert np.array_equal(loaded.impute(images, seed=2).samples, model.impute(images, seed=2).samples)
    assert "training images" in load_checkpoint(tmp_path / "neighbours.safetensors")[1]["user_data"][0]
    with pytest.raises(ValueError, match="donor images"):  # the guess cannot work without them
        model.save(tmp_path / "without.safetensors", include_data=False)


def _smooth_fields(n: int, seed: int) -> np.ndarray:
    """``n`` 8 x 8 images, each the sum of two plane waves of random direction, length and phase:
    no two alike, so borrowing from similar images helps little and interpolating a lot."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((8, 8)) / 8
    images = np.zeros((n, 8, 8))
    for _ in range(2):
        frequency, phase = rng.uniform(-1, 1, (2, n, 1, 1)), rng.uniform(0, 2 * np.pi, (n, 1, 1))
        images += rng.uniform(2, 5, (n, 1, 1)) * np.sin(2 * np.pi * (frequency[0] * rows + frequency[1] * cols) + phase)
    return images.astype(np.float32)


def test_auto_guess_interpolates_smooth_images_and_keeps_the_choice(tmp_path) -> None:
    """On images unlike each other the harmonic fill beats the neighbour average on held-out pixels,
    so ``guess="auto"`` keeps it, fills better than the neighbour guess, and saves no training image."""
    train, test = _smooth_fields(240, 0), _smooth_fields(40, 1)
    hide = random_pixels(test, 0.5, np.random.default_rng(0))
    images = np.where(hide, np.nan, test)
    auto = ImageInpainter(**{**TINY, "max_epochs": 1, "guess": "auto"}).fit(train)
    neighbours = ImageInpainter(**{**TINY, "max_epochs": 1, "guess": "neighbours"}).fit(train)
    assert auto.guess_ == "harmonic" and auto.guess_scores_["harmonic"] < auto.guess_scores_["neighbours"]
    assert _mse(auto.transform(images), test, hide) < 0.5 * _mse(neighbours.transform(images), test, hide)
    auto.save(tmp_path / "auto.safetensors")
    loaded = ImageInpainter.load(tmp_path / "auto.safetensors")
    assert loaded.guess_ == "harmonic" and loaded.guess_scores_ == auto.guess_scores_
    assert np.array_equal(loaded.impute(images, seed=2).samples, auto.impute(images, seed=2).samples)
    assert load_checkpoint(tmp_path / "auto.safetensors")[1]["user_data"] == []


def test_auto_guess_borrows_from_similar_digits(digits, tmp_path) -> None:
    """Digits repeat a few shapes: the neighbour average beats interpolation, and ``auto`` keeps it
    (its donors and ``k`` saved with it)."""
    train, test = digits
    hide = random_pixels(test, 0.5, np.random.default_rng(0))
    images = np.where(hide, np.nan, test)
    model = ImageInpainter(**{**TINY, "max_epochs": 1, "guess": "auto"}).fit(train)
    assert model.guess_ == "neighbours" and model.guess_scores_["neighbours"] < model.guess_scores_["harmonic"]
    model.save(tmp_path / "auto.safetensors")
    loaded = ImageInpainter.load(tmp_path / "auto.safetensors")
    assert loaded.guess_ == "neighbours" and int(loaded.model_.guess.k) == int(model.model_.guess.k)
    assert np.array_equal(loaded.impute(images, seed=2).samples, model.impute(images, seed=2).samples)


def test_observed_pixels_are_bit_identical_in_every_summary(fitted, gappy) -> None:
    images, hide = gappy
    result = fitted.impute(images)
    for summary in (result.median(), result.mean(), result.quantile(0.2), *result.interval(0.1)):
        assert summary.shape == images.shape and summary.dtype == np.float32
        assert np.array_equal(summary[~hide], images[~hide])
        assert np.isfinite(summary).all()
    assert np.array_equal(result.samples[:, ~hide], np.broadcast_to(images[~hide], (8, int((~hide).sum()))))


def test_uncertainty_is_zero_at_observed_pixels_and_intervals_are_ordered(fitted, gappy) -> None:
    images, hide = gappy
    result = fitted.impute(images, n_samples=16)
    lower, upper = result.interval(0.1)
    width, std = result.interval_width(0.1), result.std()
    assert (lower <= upper).all() and np.allclose(width, upper - lower, atol=1e-4)
    assert (width[~hide] == 0).all() and (std[~hide] == 0).all()
    assert (width[hide] > 0).mean() > 0.9


def test_draws_stay_in_the_observed_range(digits, fitted, gappy) -> None:
    result = fitted.impute(gappy[0])
    assert result.samples.min() >= digits[0].min() and result.samples.max() <= digits[0].max()


def test_seeded_runs_are_identical(digits, gappy) -> None:
    images, _ = gappy
    first = ImageInpainter(**{**TINY, "max_epochs": 2}, random_state=3).fit(digits[0][:64])
    second = ImageInpainter(**{**TINY, "max_epochs": 2}, random_state=3).fit(digits[0][:64])
    assert np.array_equal(first.transform(images), second.transform(images))
    assert np.array_equal(first.impute(images, seed=5).samples, second.impute(images, seed=5).samples)
    assert not np.array_equal(first.impute(images, seed=5).samples, first.impute(images, seed=6).samples)


def test_training_is_a_budget_of_steps_under_a_time_cap(digits) -> None:
    """A time budget that does not bind leaves steps alone to decide training (and its checks)."""
    params = {**TINY, "max_epochs": 1000, "max_steps": 12, "validate_every": 4, "time_budget": 600.0}
    model = ImageInpainter(**params).fit(digits[0][:64])
    assert model.history_.steps == 12 and model.history_.stopped == "max_steps"
    with pytest.raises(ValueError, match="validate_every"):
        ImageInpainter(validate_every=0).fit(digits[0][:64])


def test_save_load_round_trip(fitted, gappy, tmp_path) -> None:
    images, _ = gappy
    path = tmp_path / "digits.safetensors"
    fitted.save(path)
    loaded = ImageInpainter.load(path)
    assert np.array_equal(loaded.impute(images, seed=1).samples, fitted.impute(images, seed=1).samples)
    assert isinstance(diffimpute.load(path), ImageInpainter)
    assert loaded.get_params() == fitted.get_params() and loaded.validation_ == fitted.validation_
    assert load_checkpoint(path)[1]["user_data"] == []  # the harmonic guess keeps no training image


def test_a_model_saved_with_distance_bins_loads_with_its_rows_on_the_hole_bins(digits, gappy, tmp_path) -> None:
    """Before the hole bins a model's quantile rows were distances 1, 2, 3-4 and farther: thin holes
    and rims both read the first, and the model still imputes."""
    from diffimpute.engine.checkpoint import save_checkpoint

    fitted = ImageInpainter(**{**TINY, "max_steps": 10}).fit(digits[0][:120])  # too short: falls back to its guess
    fitted.save(tmp_path / "now.safetensors")
    tensors, metadata = load_checkpoint(tmp_path / "now.safetensors")
    assert metadata["spread_floor"] is not None and metadata.pop("hole_bins")
    save_checkpoint(tmp_path / "old.safetensors", tensors, metadata)
    old = ImageInpainter.load(tmp_path / "old.safetensors")
    np.testing.assert_array_equal(old.residual_quantiles_, fitted.residual_quantiles_[:, [0, 0, 1, 2, 3]])
    assert np.isfinite(old.impute(gappy[0][:4], seed=1).samples).all()


def test_colour_images_and_grey_with_a_channel_axis(digits) -> None:
    """RGB stacks keep their shape; a pixel missing in one channel only is filled in that channel."""
    grey = digits[0][:48]
    rgb = np.stack([grey, 16 - grey, grey / 2], axis=-1)
    hide = square_holes(rgb, 3, np.random.default_rng(1))
    hide[0, 0, 0, 1] = True  # one channel of one pixel
    images = np.where(hide, np.nan, rgb)
    model = ImageInpainter(**{**TINY, "max_epochs": 2}).fit(images)
    filled = model.transform(images)
    assert filled.shape == rgb.shape and np.isfinite(filled).all()
    assert np.array_equal(filled[~hide], rgb[~hide])
    one = ImageInpainter(**{**TINY, "max_epochs": 1}).fit(grey[..., None])
    assert one.transform(np.where(hide[..., :1], np.nan, grey[..., None])).shape == (48, 8, 8, 1)


def test_empty_images_are_skipped_at_fit_and_drawn_at_transform(digits, fitted) -> None:
    images = digits[0][:40].copy()
    images[3] = np.nan
    ImageInpainter(**{**TINY, "max_epochs": 1}).fit(images)
    filled = fitted.transform(images[:5])
    assert np.isfinite(filled[3]).all() and np.array_equal(filled[4], images[4])


def test_repaint_conditioning_trains_and_keeps_observed_pixels(digits, gappy) -> None:
    images, hide = gappy
    model = ImageInpainter(**{**TINY, "max_epochs": 2, "guess": "none"}, conditioning="repaint").fit(digits[0][:64])
    filled = model.transform(images)
    assert np.array_equal(filled[~hide], images[~hide]) and np.isfinite(filled).all()
    with pytest.raises(ValueError, match="guess='none'"):
        ImageInpainter(conditioning="repaint").fit(digits[0])


def test_estimator_conventions(fitted, gappy) -> None:
    assert clone(fitted).get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        ImageInpainter().transform(gappy[0])
    with pytest.raises(ValueError, match="conditioning must be one of"):
        ImageInpainter(conditioning="magic").fit(gappy[0])


@pytest.mark.parametrize(("images", "error", "match"), [
    (np.zeros((8, 8)), ValueError, r"one image.*X\[None\]"),
    (np.zeros((2, 8, 8, 3, 1)), ValueError, "must have shape"),
    (np.zeros((2, 3, 8, 8)), ValueError, "channels-first"),
    (np.zeros((2, 8, 8, 5)), ValueError, "at most 4"),
    (np.zeros((4, 3, 3)), ValueError, "at least 4 x 4"),
    (np.zeros((0, 8, 8)), ValueError, "no image"),
    (np.full((2, 8, 8), np.nan), ValueError, "no observed pixel"),
    (np.where(np.eye(8, dtype=bool), np.inf, 0.0)[None], ValueError, "infinite"),
    (np.full((2, 8, 8), "a"), TypeError, "numbers"),
    (np.zeros((2, 8, 8), dtype=bool), TypeError, "numbers"),
    ("images.png", TypeError, "NumPy array"),
])
def test_bad_input_at_fit_is_a_clear_error(images, error, match) -> None:
    with pytest.raises(error, match=match):
        ImageInpainter(**TINY).fit(images)


def test_bad_input_at_transform_is_a_clear_error(fitted) -> None:
    with pytest.raises(ValueError, match="fitted on 8 x 8 images with 1"):
        fitted.transform(np.zeros((2, 9, 9)))
    with pytest.raises(ValueError, match="fitted on 8 x 8 images with 1"):
        fitted.transform(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="n_samples"):
        fitted.impute(np.zeros((2, 8, 8)), n_samples=0)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError, match="fitted on 8 x 8"):
        warnings.simplefilter("always")
        fitted.transform(np.zeros((1, 130, 130)))
    assert any("128 x 128" in str(w.message) for w in caught)


def test_picture_has_the_four_panels(fitted, gappy, digits, tmp_path) -> None:
    result = fitted.impute(gappy[0][:4])
    path = plot_inpainting(result, tmp_path / "inpainting.png", original=digits[1][:4])
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="must match"):
        plot_inpainting(result, tmp_path / "bad.png", original=digits[1][:3])


def test_cli_inpaints_a_npy_stack_end_to_end(digits, tmp_path) -> None:
    images = np.where(random_pixels(digits[1][:12], 0.3, np.random.default_rng(2)), np.nan, digits[1][:12])
    np.save(tmp_path / "digits.npy", images)
    np.save(tmp_path / "train.npy", digits[0][:64])
    result = CliRunner().invoke(cli, ["inpaint", str(tmp_path / "digits.npy"), "-o", str(tmp_path / "out"),
                                      "--train", str(tmp_path / "train.npy"), "--max-steps", "20",
                                      "--save", str(tmp_path / "m.safetensors"), "--quiet"])
    assert result.exit_code == 0, result.output
    filled = np.load(tmp_path / "out" / "inpainted.npy")
    width = np.load(tmp_path / "out" / "uncertainty.npy")
    observed = ~np.isnan(images)
    assert filled.shape == images.shape and np.array_equal(filled[observed], images[observed])
    assert (width[observed] == 0).all() and np.isfinite(filled).all()
    assert (tmp_path / "out" / "inpainting.png").read_bytes()[:8] == PNG_MAGIC
    again = CliRunner().invoke(cli, ["inpaint", str(tmp_path / "digits.npy"), "-o", str(tmp_path / "again"),
                                     "--model", str(tmp_path / "m.safetensors"), "--quiet"])
    assert again.exit_code == 0, again.output
    assert np.array_equal(np.load(tmp_path / "again" / "inpainted.npy"), filled)


def test_cli_inpaints_pngs_with_a_colour_key_and_a_mask(tmp_path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(16), np.arange(16)) * 7  # smooth 16 x 16 images
    names = []
    for k in range(6):
        rgb = np.stack([ramp + k, ramp[::-1] + k, np.full_like(ramp, 40 * k)], axis=-1).astype(np.uint8)
        rgb[rng.integers(0, 16), rng.integers(0, 16)] = (255, 0, 255)  # one keyed pixel
        Image.fromarray(rgb).save(tmp_path / f"img{k}.png")
        names.append(str(tmp_path / f"img{k}.png"))
    hole = np.zeros((16, 16), dtype=np.uint8)
    hole[5:9, 5:9] = 255
    Image.fromarray(hole).save(tmp_path / "mask.png")
    result = CliRunner().invoke(cli, ["inpaint", *names, "-o", str(tmp_path / "out"), "--missing-color", "255,0,255",
                                      "--mask", str(tmp_path / "mask.png"), "--max-steps", "20", "--quiet"])
    assert result.exit_code == 0, result.output
    filled = np.asarray(Image.open(tmp_path / "out" / "img0-inpainted.png"))
    original = np.asarray(Image.open(names[0]))
    keyed = (original == (255, 0, 255)).all(axis=-1)
    assert filled.shape == (16, 16, 3) and filled.dtype == np.uint8
    assert not (filled == (255, 0, 255)).all(axis=-1).any()
    kept = ~keyed & (hole == 0)
    assert np.array_equal(filled[kept], original[kept])
    assert np.asarray(Image.open(tmp_path / "out" / "img0-uncertainty.png")).shape == (16, 16)


def test_cli_errors_are_one_line(tmp_path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 3)))
    result = CliRunner().invoke(cli, ["inpaint", str(tmp_path / "bad.npy"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "at least 4 x 4" in result.output
    result = CliRunner().invoke(cli, ["inpaint", str(tmp_path / "bad.npy"), "-o", str(tmp_path / "out"),
                                      "--missing-color", "1,2,3"])
    assert result.exit_code == 2 and "for PNG inputs" in result.output
