"""Contract and behaviour tests for the simple imputation baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from diffimpute.baselines import BASELINES, BaselineImputer, make_baseline

# small, seeded settings so the slow iterative baselines stay fast and deterministic
FAST_PARAMS: dict[str, dict] = {
    "knn": {"n_neighbors": 3},
    "mice": {"max_iter": 5, "random_state": 0},
    "missforest": {"n_estimators": 5, "max_iter": 2, "random_state": 0},
}
ALONG_TIME = ["locf", "nocb", "linear", "time"]

pytestmark = pytest.mark.filterwarnings("ignore:\\[IterativeImputer\\] Early stopping")


def build(name: str) -> BaselineImputer:
    return make_baseline(name, **FAST_PARAMS.get(name, {}))


def correlated(n_rows: int, seed: int) -> np.ndarray:
    """Four features driven by one latent factor, so other features predict a missing one."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_rows, 1))
    return latent * np.array([1.0, -2.0, 0.5, 3.0]) + 0.05 * rng.normal(size=(n_rows, 4))


def with_holes(values: np.ndarray, rate: float, seed: int) -> np.ndarray:
    holes = values.copy()
    holes[np.random.default_rng(seed).random(values.shape) < rate] = np.nan
    return holes


def bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)


@pytest.fixture
def frame() -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=40, freq="h", name="when")
    values = with_holes(correlated(40, seed=1), rate=0.25, seed=2)
    return pd.DataFrame(values, index=index, columns=["temp", "load", "wind", "price"])


# --------------------------------------------------------------------------------------------
# shared contract, every baseline
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_frame_is_filled_with_observed_cells_bit_identical(name: str, frame: pd.DataFrame) -> None:
    before = frame.copy()
    out = build(name).fit_transform(frame)

    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(frame.index) and out.index.name == "when"
    assert list(out.columns) == list(frame.columns)
    assert all(dtype == np.float64 for dtype in out.dtypes)
    assert not out.isna().any().any()
    observed = frame.notna().to_numpy()
    assert np.array_equal(bits(out.to_numpy())[observed], bits(frame.to_numpy())[observed])
    pd.testing.assert_frame_equal(frame, before)  # input untouched


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_array_keeps_shape_and_float32(name: str) -> None:
    values = with_holes(correlated(30, seed=3), rate=0.2, seed=4).astype(np.float32)
    out = build(name).fit_transform(values)

    assert isinstance(out, np.ndarray)
    assert out.shape == values.shape and out.dtype == np.float32
    assert not np.isnan(out).any()
    observed = ~np.isnan(values)
    assert np.array_equal(out.view(np.uint32)[observed], values.view(np.uint32)[observed])


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_panel_keeps_shape_and_observed_cells(name: str) -> None:
    panel = with_holes(correlated(3 * 15, seed=5), rate=0.2, seed=6).reshape(3, 15, 4)
    panel[1, :, 2] = np.nan  # a feature never seen in one series: needs a fallback
    out = build(name).fit_transform(panel)

    assert out.shape == (3, 15, 4)
    assert not np.isnan(out).any()
    observed = ~np.isnan(panel)
    assert np.array_equal(bits(out)[observed], bits(panel)[observed])


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_clone_and_get_params(name: str) -> None:
    params = FAST_PARAMS.get(name, {})
    baseline = make_baseline(name, **params)
    copy = clone(baseline)

    assert type(copy) is BASELINES[name]
    assert copy.get_params() == baseline.get_params()
    assert params.items() <= copy.get_params().items()


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_unfitted_transform_raises(name: str, frame: pd.DataFrame) -> None:
    with pytest.raises(NotFittedError):
        build(name).transform(frame)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_entirely_missing_column_is_named(name: str, frame: pd.DataFrame) -> None:
    frame["wind"] = np.nan
    with pytest.raises(ValueError, match="'wind' entirely missing.*drop"):
        build(name).fit(frame)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_transform_checks_columns_against_fit(name: str, frame: pd.DataFrame) -> None:
    baseline = build(name).fit(frame)
    with pytest.raises(ValueError, match="same columns"):
        baseline.transform(frame[["load", "temp", "wind", "price"]])
    with pytest.raises(ValueError, match="3 features .* fitted with 4"):
        baseline.transform(frame.to_numpy()[:, :3])


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def test_none_and_pd_na_count_as_missing() -> None:
    frame = pd.DataFrame(
        {
            "nullable": pd.array([1.0, pd.NA, 3.0], dtype="Float64"),
            "objects": pd.Series([2.0, None, 4.0], dtype=object),
            "ints": [1, 2, 3],
        }
    )
    out = make_baseline("mean").fit_transform(frame)

    assert out["nullable"].tolist() == [1.0, 2.0, 3.0]
    assert out["objects"].tolist() == [2.0, 3.0, 4.0]
    assert all(dtype == np.float64 for dtype in out.dtypes)


def test_non_numeric_column_is_named() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan], "city": ["Oslo", "Bergen"]})
    with pytest.raises(ValueError, match="'city'.*non-numeric"):
        make_baseline("mean").fit(frame)


def test_wrong_rank_is_rejected() -> None:
    with pytest.raises(ValueError, match="2-D .* or 3-D"):
        make_baseline("mean").fit(np.zeros(5))


# --------------------------------------------------------------------------------------------
# what each baseline fills
# --------------------------------------------------------------------------------------------


