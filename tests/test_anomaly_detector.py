"""ImDiffusionDetector: a client of the engine; anomalies of three kinds score high; other channels
inform the score; every scoring option runs; label-free thresholds that flag about the anomalous
share; short histories; budgets; the pretrained denoiser; persistence; seeds."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from diffimpute.engine import sampling
from diffimpute.tasks import anomaly_scoring
from diffimpute.tasks.anomaly import ImDiffusionDetector
from diffimpute.tasks.anomaly_presets import IMDIFFUSION

TINY = {
    "window": 24, "stride": 12, "n_segments": (2, 6), "train_stride": 2, "channels": 16, "n_layers": 1,
    "n_heads": 2, "max_epochs": 12, "batch_size": 32, "sampling_steps": 5, "n_samples": 2,
    "calibration_fraction": 0.25, "time_budget": None, "device": "cpu",
}
NORMAL = np.r_[12:45, 140:155, 200:228]  # a smoothing window away from the anomalies below and the edges


def seasonal(n_time: int, seed: int) -> np.ndarray:
    """Three features tied to one daily cycle (two in phase, one a quarter turn later) plus small noise."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.arange(n_time) / 24
    clean = np.stack([np.sin(phase), 2 * np.sin(phase), 3 * np.cos(phase)], axis=1)
    return clean + 0.05 * rng.standard_normal((n_time, 3))


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=720, freq="h")
    return pd.DataFrame(seasonal(720, 0), index=index, columns=["a", "b", "c"])


@pytest.fixture(scope="module")
def test_frame(train: pd.DataFrame) -> pd.DataFrame:
    values = seasonal(240, 1)
    values[60, 1] += 4.0  # spike
    values[170:182, 2] += 2.5  # level shift of one feature
    values[100:124, 1] *= -1  # b turns against a: each feature alone still looks normal inside
    index = pd.date_range(train.index[-1] + pd.Timedelta(hours=1), periods=240, freq="h")
    return pd.DataFrame(values, index=index, columns=train.columns)


@pytest.fixture(scope="module")
def detector(train: pd.DataFrame) -> ImDiffusionDetector:
    return ImDiffusionDetector(**TINY).fit(train)


def test_scoring_goes_through_the_engine_sampler(detector: ImDiffusionDetector, test_frame, monkeypatch) -> None:
    calls = []
    original = sampling.sample

    def spy(*args, **kwargs):
        calls.append(kwargs["keep_steps"])
        return original(*args, **kwargs)

    monkeypatch.setattr(anomaly_scoring, "sample", spy)
    detector.cell_scores(test_frame)
    assert calls and all(list(steps) == detector.vote_timesteps() for steps in calls)
    assert detector.history_.train_loss  # trained by engine.train (see test_refinement for the spy)


def test_spike_level_shift_and_changed_correlation_score_above_normal(detector, test_frame) -> None:
    scores = detector.anomaly_score(test_frame)
    assert isinstance(scores, pd.Series) and scores.index.equals(test_frame.index)
    typical = np.quantile(scores.iloc[NORMAL], 0.9)
    assert scores.iloc[60] > typical
    assert scores.iloc[172:180].mean() > typical
    assert scores.iloc[104:120].mean() > typical  # inside the segment: no jump, only the broken relation


@pytest.mark.parametrize(
    "options",
    [
        {"score": "zscore"}, {"score": "crps"}, {"standardise": False}, {"feature_reduction": "sum"},
        {"feature_reduction": "topk", "top_k": 2}, {"ensemble": "vote", "vote_steps": (0, 10, 20), "smoothing": 1},
        {"smoothing": 5}, {"smoothing": (1, 5)}, {"trim_percentile": None},
    ],
)
def test_every_scoring_option_runs_and_still_ranks_the_spike_high(detector, test_frame, options) -> None:
    base = detector.get_params()
    try:
        scores = detector.set_params(**options).anomaly_score(test_frame)
        assert np.isfinite(scores).all() and scores.shape == (240,)
        assert scores.iloc[60] > np.quantile(scores.iloc[NORMAL], 0.9)
    finally:
        detector.set_params(**{k: base[k] for k in options})


