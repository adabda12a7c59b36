"""Anomaly baselines: the shared scorer contract, and that each real scorer notices the kind of
anomaly it is there for (a spike, a burst of noise, a broken correlation, a changed rhythm)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from diffimpute.baselines.anomaly import (
    ANOMALY_BASELINES,
    AnomalyScorer,
    FirstDifference,
    PCAReconstruction,
    RandomScorer,
    RollingVariance,
    WindowPCA,
    make_anomaly_baseline,
)

NAMES = sorted(ANOMALY_BASELINES)
WINDOWED = ["pca-window", "rollvar"]
MIXING = np.random.default_rng(42).normal(size=(2, 5))


def _correlated(rng: np.random.Generator, n: int) -> np.ndarray:
    """Five features driven by two latent signals plus a little noise, in mixed units."""
    t = np.arange(n)
    latent = np.column_stack((np.sin(t / 7), np.cos(t / 13))) + 0.1 * rng.normal(size=(n, 2))
    return (latent @ MIXING + 0.05 * rng.normal(size=(n, 5))) * np.array([1, 10, 100, 0.1, 1])


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """On data this small, k-means' OpenMP threads cost more than they give, and on a shared CPU
    their spin-waiting turns milliseconds into seconds."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture
def train() -> np.ndarray:
    return _correlated(np.random.default_rng(0), 600)


# ---------------------------------------------------------------------------- shared contract


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_score_gives_one_value_per_step(name: str, train: np.ndarray) -> None:
    scorer = make_anomaly_baseline(name)
    assert isinstance(scorer, AnomalyScorer)
    assert scorer.fit(train) is scorer
    scores = scorer.score(train[:50])
    assert scores.shape == (50,)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_repeatable(name: str, train: np.ndarray) -> None:
    first = make_anomaly_baseline(name).fit(train).score(train)
    second = make_anomaly_baseline(name).fit(train).score(train)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("name", NAMES)
def test_score_before_fit_raises_not_fitted(name: str, train: np.ndarray) -> None:
    with pytest.raises(NotFittedError):
        make_anomaly_baseline(name).score(train)


@pytest.mark.parametrize("name", NAMES)
def test_clone_keeps_parameters(name: str, train: np.ndarray) -> None:
    scorer = make_anomaly_baseline(name).fit(train)
    copy = clone(scorer)
    assert copy.get_params() == scorer.get_params()
    assert not hasattr(copy, "scaler_")


@pytest.mark.parametrize("name", NAMES)
def test_wrong_feature_count_or_missing_values_raise(name: str, train: np.ndarray) -> None:
    scorer = make_anomaly_baseline(name).fit(train)
    with pytest.raises(ValueError, match="5"):
        scorer.score(train[:, :3])
    with_nan = train.copy()
    with_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        scorer.fit(with_nan)


@pytest.mark.parametrize("name", WINDOWED)
def test_windowed_scorers_give_one_score_per_row_of_a_single_window(
    name: str, train: np.ndarray
) -> None:
    scorer = make_anomaly_baseline(name, window=16).fit(train)
    assert scorer.score(train[:16]).shape == (16,)


@pytest.mark.parametrize("name", WINDOWED)
def test_fewer_rows_than_a_window_raise_naming_the_window(name: str, train: np.ndarray) -> None:
    with pytest.raises(ValueError, match="needs at least 16.*shorter window"):
        make_anomaly_baseline(name, window=16).fit(train[:15])
    scorer = make_anomaly_baseline(name, window=16).fit(train)
    with pytest.raises(ValueError, match="X has 15 rows"):
        scorer.score(train[:15])


@pytest.mark.parametrize("name", WINDOWED)
@pytest.mark.parametrize("window", [0, 1.5, True, "16"])
def test_a_window_that_is_not_a_usable_integer_raises(
    name: str, window: object, train: np.ndarray
) -> None:
    with pytest.raises(ValueError, match="window must be an integer"):
        make_anomaly_baseline(name, window=window).fit(train)


def test_rolling_variance_needs_two_rows_per_window(train: np.ndarray) -> None:
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        RollingVariance(window=1).fit(train)


