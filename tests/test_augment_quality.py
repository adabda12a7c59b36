"""Synthetic-data quality: the metrics, the augmenter's fit-time choice and copy guard, the figures
``fit`` reports and saves, the command line's report, and the page as a browser renders it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from diffimpute import DiffusionAugmenter
from diffimpute.cli.main import cli
from diffimpute.metrics.synthetic import (
    column_shapes,
    dcr_share,
    discriminator_auc,
    nearest_distance,
    pair_trends,
    synthetic_quality,
)
from diffimpute.report.augment_quality import augment_report
from diffimpute.tasks.augment_selection import copies, measure
from tests.conftest import browser_screenshot

TINY = {"hidden": 32, "n_layers": 1, "diffusion_steps": 20, "max_epochs": 30, "batch_size": 32,
        "time_budget": None, "device": "cpu", "verbose": False}


def two_classes(n: int = 160, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two classes apart on ``a`` and ``b``; ``c`` follows ``a``."""
    rng = np.random.default_rng(seed)
    y = rng.choice(["p", "q"], n)
    a = np.where(y == "p", -1.5, 1.5) + 0.6 * rng.standard_normal(n)
    frame = pd.DataFrame({"a": a, "b": -a + 0.5 * rng.standard_normal(n), "c": 0.8 * a + 0.3 * rng.standard_normal(n)})
    return frame, y


@pytest.fixture(scope="module")
def labelled() -> tuple[DiffusionAugmenter, pd.DataFrame, np.ndarray]:
    X, y = two_classes()
    return DiffusionAugmenter(**TINY).fit(X, y), X, y


# ------------------------------------------------------------------ metrics


def test_dcr_share_is_a_half_for_fresh_rows_and_near_one_for_copies() -> None:
    rng = np.random.default_rng(0)
    train, holdout, fresh = rng.standard_normal((400, 4)), rng.standard_normal((100, 4)), rng.standard_normal((300, 4))
    copied = train[:300] + 1e-3 * rng.standard_normal((300, 4))
    assert abs(dcr_share(fresh, train, holdout) - 0.5) < 0.06
    assert dcr_share(copied[:100], train[:100], holdout) > 0.95  # as many training as held-out rows
    # Against 4 times as many training rows, a copy counts only when its row is in the subsample.
    assert dcr_share(copied, train, holdout) > 0.6


def test_discriminator_tells_shifted_rows_apart_only() -> None:
    rng = np.random.default_rng(1)
    real = rng.standard_normal((150, 3))
    assert abs(discriminator_auc(real, rng.standard_normal((150, 3))) - 0.5) < 0.1
    assert discriminator_auc(real, rng.standard_normal((150, 3)) + 1.5) > 0.85


def test_shapes_and_trends_see_a_changed_column_and_a_flipped_correlation() -> None:
    X, _ = two_classes(300)
    changed = X.assign(c=-X["c"] + 5)
    shapes = column_shapes(X, changed)
    assert shapes["a"] == 1.0 and shapes["c"] < 0.2
    trends = pair_trends(X, changed)
    assert trends.loc["a ~ b", "trend"] == pytest.approx(1.0) and trends.loc["a ~ c", "trend"] < 0.2
    assert trends.index[0] in ("a ~ c", "b ~ c")  # worst first


def test_tstr_of_real_rows_matches_trtr_and_labels_shuffled_fall_to_chance() -> None:
    X, y = two_classes(300)
    train, holdout = X.assign(y=y).iloc[:200], X.assign(y=y).iloc[200:]
    same = synthetic_quality(train, train, holdout, target="y")
    assert same.tstr == same.trtr and same.trtr > 0.9
    shuffled = train.assign(y=np.random.default_rng(0).permutation(train["y"].to_numpy()))
    assert synthetic_quality(train, shuffled, holdout, target="y").tstr < 0.7


# ------------------------------------------------------------------ fit-time choice and copy guard