def test_mean_and_median_use_fit_statistics() -> None:
    train = np.array([[1.0], [2.0], [9.0]])
    test = np.array([[np.nan]])
    assert make_baseline("mean").fit(train).transform(test)[0, 0] == 4.0
    assert make_baseline("median").fit(train).transform(test)[0, 0] == 2.0


def test_locf_and_nocb_carry_observations() -> None:
    series = np.array([[np.nan], [1.0], [np.nan], [np.nan], [4.0], [np.nan]])
    locf = make_baseline("locf").fit_transform(series)[:, 0]
    nocb = make_baseline("nocb").fit_transform(series)[:, 0]
    assert locf.tolist() == [1.0, 1.0, 1.0, 1.0, 4.0, 4.0]
    assert nocb.tolist() == [1.0, 1.0, 4.0, 4.0, 4.0, 4.0]


def test_along_time_never_crosses_series() -> None:
    panel = np.array([[[5.0], [5.0]], [[np.nan], [9.0]]])  # (series=2, time=2, features=1)
    for name in ALONG_TIME:
        assert make_baseline(name).fit_transform(panel)[1, 0, 0] == 9.0, name


def test_along_time_falls_back_to_fit_mean_for_a_series_without_observations() -> None:
    panel = np.array([[[1.0], [3.0]], [[np.nan], [np.nan]]])
    for name in ALONG_TIME:
        assert make_baseline(name).fit_transform(panel)[1].ravel().tolist() == [2.0, 2.0], name


def test_linear_interpolation_is_exact_on_a_line() -> None:
    line = 2.0 * np.arange(12.0) + 1.0
    holes = line.copy()
    holes[[0, 3, 4, 5, 8, 11]] = np.nan
    out = make_baseline("linear").fit_transform(holes[:, None])[:, 0]

    interior = [3, 4, 5, 8]
    np.testing.assert_allclose(out[interior], line[interior])
    assert out[0] == line[1] and out[11] == line[10]  # edges take the nearest observation


def test_time_interpolation_weights_by_timestamps() -> None:
    index = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-05", "2024-01-06"])
    frame = pd.DataFrame({"x": [0.0, np.nan, np.nan, 5.0]}, index=index)
    by_time = make_baseline("time").fit_transform(frame)["x"]
    by_step = make_baseline("linear").fit_transform(frame)["x"]

    np.testing.assert_allclose(by_time.to_numpy(), [0.0, 1.0, 4.0, 5.0])
    np.testing.assert_allclose(by_step.to_numpy(), [0.0, 5 / 3, 10 / 3, 5.0])


@pytest.mark.parametrize("name", ["knn", "mice", "missforest"])
def test_multivariate_baselines_beat_mean_on_correlated_data(name: str) -> None:
    truth = correlated(200, seed=7)
    holes = with_holes(truth, rate=0.2, seed=8)
    missing = np.isnan(holes)

    def rmse(baseline: BaselineImputer) -> float:
        filled = baseline.fit_transform(holes)
        return float(np.sqrt(np.mean((filled[missing] - truth[missing]) ** 2)))

    assert rmse(build(name)) < 0.5 * rmse(make_baseline("mean"))


def test_knn_distance_ignores_feature_units() -> None:
    # feature 0 in large units is pure noise; feature 1 decides who the neighbours of row 2 are
    # raw distances would pick row 0 (noise 30 away) over row 1 (noise 70 away)
    frame = pd.DataFrame(
        {"noise": [0.0, 100.0, 30.0], "signal": [0.0, 1.0, 1.0], "y": [5.0, 7.0, np.nan]}
    )
    out = make_baseline("knn", n_neighbors=1).fit_transform(frame)
    assert out.loc[2, "y"] == 7.0


def test_mice_sample_posterior_varies_with_seed() -> None:
    holes = with_holes(correlated(60, seed=9), rate=0.2, seed=10)
    draws = [
        make_baseline("mice", sample_posterior=True, random_state=seed).fit_transform(holes)
        for seed in (0, 1)
    ]
    assert not np.array_equal(draws[0], draws[1])
    assert make_baseline("mice").get_params()["sample_posterior"] is False


def test_missforest_random_forest_option_and_bad_forest() -> None:
    holes = with_holes(correlated(40, seed=11), rate=0.2, seed=12)
    forest = make_baseline("missforest", forest="random_forest", n_estimators=3, random_state=0)
    assert not np.isnan(forest.fit_transform(holes)).any()
    with pytest.raises(ValueError, match=r"'extra_trees', 'random_forest'.*'boosting'"):
        make_baseline("missforest", forest="boosting").fit(holes)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown baseline 'arima'.*'knn'.*'missforest'"):
        make_baseline("arima")


def test_registry_names() -> None:
    expected = {"mean", "median", "locf", "nocb", "linear", "time", "knn", "mice", "missforest"}
    assert set(BASELINES) == expected
    assert all(issubclass(cls, BaselineImputer) for cls in BASELINES.values())


def test_iterative_baselines_do_not_warn_that_their_fixed_rounds_did_not_converge() -> None:
    """A report or evaluation printed sklearn's '[IterativeImputer] Early stopping criterion not reached.'"""
    import warnings

    from diffimpute.baselines.imputation import MICEBaseline

    rng = np.random.default_rng(0)
    t = rng.normal(size=60)
    values = np.c_[t, 2 * t + 0.1 * rng.normal(size=60), 0.1 * rng.normal(size=60) - t, rng.normal(size=60)]
    values[rng.random(values.shape) < 0.4] = np.nan  # strongly related columns: 10 rounds do not settle
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MICEBaseline().fit(values)
