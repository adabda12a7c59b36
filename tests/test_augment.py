"""DiffusionAugmenter: forms and dtypes round-trip, vary's strength, class-conditional samples,
guidance, seeds, save/load, bad input, the picture and the command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import diffimpute
from diffimpute import DiffusionAugmenter
from diffimpute.cli.main import cli
from diffimpute.data.batch import Windows
from diffimpute.diffusion.samplers import make_sampler
from diffimpute.diffusion.schedules import NoiseSchedule
from diffimpute.engine.sampling import sample
from diffimpute.nn.tabular import TabularDenoiser
from diffimpute.report.augment_plots import plot_augmentation

TINY = {"hidden": 32, "n_layers": 1, "channels": 8, "n_heads": 2, "diffusion_steps": 20, "max_epochs": 40,
        "batch_size": 32, "time_budget": None, "device": "cpu", "verbose": False}


def mixed_table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Numeric, whole-number, nullable-integer, bounded, categorical (with an unused level), bool,
    string and date columns, some cells missing."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    frame = pd.DataFrame({
        "x": x,
        "y": (2 * x + 0.3 * rng.standard_normal(n)).astype(np.float32),
        "count": rng.integers(0, 20, n),
        "share": rng.uniform(0.0, 1.0, n),
        "colour": pd.Categorical(rng.choice(["red", "green"], n), categories=["red", "green", "blue"]),
        "flag": x > 0,
        "city": rng.choice(["Oslo", "Rome", "Lima"], n).astype(object),
    })
    frame["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90, n), unit="D")
    frame["maybe"] = pd.array(rng.integers(0, 5, n), dtype="Int64")
    frame.loc[rng.random(n) < 0.1, "maybe"] = pd.NA
    frame.loc[rng.random(n) < 0.1, "share"] = np.nan
    return frame


def windows(n: int = 64, length: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    wave = np.sin(2 * np.pi * t / 12 + rng.uniform(0, 2 * np.pi, (n, 1)))
    return np.stack([wave, 0.5 * wave + 0.1 * rng.standard_normal((n, length))], axis=-1)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return mixed_table()


@pytest.fixture(scope="module")
def fitted_table(table) -> DiffusionAugmenter:
    return DiffusionAugmenter(**TINY).fit(table)


@pytest.fixture(scope="module")
def fitted_series() -> DiffusionAugmenter:
    return DiffusionAugmenter(**{**TINY, "max_epochs": 10}).fit(windows().astype(np.float32))


# ------------------------------------------------------------------ forms and dtypes


def test_generated_table_keeps_columns_dtypes_levels_and_ranges(fitted_table, table) -> None:
    out = fitted_table.generate(50, seed=1)
    assert list(out.columns) == list(table.columns) and len(out) == 50
    assert isinstance(out.index, pd.RangeIndex)
    assert out.dtypes.to_dict() == table.dtypes.to_dict()
    assert list(out["colour"].cat.categories) == ["red", "green", "blue"]
    assert set(out["colour"]) <= {"red", "green"}  # a level never seen is never drawn
    assert set(out["city"]) <= {"Oslo", "Rome", "Lima"} and set(out["flag"]) <= {True, False}
    assert not out.isna().any().any()  # every cell generated, also in columns with gaps
    assert out["count"].between(table["count"].min(), table["count"].max()).all()
    assert out["share"].between(table["share"].min(), table["share"].max()).all()
    assert (out["maybe"] == out["maybe"].round()).all()
    assert (out["when"] == out["when"].dt.floor("D")).all()  # dates given in whole days come out so
    assert out["when"].between(table["when"].min(), table["when"].max()).all()


def test_arrays_come_back_in_their_shape_and_dtype(fitted_series) -> None:
    assert fitted_series.input_kind_ == "series"
    out = fitted_series.generate(5, seed=0)
    assert out.shape == (5, 12, 2) and out.dtype == np.float32
    rows = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    table = DiffusionAugmenter(**{**TINY, "max_epochs": 2}).fit(rows)
    made = table.generate(7)
    assert made.shape == (7, 3) and made.dtype == np.float32


# ------------------------------------------------------------------ vary


def test_vary_at_strength_zero_returns_the_input_bit_identical(fitted_table, fitted_series, table) -> None:
    complete = table.dropna()
    copy = fitted_table.vary(complete, 0.0)
    pd.testing.assert_frame_equal(copy, complete)
    series = windows().astype(np.float32)
    assert np.array_equal(fitted_series.vary(series, 0.0), series)


def test_vary_at_strength_zero_fills_only_the_gaps(fitted_table, table) -> None:
    filled = fitted_table.vary(table, 0.0)
    observed = table.notna().to_numpy()
    assert not filled.isna().any().any()
    for j, column in enumerate(table.columns):
        assert (filled[column][observed[:, j]] == table[column][observed[:, j]]).all()
    assert filled.dtypes.to_dict() == table.dtypes.to_dict()


def test_vary_changes_more_with_strength_and_keeps_the_index(fitted_table, table) -> None:
    data = table.dropna().set_axis([f"r{i}" for i in range(len(table.dropna()))])
    change = {}
    for strength in (0.1, 1.0):
        varied = fitted_table.vary(data, strength, seed=3)
        assert list(varied.index) == list(data.index)
        change[strength] = float((varied["x"] - data["x"]).abs().mean())
    assert 0 < change[0.1] < change[1.0] / 2


# ------------------------------------------------------------------ class-conditional


def separated_classes(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose means lie 6 standard deviations apart in 4 dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 3]], dtype=float) * 2
    return centres[y] + rng.standard_normal((n, 4)), np.array(["a", "b", "c"])[y]


def test_class_conditional_samples_are_recognised_by_a_classifier_trained_on_real_data() -> None:
    X, y = separated_classes()
    augmenter = DiffusionAugmenter(**{**TINY, "hidden": 64, "max_epochs": 150, "label_dropout": 0.2}).fit(X, y)
    assert list(augmenter.classes_) == ["a", "b", "c"]
    classifier = LogisticRegression().fit(X, y)
    asked = np.repeat(["a", "b", "c"], 40)
    generated = augmenter.generate(len(asked), asked, seed=0)
    accuracy = (classifier.predict(generated) == asked).mean()
    assert accuracy > 0.8  # chance is 1/3
    # without a label the model draws from the mixture: every class shows up
    assert set(classifier.predict(augmenter.generate(60, seed=0))) == {"a", "b", "c"}


def test_class_conditional_series_windows_follow_their_class() -> None:
    """Two classes of windows, rising and falling: the label reaches the CSDI network's side information."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 96)
    ramp = np.where(y[:, None] == 0, 1.0, -1.0) * np.arange(8) / 8
    X = np.stack([ramp + 0.1 * rng.standard_normal((96, 8)), rng.standard_normal((96, 8))], axis=-1)
    augmenter = DiffusionAugmenter(**{**TINY, "channels": 16, "max_epochs": 60, "learning_rate": 3e-3}).fit(X, y)
    asked = np.repeat([0, 1], 20)
    generated = augmenter.generate(len(asked), asked, seed=0)
    falling = generated[:, -1, 0] < generated[:, 0, 0]
    assert (falling == (asked == 1)).mean() > 0.8  # chance is 1/2


