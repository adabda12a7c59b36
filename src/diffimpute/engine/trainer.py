"""The one training loop: every task hands it a model, a loss function and its windows.

A task's loss function ``loss_fn(model, batch, generator, shard) -> scalar`` draws whatever it
needs (targets, diffusion steps, noise) for the whole ``batch`` from ``generator``, so a seed fixes
the whole run, and runs the network on the rows of ``shard`` only: all of them in one process, this
process's share under torchrun (``engine.distributed``). The loop owns what every task shares:
shuffling, AdamW with gradient clipping, learning-rate drops, optional EMA weights, model selection
on a task-supplied validation score, early stopping, a step budget or a wall-clock budget, a
progress bar, distributed data parallelism and checkpoints to resume from.

Step budgets and time budgets: ``max_steps`` counts optimiser steps, so it fixes what a run
computes. The run stops after exactly that many steps (sooner at ``max_epochs`` or by early
stopping), the learning-rate drops (10x at 75 % and again at 90 %) follow the larger of the shares
of steps and of epochs done, and validation checks fall every ``check_every_steps`` steps and at
the last step: one seed gives the same weights on a fast machine and a slow one. A
``time_budget`` alone is wall-clock time: the drops follow the larger of the shares of epochs done
and of the budget spent, so a run cut short still anneals, and checks also fall mid-epoch every
twelfth of the budget, so what a run computes depends on the machine's speed. With both, the time
budget is only a cap, and a run it cuts short warns that its results are not reproducible.

Distributed: every rank shuffles with the same generator, takes the same global batches and draws
the same randomness; each computes its shard and DDP averages the gradients, so N ranks train the
model one rank trains with the same batch size, up to float rounding. Rank 0 validates and reads
the clock, and broadcasts what it found; only rank 0 writes checkpoints.

Resuming: with a ``Checkpointing`` the loop saves all it needs to go on (weights, optimiser
moments, EMA weights, the best weights so far, their score and the patience count, the history,
both generators' states, the epoch's shuffle and how far into it the loop got, the seconds of
training so far); ``resume=True`` restores it and goes on from the next batch, so a run killed and
resumed ends with the weights of a run never stopped. A time budget is wall-clock time, which no
resume replays: the seconds of training are carried over, so the resumed run stops once the budget
is spent in total, but without ``max_steps`` its checks fall at other batches. Dropout draws from
PyTorch's global generator, which the loop seeds from (seed, rank, step) before every step, so a
step's dropout does not depend on what ran before it and ranks draw different masks.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from diffimpute._progress import logger
from diffimpute._progress import progress as progress_bar
from diffimpute.data.batch import Windows
from diffimpute.engine import distributed
from diffimpute.engine.checkpoint import (
    Checkpointing,
    load_optimizer,
    load_training_checkpoint,
    optimizer_tensors,
    run_fingerprint,
    save_training_checkpoint,
)
from diffimpute.engine.distributed import Shard

LossFn = Callable[[nn.Module, Windows, torch.Generator, Shard], torch.Tensor]
ScoreFn = Callable[[nn.Module], float]
StopReason = Literal["max_epochs", "max_steps", "early_stopping", "time_budget", ""]
_CHECKS_PER_BUDGET = 12


@dataclass
class TrainConfig:
    """Optimisation settings; see the estimators' docstrings for what each means to a user.

    time_budget: seconds of training after which the loop stops cleanly and keeps the best model
    (None: no limit); with ``max_steps`` only a cap. validate_every: epochs between validation
    scores, without ``max_steps``. max_steps: optimiser steps to train for, a budget that a seed
    makes reproducible (None: epochs and time decide). check_every_steps: optimiser steps between
    validation checks with ``max_steps`` (None: a twelfth of ``max_steps``).
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
    max_steps: int | None = None
    check_every_steps: int | None = None

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"max_steps must be a number of optimiser steps >= 0 or None, got {self.max_steps}")
        if self.check_every_steps is not None and (self.max_steps is None or self.check_every_steps < 1):
            raise ValueError(f"check_every_steps must be a positive number of steps and needs max_steps, got "
                             f"check_every_steps={self.check_every_steps} with max_steps={self.max_steps}")