def test_measure_picks_the_scale_whose_samples_carry_the_labels() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    train = np.c_[labels * 3.0 + rng.standard_normal(200), rng.standard_normal(200)]
    held_labels = rng.integers(0, 2, 60)
    held = np.c_[held_labels * 3.0 + rng.standard_normal(60), rng.standard_normal(60)]

    def draw(n, draw_labels, scale, seed):  # only scale 2 puts the classes apart
        noise = np.random.default_rng(seed).standard_normal((n, 2))
        return noise + np.c_[draw_labels * 3.0 * (scale == 2.0), np.zeros(n)]

    chosen = measure(draw, train, labels, held, held_labels, (1.0, 2.0, 3.0), True, 0)
    assert chosen.guidance_scale == 2.0 and chosen.chosen["tstr"] > 0.8
    assert chosen.candidates[1.0]["tstr"] < 0.7


def test_copy_guard_is_set_when_samples_copy_training_rows_and_brings_the_share_down() -> None:
    rng = np.random.default_rng(3)
    train, held = rng.standard_normal((100, 3)), rng.standard_normal((60, 3))

    def copying(n, labels, scale, seed):  # 80 % copies, the rest fresh
        fresh = np.random.default_rng(seed).standard_normal((n, 3))
        fresh[: 4 * n // 5] = train[: 4 * n // 5] + 1e-4
        return fresh

    guarded = measure(copying, train, None, held, None, (1.0,), True, 0)
    assert guarded.dcr_share_unguarded > 0.65 and guarded.copy_distance > 0
    assert guarded.dcr_share < guarded.dcr_share_unguarded - 0.1
    assert copies(train[:5] + 1e-4, train, guarded.copy_distance).all()
    assert measure(copying, train, None, held, None, (1.0,), False, 0).copy_distance == 0.0


def test_fit_reports_what_it_measured_and_generate_keeps_away_from_training_rows(labelled) -> None:
    augmenter, X, _ = labelled
    assert augmenter.guidance_scale_ in augmenter.selection_.candidates and len(augmenter.selection_.candidates) == 4
    assert 0 <= augmenter.dcr_share_ <= 1 and "DCR share" in augmenter.fit_summary()
    assert len(augmenter.held_out_) == int(0.2 * len(X))
    # A guard far out: most fresh draws would be "copies", so generate must redraw them.
    augmenter.copy_distance_, kept = 0.5, augmenter.copy_rows_
    points = augmenter._scaled(augmenter._encode(X)).reshape(len(X), -1)
    augmenter.copy_rows_ = torch.from_numpy(points.astype(np.float32))
    try:
        guarded = augmenter.generate(100, "p", seed=5)
        augmenter.reject_copies = False
        plain = augmenter.generate(100, "p", seed=5)
    finally:
        augmenter.reject_copies, augmenter.copy_rows_, augmenter.copy_distance_ = True, kept, 0.0

    def near(frame):
        return np.mean(nearest_distance(augmenter._scaled(augmenter._encode(frame)).reshape(100, -1), points) < 0.5)
    assert near(guarded) < near(plain) - 0.2


def test_fixed_guidance_is_kept_and_no_hold_out_means_no_measurement() -> None:
    X, y = two_classes(80)
    fixed = DiffusionAugmenter(**{**TINY, "max_epochs": 2, "guidance_scale": 2.5}).fit(X, y)
    assert fixed.guidance_scale_ == 2.5 and list(fixed.selection_.candidates) == [2.5]
    bare = DiffusionAugmenter(**{**TINY, "max_epochs": 2, "validation_fraction": 0.0}).fit(X, y)
    assert bare.selection_ is None and bare.dcr_share_ is None and bare.guidance_scale_ == 1.0
    with pytest.raises(TypeError, match="reject_copies"):
        DiffusionAugmenter(**{**TINY, "reject_copies": "yes"}).fit(X, y)


def test_save_and_load_keep_the_measurement_and_the_guard(labelled, tmp_path) -> None:
    augmenter, X, _ = labelled
    augmenter.copy_distance_ = 0.05
    augmenter.copy_rows_ = torch.zeros((3, 3))
    try:
        augmenter.save(tmp_path / "a.safetensors")
        augmenter.save(tmp_path / "b.safetensors", include_data=False)
    finally:
        augmenter.copy_distance_, augmenter.copy_rows_ = 0.0, None
    loaded = DiffusionAugmenter.load(tmp_path / "a.safetensors")
    assert loaded.selection_ == augmenter.selection_ and loaded.guidance_scale_ == augmenter.guidance_scale_
    assert np.array_equal(loaded.held_out_, augmenter.held_out_) and loaded.copy_distance_ == 0.05
    assert loaded.copy_rows_.shape == (3, 3)
    assert DiffusionAugmenter.load(tmp_path / "b.safetensors").copy_rows_ is None


# ------------------------------------------------------------------ report and command line


def test_report_scores_against_held_out_rows_and_renders(labelled, tmp_path) -> None:
    augmenter, X, y = labelled
    labels = np.where(np.arange(len(X)) % 2, "p", "q")
    synthetic = augmenter.generate(len(X), labels, seed=1).assign(y=labels)
    report = augment_report(augmenter, X.assign(y=y), synthetic, target="y", title="two classes")
    assert report.quality.tstr > 0.8 and f"({len(augmenter.held_out_)} held out)" in report.shape
    html = report.to_html()
    for section in ("summary", "headline", "shapes", "trends", "fit"):
        assert f'id="{section}"' in html
    assert "DCR share" in html and "tstr_over_trtr" in html
    # Held-out rows passed off as synthetic sit on the held-out side, so they must not be training rows.
    held = X.assign(y=y).iloc[augmenter.held_out_]
    assert augment_report(augmenter, X.assign(y=y), held, target="y").quality.dcr_share == 0.0
    pixels = browser_screenshot(report, tmp_path, height=1400)
    assert pixels.std() > 0.05 and (pixels < 0.5).mean() > 0.002  # text and tables drawn, not a blank page


def test_cli_prints_the_figures_and_writes_the_report(tmp_path) -> None:
    X, y = two_classes(100)
    data, out, page = tmp_path / "data.csv", tmp_path / "out.csv", tmp_path / "report.html"
    X.assign(label=y).to_csv(data, index=False)
    result = CliRunner().invoke(cli, ["augment", str(data), "-o", str(out), "--label-column", "label",
                                      "--epochs", "3", "--report", str(page)])
    assert result.exit_code == 0, result.output
    assert "DCR share" in result.output and "balanced accuracy" in result.output
    assert 'id="trends"' in page.read_text()
    np.save(tmp_path / "w.npy", np.zeros((20, 5, 2)))
    bad = CliRunner().invoke(cli, ["augment", str(tmp_path / "w.npy"), "-o", str(tmp_path / "o.npy"),
                                   "--report", str(page)])
    assert bad.exit_code == 2 and "--report scores tables" in bad.output


def test_fit_time_checks_use_the_samples_without_gaps_when_there_are_enough() -> None:
    """A gap holds a placeholder no draw has; measured with it, real rows differ from draws by it."""
    from diffimpute.data.batch import Windows
    from diffimpute.tasks.augment_selection import complete_samples

    values = torch.zeros(30, 2, 1)
    observed = torch.ones(30, 2, 1, dtype=torch.bool)
    observed[::3, 0] = False  # 10 samples with a gap, 20 without
    windows = Windows(values=values, observed=observed, positions=torch.zeros(30, 1))
    assert len(complete_samples(windows)) == 20 and bool(complete_samples(windows).observed.all())
    observed[1::3, 1] = False  # 10 complete samples left: still enough
    assert len(complete_samples(windows)) == 10
    observed[2::3, 1] = False  # none left: every sample, gaps and all
    assert len(complete_samples(windows)) == 30