def test_guidance_zero_is_the_unconditional_model_and_one_pass_serves_both() -> None:
    torch.manual_seed(0)
    model = TabularDenoiser(3, hidden=16, n_layers=1, n_classes=2)
    torch.nn.init.normal_(model.output.weight, std=0.5)  # a zero output layer would hide the label
    sampler = make_sampler(NoiseSchedule(10), "ddpm")
    labelled = Windows(torch.zeros(4, 3, 1), torch.ones(4, 3, 1, dtype=torch.bool), torch.zeros(4, 1),
                       label=torch.tensor([0, 1, 0, 1]))
    unlabelled = Windows(labelled.values, labelled.observed, labelled.positions)
    none = torch.zeros(4, 3, 1, dtype=torch.bool)

    def draw(windows, scale):
        return sample(model, sampler, windows, none, 2, generator=torch.Generator().manual_seed(5),
                      guidance_scale=scale).samples

    assert torch.allclose(draw(labelled, 0.0), draw(unlabelled, 1.0), atol=1e-5)
    assert not torch.allclose(draw(labelled, 1.0), draw(unlabelled, 1.0), atol=1e-3)
    assert not torch.allclose(draw(labelled, 3.0), draw(labelled, 1.0), atol=1e-3)


@pytest.mark.parametrize("scale", [-1.0, float("nan"), float("inf"), True, "2"])
def test_guidance_scale_is_checked(scale, fitted_table) -> None:
    with pytest.raises(ValueError, match="guidance_scale"):
        DiffusionAugmenter(guidance_scale=scale).fit(mixed_table())
    with pytest.raises(ValueError, match="guidance_scale"):
        fitted_table.generate(3, guidance_scale=scale)