def test_thresholds_need_no_labels(detector: ImDiffusionDetector, test_frame: pd.DataFrame) -> None:
    flags = detector.predict(test_frame)
    assert set(np.unique(flags)) <= {0, 1} and flags.index.equals(test_frame.index)
    assert flags.iloc[60] == 1 and flags.iloc[NORMAL].mean() < 0.1
    expected = np.percentile(detector.calibration_scores(), 99.0)
    assert detector.fitted_threshold().threshold_ == pytest.approx(expected)
    for kind in ("pot", "spot"):
        threshold = detector.set_params(threshold=kind, threshold_init_quantile=0.9, threshold_risk=0.01).fitted_threshold()
        assert np.isfinite(threshold.threshold_)
    detector.set_params(threshold="percentile")
    array_flags = detector.predict(test_frame.to_numpy())
    np.testing.assert_array_equal(array_flags, flags.to_numpy())
    assert detector.score_samples(test_frame.to_numpy())[60] < np.median(detector.score_samples(test_frame.to_numpy()))


def test_flags_cover_about_the_anomalous_share(detector: ImDiffusionDetector, test_frame: pd.DataFrame) -> None:
    truth = np.zeros(240, dtype=bool)
    truth[[60]], truth[170:182], truth[100:124] = True, True, True
    flags = detector.predict(test_frame).to_numpy().astype(bool)
    assert flags.mean() <= 3 * truth.mean()
    spread = detector.set_params(trim_percentile=None).predict(test_frame).to_numpy().astype(bool)
    detector.set_params(trim_percentile=95.0)
    assert (spread & ~truth).sum() > (flags & ~truth).sum()  # smoothing spreads flags; trimming takes them back


