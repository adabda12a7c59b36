"""The one training loop: it keeps the best validated weights (the untrained ones included), stops
on its step budget, its time budget and on patience, and a seed fixes the run, whatever the clock
says when it has a step budget."""

from __future__ import annotations

import math
import time
import types
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from diffimpute.data.batch import Windows
from diffimpute.engine import trainer
from diffimpute.engine.checkpoint import Checkpointing
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


def _probe_score(model: nn.Module) -> float:
    probe = _windows(16).values[:, 0]
    return float(((model(probe) - 2 * probe) ** 2).mean())


def _dropout_toy() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.2), nn.Linear(16, 8))


def test_a_step_budget_stops_after_exactly_its_steps_and_checks_at_multiples_and_the_last() -> None:
    steps: list[int] = []
    checked_at: list[int] = []
    scores: list[float] = []

    def loss(model, batch, generator, shard):
        steps.append(len(steps))
        return _regression_loss(model, batch, generator, shard)

    def validate(model: nn.Module) -> float:
        checked_at.append(len(steps))
        scores.append(_probe_score(model))
        return scores[-1]

    # 8 batches an epoch: the budget ends mid-epoch, at a step that is no multiple of 18.
    history = train(nn.Linear(8, 8), loss, _windows(), TrainConfig(max_steps=37, check_every_steps=18, batch_size=8),
                    validate=validate, progress=False)
    assert history.stopped == "max_steps" and history.steps == len(steps) == 37 and len(history.train_loss) == 5
    assert checked_at == [0, 18, 36, 37]
    nan = [math.isnan(score) for score in history.val_score]
    assert nan == [True, True, False, True, False]  # an epoch's score is its last check's, if it had one
    assert history.val_score[2] == scores[1] and history.val_score[4] == scores[3]
    epochs_first = train(nn.Linear(8, 8), _regression_loss, _windows(), TrainConfig(max_epochs=2, max_steps=100, batch_size=8),
                         progress=False)
    assert epochs_first.stopped == "max_epochs" and epochs_first.steps == 16
    stale = train(nn.Linear(8, 8), _regression_loss, _windows(),
                  TrainConfig(max_steps=100, check_every_steps=3, batch_size=8, patience=2), validate=lambda m: 1.0,
                  progress=False)
    assert stale.stopped == "early_stopping" and stale.steps == 6  # checks at steps 3 and 6 gain nothing
    with pytest.raises(ValueError, match="check_every_steps must be"):
        TrainConfig(check_every_steps=5)
    with pytest.raises(ValueError, match="max_steps must be"):
        TrainConfig(max_steps=-1)


def test_a_budget_of_zero_steps_scores_the_weights_and_leaves_them() -> None:
    model = nn.Linear(8, 8)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    history = train(model, _regression_loss, _windows(), TrainConfig(max_steps=0, batch_size=8),
                    validate=_probe_score, progress=False)
    assert history.stopped == "max_steps" and history.steps == 0 and history.train_loss == []
    assert history.best_score == history.initial_score == _probe_score(model)
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())


def test_with_a_step_budget_the_clock_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow validation that eats most of a generous time budget: with a clock-driven schedule the
    learning rate would drop and checks would fall elsewhere; with a step budget nothing changes."""
    config = TrainConfig(max_steps=24, batch_size=8, learning_rate=1e-2, time_budget=1000.0, patience=100)
    lag = [0.0]
    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(perf_counter=lambda: time.perf_counter() + lag[0]))

    def run(seconds_per_check: float) -> tuple[nn.Module, dict]:
        def validate(model: nn.Module) -> float:
            lag[0] += seconds_per_check
            return _probe_score(model)

        model = _dropout_toy()
        history = train(model, _regression_loss, _windows(), config, validate=validate, seed=3, progress=False)
        return model, {**history.to_dict(), "seconds": 0}

    fast, fast_history = run(0.0)
    slow, slow_history = run(70.0)  # 13 checks: 910 s of the 1000 s budget, 750 s before step 21
    assert lag[0] > 0.75 * config.time_budget
    assert slow_history == fast_history and slow_history["stopped"] == "max_steps"
    for name, weight in fast.state_dict().items():
        assert torch.equal(slow.state_dict()[name], weight), name


def test_a_time_budget_that_cuts_a_step_budget_short_warns() -> None:
    with pytest.warns(UserWarning, match=r"cut training short at step \d+ of max_steps=1000000.*not reproducible"):
        history = train(nn.Linear(8, 8), _regression_loss, _windows(),
                        TrainConfig(max_epochs=10**6, max_steps=10**6, batch_size=8, time_budget=0.05), progress=False)
    assert history.stopped == "time_budget" and history.steps < 10**6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a time budget alone is no promise of reproducibility: no warning
        timed = train(nn.Linear(8, 8), _regression_loss, _windows(), TrainConfig(max_epochs=10**6, batch_size=8,
                      time_budget=0.05), progress=False)
    assert timed.stopped == "time_budget"


# 8 batches an epoch, checks at steps 5, 10, 15, 20 and 21: killed mid-epoch just after a check, and at an epoch's end.
@pytest.mark.parametrize("crash_at", [15, 16])
def test_a_step_budget_run_resumed_equals_one_never_stopped(tmp_path: Path, crash_at: int) -> None:
    config = TrainConfig(max_steps=21, check_every_steps=5, batch_size=8, learning_rate=1e-2, ema_decay=0.9,
                         patience=100)
    whole = _dropout_toy()
    expected = train(whole, _regression_loss, _windows(), config, validate=_probe_score, progress=False)
    calls = iter(range(10**6))

    def crashing(model, batch, generator, shard):
        if next(calls) == crash_at:
            raise RuntimeError("crash")
        return _regression_loss(model, batch, generator, shard)

    plan = Checkpointing(tmp_path / "run.ckpt", every_epochs=None, every_seconds=1e-9)  # after every batch
    with pytest.raises(RuntimeError, match="crash"):
        train(_dropout_toy(), crashing, _windows(), config, validate=_probe_score, progress=False, checkpoint=plan)
    resumed = _dropout_toy()
    history = train(resumed, _regression_loss, _windows(), config, validate=_probe_score, progress=False,
                    checkpoint=plan, resume=True)
    assert {**history.to_dict(), "seconds": 0} == {**expected.to_dict(), "seconds": 0}
    assert history.steps == 21 and history.stopped == "max_steps"
    for name, weight in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], weight), name