# ------------------------------------------------------------------ seeds and files


def test_seeded_runs_are_identical_and_independent_of_pass_size(table) -> None:
    first = DiffusionAugmenter(**{**TINY, "max_epochs": 5}).fit(table)
    second = DiffusionAugmenter(**{**TINY, "max_epochs": 5}).fit(table)
    pd.testing.assert_frame_equal(first.generate(30, seed=2), second.generate(30, seed=2))
    assert not first.generate(30, seed=2).equals(first.generate(30, seed=3))
    small_passes = first.set_params(max_cells_per_pass=40).generate(30, seed=2)
    pd.testing.assert_frame_equal(small_passes, second.generate(30, seed=2))


def test_training_is_a_budget_of_steps_under_a_time_cap(table) -> None:
    """With a time budget that does not bind, steps alone decide training, so a seed reproduces
    its model: the budget's clock must not space the checks or drop the learning rate."""
    params = {**TINY, "max_epochs": 1000, "max_steps": 30, "validate_every": 10, "time_budget": 600.0}
    first, second = DiffusionAugmenter(**params).fit(table), DiffusionAugmenter(**params).fit(table)
    assert first.history_.steps == 30 and first.history_.stopped == "max_steps"
    pd.testing.assert_frame_equal(first.generate(20, seed=1), second.generate(20, seed=1))
    with pytest.raises(ValueError, match="validate_every"):
        DiffusionAugmenter(validate_every=0).fit(table)


def test_save_and_load_round_trip(fitted_table, fitted_series, tmp_path) -> None:
    for name, augmenter in (("table", fitted_table), ("series", fitted_series)):
        path = tmp_path / f"{name}.safetensors"
        augmenter.save(path)
        loaded = diffimpute.load(path)
        assert isinstance(loaded, DiffusionAugmenter) and loaded.get_params() == augmenter.get_params()
        before, after = augmenter.generate(20, seed=4), loaded.generate(20, seed=4)
        if name == "table":
            pd.testing.assert_frame_equal(before, after)
        else:
            assert np.array_equal(before, after)


def test_save_and_load_keep_the_classes(tmp_path) -> None:
    X, y = separated_classes(60)
    augmenter = DiffusionAugmenter(**{**TINY, "max_epochs": 2}).fit(X, np.where(y == "a", 7, 9))
    augmenter.save(tmp_path / "c.safetensors")
    loaded = DiffusionAugmenter.load(tmp_path / "c.safetensors")
    assert list(loaded.classes_) == [7, 9] and np.allclose(loaded.class_prior_, augmenter.class_prior_)
    assert np.array_equal(loaded.generate(6, 9, seed=1), augmenter.generate(6, 9, seed=1))


# ------------------------------------------------------------------ bad input


