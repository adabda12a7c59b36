"""Tests for diffimpute.masking.targets: subset of observed, contract, determinism, ratios."""

from __future__ import annotations

import pytest
import torch

from diffimpute.masking.targets import (
    gap_targets,
    historical_targets,
    make_targets,
    mix_targets,
    random_targets,
)

STRATEGIES = {"random": random_targets, "historical": historical_targets, "mix": mix_targets, "gaps": gap_targets}


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _observed(shape: tuple[int, int, int], missing: float, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=_generator(seed)) >= missing


def _feature_gaps(batch: int, n_features: int, length: int) -> torch.Tensor:
    """Window ``i`` misses all of feature ``i % n_features`` and nothing else."""
    observed = torch.ones(batch, n_features, length, dtype=torch.bool)
    observed[torch.arange(batch), torch.arange(batch) % n_features] = False
    return observed


def _is_one_whole_feature(target: torch.Tensor) -> torch.Tensor:
    """Per window: is the target exactly one complete feature row?"""
    full_rows = target.all(dim=2)
    return (full_rows.sum(dim=1) == 1) & (target.sum(dim=(1, 2)) == target.shape[2])


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("missing", [0.0, 0.3, 0.9])
def test_targets_are_observed_and_shaped(strategy, missing):
    observed = _observed((16, 5, 24), missing)
    target = make_targets(observed, strategy, _generator(1))
    assert target.shape == observed.shape
    assert target.dtype == torch.bool
    assert not (target & ~observed).any()


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_window_keeps_targets_and_conditioning(strategy):
    observed = _observed((64, 3, 8), missing=0.5, seed=2)
    observed[0] = False  # nothing observed
    observed[1] = False
    observed[1, 0, 0] = True  # one observed entry
    observed[2] = False
    observed[2, 1, :2] = True  # two observed entries
    observed[3] = True  # complete
    target = make_targets(observed, strategy, _generator(3))
    n_target = target.sum(dim=(1, 2))
    n_observed = observed.sum(dim=(1, 2))
    enough = n_observed >= 2
    assert (n_target[enough] >= 1).all()
    assert (n_target[enough] <= n_observed[enough] - 1).all()
    assert (n_target[~enough] == 0).all()


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_seeded_generator_is_deterministic(strategy):
    observed = _observed((32, 4, 16), missing=0.2)
    first = make_targets(observed, strategy, _generator(4))
    again = make_targets(observed, strategy, _generator(4))
    other = make_targets(observed, strategy, _generator(5))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_random_ratio_is_uniform_per_window():
    observed = torch.ones(4000, 4, 25, dtype=torch.bool)
    target = random_targets(observed, _generator(6))
    ratio = target.float().mean(dim=(1, 2))
    assert ratio.mean().item() == pytest.approx(0.5, abs=0.02)
    quartiles = torch.quantile(ratio, torch.tensor([0.25, 0.5, 0.75]))
    assert torch.allclose(quartiles, torch.tensor([0.25, 0.5, 0.75]), atol=0.03)
    assert ratio.min().item() > 0.0 and ratio.max().item() < 1.0


def test_random_targets_are_spread_over_entries():
    observed = torch.ones(2000, 3, 10, dtype=torch.bool)
    hit_rate = random_targets(observed, _generator(7)).float().mean(dim=0)
    assert torch.allclose(hit_rate, torch.full_like(hit_rate, 0.5), atol=0.05)


def test_historical_borrows_another_windows_gaps():
    observed = _feature_gaps(batch=6, n_features=6, length=10)
    target = historical_targets(observed, _generator(8))
    assert _is_one_whole_feature(target).all()
    borrowed = target.all(dim=2).int().argmax(dim=1)  # the feature each window hides
    assert (borrowed != torch.arange(6)).all()  # never its own gap (it is not observed)
    assert sorted(borrowed.tolist()) == list(range(6))  # each gap lent to exactly one window


def test_historical_falls_back_to_random_without_gaps_to_borrow():
    observed = torch.ones(8, 3, 10, dtype=torch.bool)
    target = historical_targets(observed, _generator(9))
    n_target = target.sum(dim=(1, 2))
    assert ((n_target >= 1) & (n_target < 30)).all()
    assert not _is_one_whole_feature(target).all()
    single = historical_targets(observed[:1], _generator(10))
    assert 1 <= single.sum().item() <= observed[0].sum().item() - 1


def test_mix_uses_both_strategies_about_equally():
    observed = _feature_gaps(batch=800, n_features=8, length=12)
    target = mix_targets(observed, _generator(11))
    historical_share = _is_one_whole_feature(target).float().mean().item()
    # Half the windows go historical; 7/8 of those find a partner with a different gap.
    assert historical_share == pytest.approx(0.5 * 7 / 8, abs=0.06)


def test_gap_targets_hide_runs_not_just_scattered_cells():
    observed = torch.ones(400, 3, 64, dtype=torch.bool)
    target = gap_targets(observed, _generator(5))
    # a hidden cell's right neighbour is hidden far more often than at random
    runs = (target[..., :-1] & target[..., 1:]).sum() / target[..., :-1].sum()
    assert runs > target.float().mean() + 0.3
    whole_stretch = (target.sum(dim=2) >= 16) & (target.sum(dim=1) <= 1).all(dim=1, keepdim=True)
    assert whole_stretch.any()  # some windows lose one feature for a long stretch


def test_unknown_strategy_names_valid_ones():
    observed = _observed((2, 2, 4), missing=0.1)
    with pytest.raises(ValueError, match="random, historical, mix"):
        make_targets(observed, "grating", _generator(0))


def test_bad_observed_is_rejected():
    with pytest.raises(TypeError, match="bool"):
        random_targets(torch.ones(2, 3, 4), _generator(0))
    with pytest.raises(ValueError, match="batch, features, length"):
        random_targets(torch.ones(3, 4, dtype=torch.bool), _generator(0))