def test_first_difference_needs_two_rows(train: np.ndarray) -> None:
    scorer = FirstDifference().fit(train)
    with pytest.raises(ValueError, match="needs at least 2"):
        scorer.score(train[:1])


def test_unknown_baseline_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="iforest"):
        make_anomaly_baseline("lstm")


def test_make_anomaly_baseline_passes_parameters() -> None:
    scorer = make_anomaly_baseline("kmeans", n_clusters=3)
    assert scorer.get_params()["n_clusters"] == 3


# ---------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("name", ["pca", "iforest", "kmeans"])
def test_an_injected_spike_scores_above_every_normal_step(name: str, train: np.ndarray) -> None:
    test = _correlated(np.random.default_rng(1), 300)
    spike = 150
    test[spike] += 6 * train.std(axis=0)  # every feature jumps far outside its normal range
    scores = make_anomaly_baseline(name).fit(train).score(test)
    assert scores[spike] > np.delete(scores, spike).max()


def test_random_scorer_ignores_the_data() -> None:
    rng = np.random.default_rng(0)
    scorer = RandomScorer(seed=7).fit(rng.normal(size=(100, 2)))
    assert np.array_equal(scorer.score(np.zeros((40, 2))), scorer.score(np.ones((40, 2))))


def test_pca_keeping_every_component_raises() -> None:
    with pytest.raises(ValueError, match="fewer components"):
        PCAReconstruction(n_components=3).fit(np.random.default_rng(0).normal(size=(50, 3)))


def test_pca_variance_fraction_that_needs_every_feature_keeps_all_but_one() -> None:
    independent = np.random.default_rng(0).normal(size=(200, 3))
    scorer = PCAReconstruction(n_components=0.9).fit(independent)
    assert scorer.pca_.n_components_ == 2
    assert scorer.score(independent).max() > 0


def test_first_difference_scores_a_one_channel_spike_and_its_way_back_above_the_rest(
    train: np.ndarray,
) -> None:
    test = _correlated(np.random.default_rng(1), 300)
    spike = 150
    test[spike, 2] += 6 * train[:, 2].std()  # one feature only: the row-wise mix barely moves
    scores = FirstDifference().fit(train).score(test)
    assert min(scores[spike], scores[spike + 1]) > np.delete(scores, [spike, spike + 1]).max()
    assert scores[0] == scores[1]  # the first step has no predecessor


# a stretch of the test series, and the steps at least half a window (16) away from it
STRETCH = slice(130, 170)
FAR = np.r_[0 : STRETCH.start - 8, STRETCH.stop + 8 : 300]


def test_rolling_variance_scores_a_burst_of_noise_above_every_calm_step(train: np.ndarray) -> None:
    test = _correlated(np.random.default_rng(1), 300)
    noise = np.random.default_rng(2).normal(size=STRETCH.stop - STRETCH.start)
    test[STRETCH, 1] += train[:, 1].std() * noise  # the level stays, the variability jumps
    scores = RollingVariance(window=16).fit(train).score(test)
    assert scores[STRETCH].min() > scores[FAR].max()


def test_window_pca_scores_a_broken_correlation_above_every_normal_step(
    train: np.ndarray,
) -> None:
    test = _correlated(np.random.default_rng(1), 300)
    # feature 3 replays its own values from later on: the same range, no link to the others
    test[STRETCH, 3] = test[200:240, 3]
    scores = WindowPCA(window=16).fit(train).score(test)
    assert scores[STRETCH].min() > scores[FAR].max()


def test_window_pca_sees_a_changed_rhythm_in_a_single_feature() -> None:
    rng = np.random.default_rng(0)
    steps = np.arange(900)
    series = np.sin(2 * np.pi * steps / 25) + 0.05 * rng.normal(size=900)
    fast = slice(600 + STRETCH.start, 600 + STRETCH.stop)  # three times the usual frequency
    series[fast] = np.sin(2 * np.pi * steps[fast] * 3 / 25) + 0.05 * rng.normal(size=40)
    scores = WindowPCA(window=16).fit(series[:600, None]).score(series[600:, None])
    assert scores[STRETCH].min() > scores[FAR].max()