def test_bad_input_gives_clear_errors(fitted_table, table) -> None:
    X, y = separated_classes(60)
    labelled = DiffusionAugmenter(**{**TINY, "max_epochs": 1}).fit(X, y)
    cases = [
        (lambda: fitted_table.generate(0), "n must be an integer >= 1"),
        (lambda: fitted_table.generate(2.5), "n must be an integer >= 1"),
        (lambda: fitted_table.generate(3, y="a"), "fitted without labels"),
        (lambda: labelled.generate(3, y="z"), "labels not seen at fit"),
        (lambda: labelled.generate(3, y=["a", "b"]), "one label or 3 labels"),
        (lambda: fitted_table.vary(table, 1.5), "strength must be"),
        (lambda: fitted_table.vary(table, -0.1), "strength must be"),
        (lambda: fitted_table.vary(table.drop(columns="x"), 0.5), "columns do not match"),
        (lambda: fitted_table.vary(table.to_numpy(), 0.5), "fitted on frame data"),
        (lambda: DiffusionAugmenter(**TINY).fit(X, y[:-1]), "one label per sample"),
        (lambda: DiffusionAugmenter(**TINY).fit(X, np.where(y == "a", None, y)), "missing label"),
        (lambda: DiffusionAugmenter(**TINY).fit(X[:5]), "at least 8"),
        (lambda: DiffusionAugmenter(**TINY).fit(np.zeros((10, 2, 2, 2, 2))), "dimensions"),
        (lambda: DiffusionAugmenter(**TINY, kind="series").fit(table), "DataFrame is a table"),
        (lambda: DiffusionAugmenter(**TINY, kind="cube").fit(X), "kind must be one of"),
        (lambda: DiffusionAugmenter(**TINY, label_dropout=1.0).fit(X), "label_dropout"),
        (lambda: DiffusionAugmenter(**TINY, validation_fraction=1.0).fit(X), "validation_fraction"),
        (lambda: DiffusionAugmenter(**TINY, patience=0).fit(X), "patience must be"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(ValueError, match="entirely missing"):
        DiffusionAugmenter(**TINY).fit(table.assign(x=np.nan))
    with pytest.raises(ValueError, match="infinite"):
        DiffusionAugmenter(**TINY).fit(table.assign(x=np.inf))


def test_unfitted_augmenter_says_so() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DiffusionAugmenter().generate(3)


# ------------------------------------------------------------------ picture and command line


def test_picture_of_real_and_generated_samples(fitted_table, fitted_series, table, tmp_path) -> None:
    for name, real, made in (("table", table, fitted_table.generate(40)),
                             ("series", windows(), fitted_series.generate(4))):
        path = plot_augmentation(real, made, tmp_path / f"{name}.png")
        assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="same form"):
        plot_augmentation(table, windows(), tmp_path / "bad.png")


def test_cli_generates_and_varies_a_labelled_csv(tmp_path) -> None:
    X, y = separated_classes(80)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame.insert(2, "label", y)
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    out, picture = tmp_path / "synthetic.csv", tmp_path / "synthetic.png"
    result = CliRunner().invoke(cli, ["augment", str(data), "-n", "30", "-o", str(out), "--label-column", "label",
                                      "--epochs", "3", "--plot", str(picture), "--quiet"])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert list(written.columns) == list(frame.columns) and len(written) == 30
    assert set(written["label"]) <= {"a", "b", "c"}
    assert picture.read_bytes()[:4] == b"\x89PNG"
    varied = tmp_path / "varied.parquet"
    result = CliRunner().invoke(cli, ["augment", str(data), "-o", str(varied), "--label-column", "label",
                                      "--strength", "0", "--epochs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet(varied), frame)
    bad = CliRunner().invoke(cli, ["augment", str(data), "-o", str(out), "--strength", "2", "--epochs", "1"])
    assert bad.exit_code == 2 and "strength must be" in bad.output


# ------------------------------------------------------------------ images


def test_images_go_through_the_unet_and_come_back_as_images(tmp_path) -> None:
    """Grey (n, h, w) and colour (n, h, w, c) stacks: generated and varied in their own shape and
    dtype, within the observed range, labels learned, strength 0 a copy, save/load identical."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images[:120].astype(np.float32), digits.target[:120]
    augmenter = DiffusionAugmenter(**{**TINY, "max_epochs": 3}, kind="image").fit(images, labels)
    assert augmenter.input_kind_ == "image" and type(augmenter.model_).__name__ == "UNetDenoiser"
    made = augmenter.generate(6, y=3, seed=0)
    assert made.shape == (6, 8, 8) and made.dtype == np.float32
    assert made.min() >= images.min() and made.max() <= images.max()
    assert np.array_equal(augmenter.vary(images[:4], 0.0, y=labels[:4]), images[:4])
    varied = augmenter.vary(images[:4], 0.5, y=labels[:4], seed=0)
    assert varied.shape == (4, 8, 8) and not np.array_equal(varied, images[:4])
    path = tmp_path / "images.safetensors"
    augmenter.save(path)
    assert np.array_equal(diffimpute.load(path).generate(6, y=3, seed=0), made)

    colour = np.random.default_rng(0).uniform(0, 1, (40, 6, 6, 3)).astype(np.float32)
    coloured = DiffusionAugmenter(**{**TINY, "max_epochs": 2}).fit(colour)
    assert coloured.input_kind_ == "image" and coloured.generate(3, seed=0).shape == (3, 6, 6, 3)


def test_fit_time_checks_compare_draws_as_users_get_them() -> None:
    """The held-out checks compared raw draws, whose one-hot channels are continuous, with real rows:
    a classifier told them apart at AUC 1.0 whatever the draws were worth."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.standard_normal(200), "kind": rng.choice(["a", "b", "c"], 200)})
    augmenter = DiffusionAugmenter(**{**TINY, "max_steps": 300}).fit(frame)
    assert augmenter.selection_.chosen["auc"] < 0.9
