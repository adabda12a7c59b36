"""Anomaly score stages: cell scores, standardisation, reductions, step ensembles, smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffimpute.metrics.imputation import crps_sample
from diffimpute.postprocess.anomaly_scores import (
    CellStatistics,
    cell_scores,
    combine_steps,
    reduce_features,
    smooth,
    standardise,
)


def test_crps_cells_match_the_metric_and_zscores_divide_by_the_spread() -> None:
    generator = torch.Generator().manual_seed(0)
    draws = torch.randn(3, 16, 2, 5, generator=generator, dtype=torch.float64)
    observed = torch.randn(3, 2, 5, generator=generator, dtype=torch.float64)
    crps = cell_scores(draws, observed, "crps")
    samples = draws.permute(1, 0, 2, 3).numpy()
    for index in np.ndindex(3, 2, 5):
        mask = np.zeros((3, 2, 5), dtype=bool)
        mask[index] = True
        assert float(crps[index]) == pytest.approx(crps_sample(samples, observed.numpy(), mask))
    error = cell_scores(draws, observed, "error")
    torch.testing.assert_close(error, (draws.mean(dim=1) - observed).abs())
    torch.testing.assert_close(cell_scores(draws, observed, "zscore"), error / draws.std(dim=1))
    torch.testing.assert_close(cell_scores(draws[:, :1], observed, "zscore"), cell_scores(draws[:, :1], observed, "error"))


def test_standardise_uses_calibration_statistics_per_step_and_feature() -> None:
    rng = np.random.default_rng(0)
    calibration = rng.normal([1.0, 10.0], [1.0, 5.0], size=(2, 1, 5000, 2))
    stats = CellStatistics.of(calibration)
    z = standardise(calibration, stats)
    np.testing.assert_allclose(z.reshape(2, -1, 2).mean(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(z.reshape(2, -1, 2).std(axis=1), 1, atol=1e-9)


def test_feature_reductions() -> None:
    cells = np.array([[1.0, 5.0, 3.0, 2.0]])
    assert reduce_features(cells, "max")[0] == 5.0
    assert reduce_features(cells, "sum")[0] == 11.0
    assert reduce_features(cells, "topk", top_k=2)[0] == 4.0


def test_step_ensembles_rank_a_point_that_every_step_finds_unusual_highest() -> None:
    rng = np.random.default_rng(1)
    calibration = rng.exponential(size=(3, 2000)) * np.array([[1.0], [2.0], [4.0]])
    steps = rng.exponential(size=(3, 50)) * np.array([[1.0], [2.0], [4.0]])
    steps[:, 20] = [9.0, 18.0, 36.0]
    for how in ("mean", "vote"):
        scores = combine_steps(steps, calibration, how)
        assert scores.argmax() == 20
    votes = combine_steps(steps, calibration, "vote")
    assert votes[20] >= 3 and np.all(votes >= 0)


def test_smoothing_is_a_centred_moving_average() -> None:
    scores = np.zeros(11)
    scores[5] = 3.0
    smoothed = smooth(scores, 3)
    np.testing.assert_allclose(smoothed[4:7], 1.0)
    np.testing.assert_allclose(smoothed[:4], 0.0)
    assert smooth(scores, 1) is scores
