"""The one training loop: it keeps the best validated weights (the untrained ones included), stops
on its time budget and on patience, and a seed fixes the run."""

from __future__ import annotations

import torch
from torch import nn

from diffimpute.data.batch import Windows
from diffimpute.engine.distributed import Shard
from diffimpute.engine.trainer import TrainConfig, train


def _windows(n: int = 64) -> Windows:
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(n, 2, 8, generator=generator)
    return Windows(values, torch.ones_like(values, dtype=torch.bool), torch.arange(8.0).expand(n, 8))


def _regression_loss(model: nn.Module, batch: Windows, generator: torch.Generator, shard: Shard) -> torch.Tensor:
    # Learn to map feature 0 to twice itself: a task with a known answer.
    x = batch.values[shard.rows, 0]
    return shard.mean(((model(x) - 2 * x) ** 2).sum(), batch.values[:, 0].numel())


def test_training_reduces_the_loss_and_keeps_the_best_check() -> None:
    model = nn.Linear(8, 8)
    probe = _windows(16).values[:, 0]
    history = train(model, _regression_loss, _windows(), TrainConfig(max_epochs=30, batch_size=8, learning_rate=1e-2),
                    validate=lambda m: float(((m(probe) - 2 * probe) ** 2).mean()), progress=False)
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]
    assert history.best_epoch >= 0 and min(history.val_score) < history.initial_score


def test_untrained_weights_are_kept_when_no_epoch_beats_them() -> None:
    model = nn.Linear(8, 8)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    calls = iter(range(1000))
    history = train(model, _regression_loss, _windows(), TrainConfig(max_epochs=5, batch_size=8, patience=100),
                    validate=lambda m: float(next(calls)), progress=False)  # every check is worse than the first
    assert history.best_epoch == -1
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items())


def test_patience_and_time_budget_stop_the_run() -> None:
    stale = train(nn.Linear(8, 8), _regression_loss, _windows(), TrainConfig(max_epochs=100, batch_size=8, patience=2),
                  validate=lambda m: 1.0, progress=False)
    assert stale.stopped == "early_stopping" and len(stale.train_loss) == 2
    timed = train(nn.Linear(8, 8), _regression_loss, _windows(), TrainConfig(max_epochs=10**6, batch_size=8, time_budget=0.3),
                  progress=False)
    assert timed.stopped == "time_budget" and timed.seconds < 5


def test_the_same_seed_gives_the_same_weights() -> None:
    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Linear(8, 8)
        train(model, _regression_loss, _windows(), TrainConfig(max_epochs=3, batch_size=8), seed=seed, progress=False)
        return model.weight.detach().clone()

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_the_kept_score_is_the_best_of_every_check_mid_epoch_ones_included() -> None:
    scores: list[float] = []
    probe = _windows(16).values[:, 0]

    def validate(model: nn.Module) -> float:
        scores.append(float(((model(probe) - 2 * probe) ** 2).mean()))
        return scores[-1]

    # Batches of one over many windows: epochs outlast the check interval, so checks run mid-epoch.
    history = train(nn.Linear(8, 8), _regression_loss, _windows(2000),
                    TrainConfig(max_epochs=10**6, batch_size=1, learning_rate=1e-2, time_budget=1.0, patience=10**6),
                    validate=validate, progress=False)
    assert len(scores) > len(history.val_score) + 1  # some checks were mid-epoch
    assert history.best_score == min(scores) and history.initial_score == scores[0]


def test_off_a_terminal_progress_is_one_log_line_per_stage_not_a_bar(caplog, capsys) -> None:
    """CI logs and nohup files get one summary record per training run instead of a tqdm record
    per refresh (pytest's captured stderr is not a terminal)."""
    import logging

    with caplog.at_level(logging.INFO, logger="diffimpute"):
        train(nn.Linear(8, 8), _regression_loss, _windows(), TrainConfig(max_epochs=7, batch_size=8), progress=True,
              desc="training toy")
    records = [r.getMessage() for r in caplog.records if r.name == "diffimpute"]
    assert len(records) == 1 and records[0].startswith("training toy: 7 epochs in ")
    assert "stopped max_epochs" in records[0]
    assert "epochs/s" not in capsys.readouterr().err