@dataclass
class TrainHistory:
    """Per-epoch mean training loss; validation score (lower is better) per epoch, NaN where none.

    ``initial_score`` scores the weights before training; ``best_score`` is the best of every check
    (mid-epoch ones included), the one whose weights were kept; ``best_epoch`` is -1 when no epoch
    beat the initial weights (or there was no validation) and those were kept. ``seconds``: of
    training, summed over a run and its resumptions; ``steps``: optimiser steps, likewise. With
    ``max_steps`` an epoch's validation score is that of its last check.
    """

    train_loss: list[float] = field(default_factory=list)
    val_score: list[float] = field(default_factory=list)
    initial_score: float = math.nan
    best_score: float = math.nan
    best_epoch: int = -1
    seconds: float = 0.0
    stopped: StopReason = ""
    steps: int = 0  # a default, so that histories saved before it was recorded still load

    def to_dict(self) -> dict:
        return {"train_loss": self.train_loss, "val_score": self.val_score, "initial_score": self.initial_score,
                "best_score": self.best_score, "best_epoch": self.best_epoch, "seconds": self.seconds,
                "stopped": self.stopped, "steps": self.steps}


# ---------------------------------------------------------------------------- helpers


class _Selection:
    """Model selection: score the weights now and then, keep the best, count checks without gain.
    Rank 0 scores and broadcasts, so every rank keeps the same weights and stops at the same check."""

    def __init__(self, validate: ScoreFn, scored: nn.Module, history: TrainHistory, device: torch.device) -> None:
        self.validate, self.scored, self.history, self.device = validate, scored, history, device
        self.best_state: dict | None = None
        self.stale = 0

    def check(self, epoch: int) -> float:
        score = math.nan
        if distributed.rank_and_world()[0] == 0:
            self.scored.eval()
            with torch.no_grad():
                score = float(self.validate(self.scored))
        score = distributed.from_main(score, self.device)
        if self.best_state is None or score < self.history.best_score:
            self.history.best_score, self.history.best_epoch = score, epoch
            self.best_state, self.stale = copy.deepcopy(self.scored.state_dict()), 0
        else:
            self.stale += 1
        return score


class _Clock:
    """Seconds of training, carried over a resume; under DDP every rank reads rank 0's clock, so
    decisions taken by the clock (budget, checks, checkpoints, learning rate) agree everywhere."""

    def __init__(self, spent: float, device: torch.device) -> None:
        self.origin, self.device = time.perf_counter() - spent, device

    def now(self) -> float:
        return distributed.from_main(time.perf_counter() - self.origin, self.device)


