"""The one training loop: every task hands it a model, a loss function and its windows.

A task's loss function ``loss_fn(model, batch, generator) -> scalar`` draws whatever it needs
(targets, diffusion steps, noise) from ``generator``, so a seed fixes the whole run. The loop owns
what every task shares: shuffling, AdamW with gradient clipping, learning-rate drops, optional EMA
weights, model selection on a task-supplied validation score, early stopping, a wall-clock budget
and a progress bar.

Learning-rate drops (10x at 75 % and again at 90 %) follow the run's progress, the larger of the
share of epochs done and the share of the time budget spent, so a run cut short by its budget
still anneals.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from diffimpute._progress import progress as progress_bar
from diffimpute.data.batch import Windows

LossFn = Callable[[nn.Module, Windows, torch.Generator], torch.Tensor]
ScoreFn = Callable[[nn.Module], float]
StopReason = Literal["max_epochs", "early_stopping", "time_budget", ""]
_CHECKS_PER_BUDGET = 12


@dataclass
class TrainConfig:
    """Optimisation settings; see the estimators' docstrings for what each means to a user.

    time_budget: seconds of training after which the loop stops cleanly and keeps the best model
    (None: no limit). validate_every: epochs between validation scores.
    """

    max_epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-6
    grad_clip: float = 1.0
    patience: int = 10
    ema_decay: float | None = None
    time_budget: float | None = None
    validate_every: int = 1


@dataclass
class TrainHistory:
    """Per-epoch mean training loss; validation score (lower is better) per epoch, NaN where none.

    ``initial_score`` scores the weights before training; ``best_score`` is the best of every check
    (mid-epoch ones included), the one whose weights were kept; ``best_epoch`` is -1 when no epoch
    beat the initial weights (or there was no validation) and those were kept.
    """

    train_loss: list[float] = field(default_factory=list)
    val_score: list[float] = field(default_factory=list)
    initial_score: float = math.nan
    best_score: float = math.nan
    best_epoch: int = -1
    seconds: float = 0.0
    stopped: StopReason = ""

    def to_dict(self) -> dict:
        return {"train_loss": self.train_loss, "val_score": self.val_score, "initial_score": self.initial_score,
                "best_score": self.best_score, "best_epoch": self.best_epoch, "seconds": self.seconds, "stopped": self.stopped}


class _Selection:
    """Model selection: score the weights now and then, keep the best, count checks without gain."""

    def __init__(self, validate: ScoreFn, scored: nn.Module, history: TrainHistory) -> None:
        self.validate, self.scored, self.history = validate, scored, history
        self.best_state: dict | None = None
        self.stale = 0

    def check(self, epoch: int) -> float:
        self.scored.eval()
        with torch.no_grad():
            score = float(self.validate(self.scored))
        if self.best_state is None or score < self.history.best_score:
            self.history.best_score, self.history.best_epoch = score, epoch
            self.best_state, self.stale = copy.deepcopy(self.scored.state_dict()), 0
        else:
            self.stale += 1
        return score


def _lr_factor(progress: float) -> float:
    return 0.01 if progress >= 0.9 else 0.1 if progress >= 0.75 else 1.0


def train(
    model: nn.Module,
    loss_fn: LossFn,
    windows: Windows,
    config: TrainConfig,
    *,
    validate: ScoreFn | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "training",
) -> TrainHistory:
    """Fit ``model`` in place on ``windows``; returns its history.

    With ``validate`` the weights of the best-scoring check are kept, the untrained weights
    included (a task whose untrained model is a sensible estimate, such as a zero residual on a
    first guess, then never ends worse than it started), and early stopping applies; without it
    the final weights are kept.
    """
    started = time.perf_counter()
    model.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay)) if config.ema_decay else None
    scored = ema.module if ema is not None else model
    history = TrainHistory(stopped="max_epochs")
    selection = None if validate is None else _Selection(validate, scored, history)
    if selection is not None:
        history.initial_score = selection.check(epoch=-1)  # the untrained weights are a candidate too
    bar = progress_bar(range(config.max_epochs), desc=desc, unit="epochs", enabled=progress)
    # With a budget, validation also runs mid-epoch, so that one long epoch cannot hide the best model.
    check_every = config.time_budget / _CHECKS_PER_BUDGET if config.time_budget else math.inf
    last_check = started
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        out_of_time = False
        for rows in torch.randperm(len(windows), generator=order).split(config.batch_size):
            elapsed = time.perf_counter() - started
            if config.time_budget is not None and elapsed > config.time_budget:
                out_of_time = True
                break
            spent = elapsed / config.time_budget if config.time_budget else 0.0
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * _lr_factor(max(epoch / config.max_epochs, spent))
            batch = windows[rows].to(device)
            loss = loss_fn(model, batch, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            total, count = total + loss.item() * len(batch), count + len(batch)
            if selection is not None and time.perf_counter() - last_check > check_every:
                selection.check(epoch)
                last_check = time.perf_counter()
                model.train()
        history.train_loss.append(total / max(count, 1))
        # With a budget, an epoch end is checked only if half a check interval has passed, so that
        # short epochs neither spend the budget on validation nor run out of patience in seconds.
        due = time.perf_counter() - last_check >= check_every / 2 if config.time_budget else True
        epoch_end = ((epoch + 1) % config.validate_every == 0 and due) or epoch + 1 == config.max_epochs or out_of_time
        score = math.nan
        if selection is not None and epoch_end and count > 0:
            score = selection.check(epoch)
            last_check = time.perf_counter()
        history.val_score.append(score)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", val=f"{score:.4f}")
        if out_of_time or (config.time_budget is not None and time.perf_counter() - started > config.time_budget):
            history.stopped = "time_budget"
            break
        if selection is not None and selection.stale >= config.patience:
            history.stopped = "early_stopping"
            break
    bar.set_postfix(stopped=history.stopped, best=f"{history.best_score:.4f}")
    bar.close()
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    if selection is not None:
        model.load_state_dict(selection.best_state)
    model.eval()
    history.seconds = time.perf_counter() - started
    return history