def correlated(n_time: int, seed: int) -> np.ndarray:
    """Six features mixed from three latent paths (two rhythms and a slow random walk), plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_time)
    latent = np.stack([np.sin(t / 5), np.sin(t / 23), np.cumsum(rng.normal(0, 0.1, n_time))], axis=1)
    return latent @ np.random.default_rng(99).normal(0, 1, (3, 6)) + 0.05 * rng.standard_normal((n_time, 6))


def test_a_shift_that_only_other_channels_reveal_stands_out() -> None:
    """A 20-step shift in one of six correlated features: inside it every feature moves smoothly, so
    only the other features say it is wrong, through the cross-feature guess."""
    test = correlated(400, 1)
    test[200:220, 3] += 1.0 * test[:, 3].std()
    quick = {"channels": 16, "n_layers": 1, "n_heads": 2, "max_steps": 30, "device": "cpu"}
    scores = {guess: ImDiffusionDetector(**quick, guess=guess).fit(correlated(800, 0)).anomaly_score(test)
              for guess in ("cross-feature", "interpolate")}
    inside, normal = scores["cross-feature"][203:217], np.r_[20:180, 240:380]
    assert inside.min() > np.quantile(scores["cross-feature"][normal], 0.99)
    margin = {g: s[203:217].mean() - np.quantile(s[normal], 0.99) for g, s in scores.items()}
    assert margin["cross-feature"] > margin["interpolate"]


def test_the_pretrained_denoiser_scores_a_short_history_without_training(train, test_frame) -> None:
    detector = ImDiffusionDetector(pretrained="default", guess="interpolate", max_steps=0, window=48, device="cpu")
    scores = detector.fit(train.iloc[:240]).anomaly_score(test_frame)
    assert detector.history_.steps == 0 and type(detector.model_).__name__ == "PatchDenoiser"
    assert scores.iloc[60] > np.quantile(scores.iloc[NORMAL], 0.9)


def test_save_load_round_trip(detector: ImDiffusionDetector, test_frame: pd.DataFrame, tmp_path) -> None:
    path = tmp_path / "detector.safetensors"
    detector.save(path)
    loaded = ImDiffusionDetector.load(path)
    assert loaded.get_params() == detector.get_params()
    assert (loaded.window_, loaded.stride_, loaded.n_segments_) == (detector.window_, detector.stride_, detector.n_segments_)
    np.testing.assert_array_equal(loaded.anomaly_score(test_frame), detector.anomaly_score(test_frame))
    np.testing.assert_array_equal(loaded.calibration_scores(), detector.calibration_scores())


def test_saved_without_its_calibration_rows_it_scores_alike_but_holds_no_training_row(
        detector: ImDiffusionDetector, test_frame: pd.DataFrame, tmp_path) -> None:
    from diffimpute.engine.checkpoint import load_checkpoint

    detector.save(tmp_path / "with.dif")
    detector.save(tmp_path / "without.dif", include_data=False)
    tensors, metadata = load_checkpoint(tmp_path / "without.dif")
    assert metadata["user_data"] == [] and not any(name.startswith("calibration.") for name in tensors)
    assert "calibration rows" in load_checkpoint(tmp_path / "with.dif")[1]["user_data"][0]
    loaded = ImDiffusionDetector.load(tmp_path / "without.dif")
    np.testing.assert_array_equal(loaded.anomaly_score(test_frame), detector.anomaly_score(test_frame))
    with pytest.raises(ValueError, match="include_data=False"):
        loaded.set_params(n_samples=detector.n_samples + 1).anomaly_score(test_frame)


def test_seeded_fits_are_identical_and_seeds_differ(train: pd.DataFrame, test_frame: pd.DataFrame) -> None:
    quick = {**TINY, "max_epochs": 2}
    first = ImDiffusionDetector(**quick, random_state=3).fit(train).anomaly_score(test_frame)
    again = ImDiffusionDetector(**quick, random_state=3).fit(train).anomaly_score(test_frame)
    other = ImDiffusionDetector(**quick, random_state=4).fit(train).anomaly_score(test_frame)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_cell_scores_cover_every_cell_once_per_kept_step(detector: ImDiffusionDetector, test_frame) -> None:
    cells = detector.cell_scores(test_frame)
    assert cells.shape == (2, len(detector.vote_timesteps()), 1, 240, 3)  # two mask families
    assert np.isfinite(cells).all() and (cells >= 0).all()
    assert detector.network_passes_per_timestamp() == 2 * 2 * 5 * 2 * 24 / 12


def test_defaults_size_themselves_for_a_short_history() -> None:
    short = pd.DataFrame(seasonal(120, 2), columns=["a", "b", "c"])
    small = {"channels": 8, "n_layers": 1, "n_heads": 2, "max_steps": 5, "device": "cpu"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # default widths stay within the 24 calibration rows
        detector = ImDiffusionDetector(**small).fit(short)
    assert detector.window_ <= 24 and detector.stride_ == detector.window_ // 2  # 20 % of 120 rows calibrate
    assert max(detector._widths()) <= 24 // 8
    assert detector.anomaly_score(short).shape == (120,)
    with pytest.warns(UserWarning, match="smoothing widths"):  # 24 calibration rows for a width-24 smoothing
        ImDiffusionDetector(**small, smoothing=24).fit(short)


def test_time_budget_stops_training(train: pd.DataFrame) -> None:
    detector = ImDiffusionDetector(**{**TINY, "max_epochs": 10_000, "time_budget": 1.0}).fit(train)
    assert detector.history_.stopped == "time_budget" and detector.history_.seconds < 5


def test_the_imdiffusion_settings_run(train: pd.DataFrame, test_frame: pd.DataFrame) -> None:
    faithful = {**IMDIFFUSION, **{k: TINY[k] for k in ("window", "stride", "n_segments", "channels", "n_layers", "n_heads")},
                "max_epochs": 1, "sampler": "ddim", "sampling_steps": 5, "vote_steps": (0, 10, 20), "device": "cpu"}
    scores = ImDiffusionDetector(**faithful).fit(train).anomaly_score(test_frame)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize(
    "params,message",
    [
        ({"ensemble": "median"}, "ensemble"),
        ({"feature_reduction": "mean"}, "feature_reduction"),
        ({"masks": "stripes"}, "masks"),
        ({"train_masks": "grid"}, "train_masks"),
        ({"score": "zscore", "n_samples": 1}, "n_samples"),
        ({"unconditional": True}, "guess='none'"),
        ({"vote_steps": (60,)}, "vote_steps"),
        ({"n_segments": 1}, "n_segments"),
        ({"threshold": "oracle"}, "threshold"),
        ({"time_budget": 0}, "time_budget"),
        ({"smoothing": 0}, "smoothing"),
        ({"smoothing": (1, 0)}, "smoothing"),
        ({"trim_percentile": 100}, "trim_percentile"),
        ({"max_steps": -1}, "max_steps"),
        ({"pretrained": "default"}, "guess='interpolate'"),
        ({"pretrained": "default", "guess": "interpolate", "prediction": "epsilon"}, "diffusion settings"),
    ],
)
def test_bad_parameters_raise(train: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImDiffusionDetector(**{**TINY, **params}).fit(train)


def test_bad_data_raise(detector: ImDiffusionDetector, train: pd.DataFrame, test_frame: pd.DataFrame) -> None:
    gappy = test_frame.copy()
    gappy.iloc[3, 0] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        detector.anomaly_score(gappy)
    with pytest.raises(ValueError, match="columns"):
        detector.anomaly_score(test_frame.rename(columns={"a": "z"}))
    with pytest.raises(ValueError, match="rows"):
        detector.anomaly_score(test_frame.iloc[:10])
    with pytest.raises(ValueError, match="window"):
        ImDiffusionDetector(**TINY).fit(train.iloc[:30])
    with pytest.raises(ValueError, match="rows"):
        ImDiffusionDetector().fit(train.iloc[:8])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ImDiffusionDetector().anomaly_score(train)