class _LossModule(nn.Module):
    """The model and its loss as one module, so that DistributedDataParallel sees every use of the
    weights (a loss may call the model's helpers besides ``forward``) inside one forward pass."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: Windows, generator: torch.Generator, shard: Shard) -> torch.Tensor:
        return self.loss_fn(self.model, batch, generator, shard)


@dataclass
class _Position:
    """Where the loop is, in numbers a checkpoint holds. Times are seconds of training."""

    epoch: int = 0  # the epoch under way, or the next one when ``batch`` is 0
    batch: int = 0  # batches of that epoch done
    steps: int = 0  # optimiser steps in all
    total: float = 0.0  # this epoch's loss x windows so far
    count: int = 0  # this epoch's windows so far
    score: float = math.nan  # this epoch's last check, its validation score with a step budget
    last_check: float = 0.0
    last_save: float = 0.0
    spent: float = 0.0
    finished: bool = False


def _lr_factor(progress: float) -> float:
    return 0.01 if progress >= 0.9 else 0.1 if progress >= 0.75 else 1.0


def _progress(config: TrainConfig, epoch: int, steps: int, seconds: float) -> float:
    """The share of the run done, for the learning-rate drops; with a step budget the clock has no say."""
    if config.max_steps is not None:
        return max(epoch / config.max_epochs, steps / config.max_steps)
    return max(epoch / config.max_epochs, seconds / config.time_budget if config.time_budget else 0.0)


def _figure(name: str, value: float) -> dict[str, str]:
    """A validation figure for the progress line, or nothing when there was none (no validation
    data, or no check this epoch): "best nan" would read as a failed model."""
    return {name: f"{value:.4f}"} if math.isfinite(value) else {}


def _seed_dropout(seed: int, rank: int, step: int, device: torch.device) -> None:
    state = int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0])
    torch.default_generator.manual_seed(state)
    if device.type == "cuda":
        torch.cuda.manual_seed(state)


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{name}": t for name, t in tensors.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}


def _fingerprint(checkpoint: Checkpointing, config: TrainConfig, seed: int, desc: str, model: nn.Module,
                 windows: Windows) -> dict[str, str]:
    # The budget is left out: a run may be resumed with more time than it started with.
    settings = {**dataclasses.asdict(config), "time_budget": None, "seed": seed, "desc": desc}
    data = [t for t in (getattr(windows, f.name) for f in dataclasses.fields(windows)) if t is not None]
    return run_fingerprint(settings, model, data, checkpoint.key)


# ---------------------------------------------------------------------------- the loop


class _Loop:
    """One training run: its state, one step, and saving and restoring that state."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, windows: Windows, config: TrainConfig,
                 validate: ScoreFn | None, seed: int, device: torch.device) -> None:
        self.model, self.windows, self.config, self.seed, self.device = model, windows, config, seed, device
        self.rank, self.world = distributed.rank_and_world()
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.order = torch.Generator().manual_seed(seed)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay)) if config.ema_decay else None
        self.history = TrainHistory(stopped="max_epochs")
        scored = self.ema.module if self.ema is not None else model
        self.selection = None if validate is None else _Selection(validate, scored, self.history, device)
        self.step_loss = distributed.wrap(_LossModule(model, loss_fn), device)
        self.at = _Position()
        self.permutation: torch.Tensor | None = None

    def step(self, rows: torch.Tensor, lr: float) -> float:
        """One optimiser step on the global batch ``rows``; returns its loss over the global batch."""
        _seed_dropout(self.seed, self.rank, self.at.steps, self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.windows[rows].to(self.device)
        loss = self.step_loss(batch, self.generator, distributed.shard_of(len(batch), self.rank, self.world))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, self.config.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.at.steps += 1
        return distributed.all_sum(loss.item(), self.device) / self.world

    def save(self, checkpoint: Checkpointing | None, fingerprint: dict[str, str]) -> None:
        """Write the state to ``checkpoint`` (rank 0; every rank holds the same state)."""
        if checkpoint is None or self.rank != 0:
            return
        moments, groups = optimizer_tensors(self.optimizer)
        tensors = {**_prefixed("model.", self.model.state_dict()), **_prefixed("optimizer.", moments),
                   "rng.loss": self.generator.get_state(), "rng.order": self.order.get_state()}
        if self.ema is not None:
            tensors |= _prefixed("ema.", self.ema.state_dict())
        best = None if self.selection is None else self.selection.best_state
        if best is not None:
            tensors |= _prefixed("best.", best)
        if self.at.batch > 0:
            tensors["permutation"] = self.permutation
        stale = 0 if self.selection is None else self.selection.stale
        save_training_checkpoint(checkpoint.path, tensors, {
            "fingerprint": fingerprint, "position": dataclasses.asdict(self.at), "optimizer_groups": groups,
            "history": self.history.to_dict(), "stale": stale})

    def restore(self, path: str | Path, fingerprint: dict[str, str]) -> None:
        tensors, state = load_training_checkpoint(path, fingerprint)
        self.model.load_state_dict(_unprefixed("model.", tensors))
        load_optimizer(self.optimizer, _unprefixed("optimizer.", tensors), state["optimizer_groups"])
        self.generator.set_state(tensors["rng.loss"])
        self.order.set_state(tensors["rng.order"])
        if self.ema is not None:
            self.ema.load_state_dict(_unprefixed("ema.", tensors))
        for name, value in state["history"].items():
            setattr(self.history, name, value)
        if self.selection is not None:
            best = _unprefixed("best.", tensors)
            self.selection.best_state = {name: t.to(self.device) for name, t in best.items()} or None
            self.selection.stale = state["stale"]
        self.at = _Position(**state["position"])
        self.permutation = tensors.get("permutation")


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
    checkpoint: Checkpointing | None = None,
    resume: bool = False,
) -> TrainHistory:
    """Fit ``model`` in place on ``windows``; returns its history.

    With ``validate`` the weights of the best-scoring check are kept, the untrained weights
    included (a task whose untrained model is a sensible estimate, such as a zero residual on a
    first guess, then never ends worse than it started), and early stopping applies; without it
    the final weights are kept. With ``checkpoint`` the state is saved as it says and at the end;
    ``resume=True`` continues from that file when it exists (and starts afresh when it does not).
    """
    device = torch.device(device)
    model.to(device)
    loop = _Loop(model, loss_fn, windows, config, validate, seed, device)
    at, history, selection = loop.at, loop.history, loop.selection
    fingerprint = {} if checkpoint is None else _fingerprint(checkpoint, config, seed, desc, model, windows)
    main = loop.rank == 0
    resuming = resume and checkpoint is not None and Path(checkpoint.path).is_file()
    if resuming:
        loop.restore(checkpoint.path, fingerprint)
        at = loop.at
        if main:
            logger.info("%s: resuming from %s at epoch %d, batch %d", desc, checkpoint.path, at.epoch, at.batch)
    clock = _Clock(at.spent, device)
    if not resuming and selection is not None:
        history.initial_score = selection.check(epoch=-1)  # the untrained weights are a candidate too
    no_steps = config.max_steps == 0  # only the untrained weights are scored (a pretrained model used as is)
    epochs = range(at.epoch, config.max_epochs) if not (at.finished or no_steps) else range(0)
    if no_steps:
        history.stopped = "max_steps"
    bar = progress_bar(epochs, desc=desc, unit="epochs", enabled=progress and main)
    # With a step budget, checks fall at multiples of check_steps; with a time budget alone, also
    # mid-epoch every check_every seconds, so that one long epoch cannot hide the best model.
    by_steps = config.max_steps is not None
    check_steps = (config.check_every_steps or max(1, config.max_steps // _CHECKS_PER_BUDGET)) if by_steps else 0
    check_every = config.time_budget / _CHECKS_PER_BUDGET if config.time_budget else math.inf
    every_seconds = checkpoint.every_seconds if checkpoint is not None and checkpoint.every_seconds else math.inf
    now = clock.now()
    for epoch in bar:
        model.train()
        if at.batch == 0:
            loop.permutation = torch.randperm(len(windows), generator=loop.order)
            at.total, at.count, at.score = 0.0, 0, math.nan
        batches = loop.permutation.split(config.batch_size)
        stop: StopReason = ""
        for index in range(at.batch, len(batches)):
            if config.time_budget is not None and now > config.time_budget:
                stop = "time_budget"
                break
            rows = batches[index]
            loss = loop.step(rows, config.learning_rate * _lr_factor(_progress(config, epoch, at.steps, now)))
            at.total, at.count, at.batch = at.total + loss * len(rows), at.count + len(rows), index + 1
            now = clock.now()
            due = at.steps % check_steps == 0 if by_steps else now - at.last_check > check_every
            if selection is not None and due:
                at.score = selection.check(epoch)
                now = at.last_check = clock.now()
                model.train()
                if by_steps and selection.stale >= config.patience:
                    stop = "early_stopping"
                    break
            if by_steps and at.steps >= config.max_steps:
                stop = "max_steps"
                break
            if now - at.last_save >= every_seconds and index + 1 < len(batches):
                at.spent = at.last_save = now
                loop.save(checkpoint, fingerprint)
        history.train_loss.append(at.total / max(at.count, 1))
        now = clock.now()
        if by_steps:
            if not stop and epoch + 1 < config.max_epochs and config.time_budget is not None and now > config.time_budget:
                stop = "time_budget"
            # Training ends here: its last step is checked unless a multiple of check_steps was.
            if selection is not None and (stop or epoch + 1 == config.max_epochs) and at.steps % check_steps:
                at.score = selection.check(epoch)
                now = at.last_check = clock.now()
            score = at.score
        else:
            # With a budget, an epoch end is checked only if half a check interval has passed, so that
            # short epochs neither spend the budget on validation nor run out of patience in seconds.
            due = now - at.last_check >= check_every / 2 if config.time_budget else True
            epoch_end = ((epoch + 1) % config.validate_every == 0 and due) or epoch + 1 == config.max_epochs or stop != ""
            score = math.nan
            if selection is not None and epoch_end and at.count > 0:
                score = selection.check(epoch)
                now = at.last_check = clock.now()
            if config.time_budget is not None and now > config.time_budget:
                stop = "time_budget"
        history.val_score.append(score)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}", **_figure("val", score))
        at.epoch, at.batch = epoch + 1, 0
        if not stop and selection is not None and selection.stale >= config.patience:
            stop = "early_stopping"
        if stop:
            history.stopped = stop
            if stop == "time_budget" and by_steps and main:
                warnings.warn(f"{desc}: the time budget of {config.time_budget} s cut training short at step "
                              f"{at.steps} of max_steps={config.max_steps}, so its results are not reproducible; "
                              "raise time_budget (or pass None) to train for max_steps", stacklevel=2)
            break
        by_epochs = checkpoint is not None and checkpoint.every_epochs and at.epoch % checkpoint.every_epochs == 0
        if (by_epochs or now - at.last_save >= every_seconds) and at.epoch < config.max_epochs:
            at.spent = at.last_save = now
            loop.save(checkpoint, fingerprint)
    bar.set_postfix(stopped=history.stopped, **_figure("best", history.best_score))
    bar.close()
    if not at.finished:
        history.seconds = at.spent = clock.now()
        history.steps, at.finished = at.steps, True
        loop.save(checkpoint, fingerprint)
    if loop.ema is not None:
        model.load_state_dict(loop.ema.module.state_dict())
    if selection is not None:
        model.load_state_dict(selection.best_state)
    model.eval()
    return history
