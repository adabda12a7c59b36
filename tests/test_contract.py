"""One contract, checked on each of the six estimators (as diffusers' shared scheduler tests do).

Each case is an estimator with a tiny budget and data it accepts; every test below runs on each,
so an estimator that drifts from the shared conventions fails here by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import diffimpute
from diffimpute import (
    DiffusionAugmenter,
    DiffusionImputer,
    ImageInpainter,
    ImDiffusionDetector,
    LatentDiffusionImputer,
    TabularImputer,
)
from diffimpute.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
QUIET = {"verbose": False, "device": "cpu"}


def _series(n: int = 160, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    frame = pd.DataFrame({"a": np.sin(t / 8), "b": np.cos(t / 8), "c": np.sin(t / 8) + 0.1 * rng.normal(size=n)},
                         index=pd.date_range("2024-01-01", periods=n, freq="h"))
    return frame.mask(rng.random(frame.shape) < 0.1)


def _table(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    frame = pd.DataFrame({"x": z, "y": 2 * z + 0.1 * rng.normal(size=n), "w": -z})
    return frame.mask(rng.random(frame.shape) < 0.1)


def _images(n: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.add.outer(np.arange(n) / n, np.add.outer(np.arange(6), np.arange(6)) / 10)
    return np.where(rng.random(images.shape) < 0.2, np.nan, images)


@dataclass
class Case:
    make: Callable[..., object]
    data: Callable[[], object]
    n_features: int
    names: list[str] | None
    numeric_only: bool = True


CASES = {
    "imputer": Case(lambda **p: DiffusionImputer(pretrained=None, max_steps=2, window=16, channels=8, n_heads=2,
                                                 n_layers=1, n_samples=2, **QUIET, **p), _series, 3, ["a", "b", "c"]),
    "latent": Case(lambda **p: LatentDiffusionImputer(max_steps=2, window=16, channels=8, n_heads=2, n_layers=1,
                                                      prior_epochs=1, n_samples=2, **QUIET, **p),
                   _series, 3, ["a", "b", "c"]),
    "tabular": Case(lambda **p: TabularImputer(max_epochs=1, hidden=16, n_layers=1, n_samples=2, **QUIET, **p),
                    _table, 3, ["x", "y", "w"], numeric_only=False),
    "image": Case(lambda **p: ImageInpainter(max_epochs=1, channels=8, n_heads=2, n_samples=2, guess="harmonic",
                                             **QUIET, **p), _images, 36, None),
    "augmenter": Case(lambda **p: DiffusionAugmenter(max_epochs=1, hidden=16, n_layers=1, channels=8, n_heads=2,
                                                     **QUIET, **p), lambda: _table().fillna(0.0), 3, ["x", "y", "w"],
                      numeric_only=False),
    "detector": Case(lambda **p: ImDiffusionDetector(max_steps=2, window=16, n_segments=(2, 4), channels=8,
                                                     n_heads=2, n_layers=1, **QUIET, **p),
                     lambda: _series().interpolate().bfill(), 3, ["a", "b", "c"]),
}


@pytest.fixture(params=list(CASES), scope="module")
def case(request) -> Case:
    return CASES[request.param]


@pytest.fixture(scope="module")
def fitted(case: Case):
    return case.make(random_state=3).fit(case.data())


def test_fit_signature_and_shared_parameters(case: Case) -> None:
    estimator = case.make()
    signature = inspect.signature(estimator.fit)
    assert list(signature.parameters)[:2] == ["X", "y"]
    for name in ("checkpoint", "resume"):
        assert signature.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    defaults = {name: p.default for name, p in inspect.signature(type(estimator).__init__).parameters.items()}
    assert defaults["verbose"] is True and defaults["random_state"] == 0 and defaults["device"] == "auto"
    assert defaults["time_budget"] is None or defaults["time_budget"] > 0
    assert set(clone(estimator).get_params()) == set(estimator.get_params())


def test_fit_returns_self_and_sets_feature_attributes(case: Case, fitted) -> None:
    assert fitted.n_features_in_ == case.n_features
    if case.names is None:
        assert not hasattr(fitted, "feature_names_in_")
    else:
        assert list(fitted.feature_names_in_) == case.names
        assert list(fitted.get_feature_names_out()) == case.names
    assert fitted.seed_ == 3
    assert fitted.set_output(transform="default") is fitted


@pytest.mark.parametrize("random_state", [None, "generator"])
def test_random_state_takes_a_generator_or_none(case: Case, random_state) -> None:
    def seed_of(state) -> int:
        return case.make(random_state=state).fit(case.data()).seed_

    if random_state == "generator":  # drawn from the generator, which advances, as scikit-learn does
        assert seed_of(np.random.default_rng(5)) == np.random.default_rng(5).integers(2**31)
    else:  # a fresh seed each fit
        assert seed_of(None) != seed_of(None)


@pytest.mark.parametrize("bad", [-1, 1.5, "0"])
def test_a_bad_random_state_is_a_clear_error(case: Case, bad) -> None:
    with pytest.raises(ValueError, match="random_state"):
        case.make(random_state=bad).fit(case.data())


def test_save_load_round_trip_says_what_user_data_it_holds(case: Case, fitted, tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    fitted.save(path)
    _, metadata = load_checkpoint(path)
    assert metadata["seed"] == 3 and isinstance(metadata["user_data"], list)
    loaded = type(fitted).load(path)
    assert type(diffimpute.load(path)) is type(fitted)
    assert loaded.get_params() == fitted.get_params() and loaded.seed_ == fitted.seed_
    assert loaded.n_features_in_ == fitted.n_features_in_


def test_checkpoint_and_resume_on_every_fit(case: Case, tmp_path) -> None:
    path = tmp_path / "fit.ckpt"
    case.make().fit(case.data(), checkpoint=path)
    assert path.exists()
    case.make().fit(case.data(), checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="integer random_state"):
        case.make(random_state=None).fit(case.data(), checkpoint=path, resume=True)


def test_training_is_a_budget_of_steps_that_the_clock_only_caps(case: Case) -> None:
    """Every estimator trains for ``max_steps`` optimiser steps when its time budget does not bind,
    whatever its epochs allow: a seed then gives one model on any machine."""
    estimator = case.make().set_params(max_steps=3, max_epochs=1000, time_budget=600.0).fit(case.data())
    assert estimator.history_.steps == 3 and estimator.history_.stopped == "max_steps"


def test_text_where_numbers_belong_is_a_value_error(case: Case) -> None:
    if not case.numeric_only:
        pytest.skip("tables take text columns as categories")
    data = case.data()
    text = np.full(data.shape, "x", dtype=object) if isinstance(data, np.ndarray) else data.assign(a="x")
    with pytest.raises(ValueError):
        case.make().fit(text)
