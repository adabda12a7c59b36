"""Tests for diffimpute.masking.simulate: rate, observed-only hiding, determinism, shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from diffimpute.masking.simulate import (
    block,
    gap_lengths,
    gaps,
    mar,
    mcar,
    mnar,
    parse_mask_spec,
    sequence,
)

MECHANISMS = [mcar, mar, mnar, block, sequence, gaps]


def _data(shape: tuple[int, ...], missing: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=shape)
    X[rng.random(shape) < missing] = np.nan
    return X


@pytest.fixture(scope="module")
def panel() -> np.ndarray:
    return _data((8, 120, 10))


# ----------------------------------------------------------------- shared contract


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_rate_is_achieved(mechanism, rate, panel):
    hide = mechanism(panel, rate, np.random.default_rng(1))
    achieved = hide.sum() / (~np.isnan(panel)).sum()
    # mcar/block/sequence count exactly (up to one block); mar/mnar are Bernoulli draws.
    assert achieved == pytest.approx(rate, abs=0.02)


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=lambda f: f.__name__)
def test_only_observed_entries_are_hidden(mechanism, panel):
    hide = mechanism(panel, 0.3, np.random.default_rng(2))
    assert hide.dtype == np.bool_
    assert hide.shape == panel.shape
    assert not (hide & np.isnan(panel)).any()


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=lambda f: f.__name__)
def test_same_seed_same_mask(mechanism, panel):
    first = mechanism(panel, 0.2, np.random.default_rng(3))
    again = mechanism(panel, 0.2, np.random.default_rng(3))
    other = mechanism(panel, 0.2, np.random.default_rng(4))
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=lambda f: f.__name__)
def test_single_series_matches_shape(mechanism):
    X = _data((200, 6))
    hide = mechanism(X, 0.2, np.random.default_rng(5))
    assert hide.shape == X.shape
    assert hide.sum() / (~np.isnan(X)).sum() == pytest.approx(0.2, abs=0.04)


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=lambda f: f.__name__)
def test_input_is_not_modified(mechanism, panel):
    before = panel.copy()
    mechanism(panel, 0.2, np.random.default_rng(6))
    np.testing.assert_array_equal(before, panel)


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_rate_outside_open_interval_is_rejected(mechanism, rate, panel):
    with pytest.raises(ValueError, match="rate"):
        mechanism(panel, rate, np.random.default_rng(0))


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=lambda f: f.__name__)
def test_bad_inputs_are_rejected(mechanism, panel):
    with pytest.raises(TypeError, match="Generator"):
        mechanism(panel, 0.1, 0)
    with pytest.raises(ValueError, match="shape"):
        mechanism(np.zeros(10), 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no observed"):
        mechanism(np.full((5, 3), np.nan), 0.1, np.random.default_rng(0))


@settings(max_examples=30, deadline=None)
@given(
    n_time=st.integers(1, 30),
    n_features=st.integers(1, 5),
    missing=st.floats(0.0, 0.9),
    rate=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_block_and_mcar_properties(n_time, n_features, missing, rate, seed):
    X = _data((n_time, n_features), missing, seed)
    if np.isnan(X).all():
        return
    n_observed = (~np.isnan(X)).sum()
    for mechanism in (mcar, block, sequence):
        hide = mechanism(X, rate, np.random.default_rng(seed))
        assert not (hide & np.isnan(X)).any()
        if mechanism is mcar:
            assert hide.sum() == round(rate * n_observed)


# ------------------------------------------------------------------- mechanisms


def test_mar_never_hides_drivers_and_depends_on_them():
    X = _data((4000, 2), missing=0.0)
    hide = mar(X, 0.2, np.random.default_rng(7), obs_fraction=0.5)
    hidden_features = np.flatnonzero(hide.any(axis=0))
    assert len(hidden_features) == 1
    target = hidden_features[0]
    driver = 1 - target
    assert hide[:, target].mean() == pytest.approx(0.4, abs=0.03)  # 0.2 overall, one feature
    # A logistic model on a unit-variance driver shifts its mean between hidden/kept rows.
    shift = X[hide[:, target], driver].mean() - X[~hide[:, target], driver].mean()
    assert abs(shift) > 0.3


def test_mar_rejects_impossible_requests():
    X = _data((100, 4), missing=0.0)
    with pytest.raises(ValueError, match="two features"):
        mar(X[:, :1], 0.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-driver"):
        mar(X, 0.9, np.random.default_rng(0), obs_fraction=0.5)
    with pytest.raises(ValueError, match="obs_fraction"):
        mar(X, 0.1, np.random.default_rng(0), obs_fraction=1.0)


def test_mnar_hides_larger_values():
    X = _data((5000, 3), missing=0.05) * np.array([1.0, 10.0, 0.1]) + 50.0
    hide = mnar(X, 0.3, np.random.default_rng(8))
    for f in range(3):
        observed = ~np.isnan(X[:, f])
        assert hide[observed, f].mean() == pytest.approx(0.3, abs=0.03)
        assert X[hide[:, f], f].mean() > X[observed & ~hide[:, f], f].mean()


def test_mnar_without_strength_is_uniform():
    X = _data((20000, 1), missing=0.0)
    hide = mnar(X, 0.3, np.random.default_rng(9), strength=0.0)
    assert X[hide[:, 0], 0].mean() == pytest.approx(X[~hide[:, 0], 0].mean(), abs=0.05)


def test_block_is_a_union_of_whole_rectangles():
    X = _data((3, 100, 8), missing=0.0)
    hide = block(X, 0.3, np.random.default_rng(10), block_len=7, block_width=3)
    for series in hide:
        opened = ndimage.binary_opening(series, structure=np.ones((7, 3), dtype=bool))
        np.testing.assert_array_equal(opened, series)


def test_sequence_is_a_union_of_whole_runs_within_features():
    X = _data((2, 200, 5), missing=0.0)
    hide = sequence(X, 0.2, np.random.default_rng(11), seq_len=12)
    for series in hide:
        opened = ndimage.binary_opening(series, structure=np.ones((12, 1), dtype=bool))
        np.testing.assert_array_equal(opened, series)


def test_block_larger_than_data_is_capped():
    X = _data((5, 2), missing=0.0)
    hide = block(X, 0.5, np.random.default_rng(12), block_len=50, block_width=9)
    assert hide.all()  # the only fitting rectangle is the whole array: closest to 5 of 10


def test_shape_parameters_are_validated():
    X = _data((50, 3))
    with pytest.raises(ValueError, match="block_len"):
        block(X, 0.1, np.random.default_rng(0), block_len=0)
    with pytest.raises(ValueError, match="seq_len"):
        sequence(X, 0.1, np.random.default_rng(0), seq_len=0)


# ---------------------------------------------------------------------- mask specs


@pytest.mark.parametrize(
    ("spec", "mechanism", "rate"),
    [
        ("mcar:0.1", mcar, 0.1),
        ("mar:0.2", mar, 0.2),
        ("mnar:0.3", mnar, 0.3),
        ("block:0.2", block, 0.2),
        (" sequence : 0.1 ", sequence, 0.1),
    ],
)
def test_parse_mask_spec_matches_direct_call(spec, mechanism, rate, panel):
    simulate = parse_mask_spec(spec)
    np.testing.assert_array_equal(
        simulate(panel, np.random.default_rng(13)),
        mechanism(panel, rate, np.random.default_rng(13)),
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("holes:0.1", "unknown mask kind"),
        ("mcar", "invalid mask spec"),
        ("mcar:0.1:3", "invalid mask spec"),
        ("mcar:lots", "not a number"),
        ("mcar:0", "outside"),
        ("block:1.5", "outside"),
    ],
)
def test_parse_mask_spec_errors_name_valid_format(spec, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_mask_spec(spec)
    assert "mcar, mar, mnar, block, sequence" in str(error.value)
    assert "kind:rate" in str(error.value)


# ------------------------------------------------- PyGrinder (a test dependency) as an oracle


def test_mar_matches_pygrinder_rate_on_affected_features():
    pygrinder = pytest.importorskip("pygrinder")
    torch = pytest.importorskip("torch")
    X = _data((1500, 10), missing=0.0)
    np.random.seed(0)
    torch.manual_seed(0)
    theirs = np.isnan(pygrinder.mar_logistic(X, obs_rate=0.3, missing_rate=0.4))
    # PyGrinder's rate is over the 7 non-driver features; ours is over all 10.
    ours = mar(X, 0.4 * 7 / 10, np.random.default_rng(14), obs_fraction=0.3)
    for hide in (theirs, ours):
        affected = hide.any(axis=0)
        assert affected.sum() == 7
        assert hide[:, affected].mean() == pytest.approx(0.4, abs=0.03)


def test_mcar_matches_pygrinder_rate():
    pygrinder = pytest.importorskip("pygrinder")
    X = _data((400, 10), missing=0.0)
    np.random.seed(0)
    theirs = np.isnan(pygrinder.mcar(X, p=0.25)).mean()
    ours = mcar(X, 0.25, np.random.default_rng(15)).mean()
    assert ours == pytest.approx(theirs, abs=0.01)


def test_gaps_copies_each_features_own_gap_lengths() -> None:
    X = np.random.default_rng(0).normal(size=(2000, 2))
    for start in range(100, 1900, 300):
        X[start : start + 7, 0] = np.nan  # feature 0: gaps of 7 rows
        X[start + 50, 1] = np.nan  # feature 1: single missing cells
    hide = gaps(X, 0.03, np.random.default_rng(1))
    assert not (hide & np.isnan(X)).any()
    assert np.median(gap_lengths(hide[:, 0])) == 7
    assert np.median(gap_lengths(hide[:, 1])) == 1
