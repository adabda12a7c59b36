"""Self-supervised training targets: which observed entries the model learns to predict.

During training there is no ground truth for the truly missing entries, so (as in CSDI) a
subset of the *observed* entries is held out as the target and the remaining observed
entries are the conditioning. All functions take ``observed``, a boolean tensor
``(batch, features, length)`` that is True where a value exists, and a ``torch.Generator``
on the same device, and return a boolean ``target`` of the same shape with
``target <= observed``.

Contract shared by every strategy: a window with at least two observed entries gets at
least one target and keeps at least one conditioning entry, so every window contributes to
the loss and the model never learns to impute from nothing. Windows with fewer than two
observed entries get no target. CSDI itself allows empty or all-hidden targets; we avoid
both because they waste a batch slot or teach an unconditional task the imputer never
faces.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

TargetStrategy = Literal["random", "historical", "mix", "gaps"]
_GAP_KINDS = 4  # scattered points, 8-step patches, long blocks, one feature out for a stretch
_PATCH = 8


# ---------------------------------------------------------------------------- helpers


def _check_observed(observed: torch.Tensor) -> None:
    if not isinstance(observed, torch.Tensor) or observed.dtype != torch.bool:
        raise TypeError("observed must be a bool torch.Tensor of shape (batch, features, length)")
    if observed.ndim != 3:
        raise ValueError(
            f"observed must have shape (batch, features, length), got {tuple(observed.shape)}"
        )


def _valid_target(target: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Per window ``(batch,)``: does ``target`` hide at least one, but not every, observed
    entry?"""
    n_target = target.flatten(1).sum(dim=1)
    n_observed = observed.flatten(1).sum(dim=1)
    return (n_target >= 1) & (n_target < n_observed)


# ------------------------------------------------------------------------- strategies


def random_targets(observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Hide a random fraction of each window's observed entries, the fraction itself drawn
    uniformly from [0, 1) per window (CSDI's random strategy).

    Drawing the fraction per window trains the model on every missingness level from
    nearly complete to nearly empty windows. The count ``round(ratio * n_observed)`` is
    clamped to ``[1, n_observed - 1]`` (see the module contract).
    """
    _check_observed(observed)
    batch = observed.shape[0]
    flat = observed.flatten(1)
    n_observed = flat.sum(dim=1)
    ratio = torch.rand(batch, generator=generator, device=observed.device)
    count = torch.round(ratio * n_observed).long()
    count = torch.minimum(torch.clamp(count, min=1), n_observed - 1).clamp(min=0)
    # Random scores with missing entries ranked last: the ``count`` best-scored observed
    # entries of each window become targets.
    scores = torch.rand(flat.shape, generator=generator, device=observed.device)
    scores = scores.masked_fill(~flat, -1.0)
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
    target = (rank < count[:, None]) & flat
    return target.view_as(observed)


def historical_targets(observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Hide the entries that another window of the batch is missing (CSDI's historical
    strategy): ``target = observed & ~observed[partner]``.

    Borrowing real missing patterns teaches the model the gap shapes it will meet at
    inference (long runs, whole features). Partners follow one random cycle through the
    batch, so no window is its own partner when ``batch >= 2``. Windows whose borrowed
    pattern hides nothing or everything (e.g. a fully observed partner) fall back to
    ``random_targets``.
    """
    _check_observed(observed)
    batch = observed.shape[0]
    order = torch.randperm(batch, generator=generator, device=observed.device)
    partner = torch.empty_like(order)
    partner[order] = order.roll(-1)
    borrowed = observed & ~observed[partner]
    fallback = random_targets(observed, generator)
    keep = _valid_target(borrowed, observed)
    return torch.where(keep[:, None, None], borrowed, fallback)


def mix_targets(observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per window, random targets or historical targets with probability one half each
    (CSDI's mix strategy): realistic gap shapes without losing the range of missing
    rates."""
    _check_observed(observed)
    use_random = torch.rand(observed.shape[0], generator=generator, device=observed.device) < 0.5
    random = random_targets(observed, generator)
    historical = historical_targets(observed, generator)
    return torch.where(use_random[:, None, None], random, historical)


def _gap_shape(n_features: int, length: int, generator: torch.Generator, device) -> torch.Tensor:
    """One window's hidden cells ``(features, length)`` of one gap kind, at a random rate."""

    def draw(high: int) -> int:
        return int(torch.randint(0, max(high, 1), (1,), generator=generator, device=device))

    kind = draw(_GAP_KINDS)
    rate = 0.05 + 0.55 * float(torch.rand(1, generator=generator, device=device))
    hidden = torch.zeros(n_features, length, dtype=torch.bool, device=device)
    if kind == 0:
        return torch.rand(n_features, length, generator=generator, device=device) < rate
    if kind == 1:
        count = max(1, round(rate * length / _PATCH))
        starts = torch.randint(-_PATCH + 1, length, (n_features, count), generator=generator, device=device)
        steps = torch.arange(length, device=device)
        covered = (steps >= starts[..., None]) & (steps < starts[..., None] + _PATCH)
        return covered.any(dim=1)
    if kind == 2:
        for feature in range(n_features):
            if float(torch.rand(1, generator=generator, device=device)) < 0.5:
                size = max(2, round(rate * length))
                start = draw(length - size + 1)
                hidden[feature, start:start + size] = True
        return hidden
    size = max(2, round((0.25 + 0.75 * rate) * length))
    start = draw(length - size + 1)
    hidden[draw(n_features), start:start + size] = True
    return hidden


def gap_targets(observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Hide gaps shaped as users meet them, one kind per window: scattered points, 8-step
    patches, long blocks in some features, or one feature missing for a long stretch; each at
    a rate drawn per window. The pretrained denoiser learnt on such gaps (``pretrain/masks.py``),
    so fine-tuning on them keeps it on the task it knows. Windows whose draw hides nothing or
    everything fall back to ``random_targets``."""
    _check_observed(observed)
    batch, n_features, length = observed.shape
    drawn = torch.stack([_gap_shape(n_features, length, generator, observed.device) for _ in range(batch)])
    target = drawn & observed
    keep = _valid_target(target, observed)
    return torch.where(keep[:, None, None], target, random_targets(observed, generator))


# ------------------------------------------------------------------------- public API

_STRATEGIES = {
    "random": random_targets,
    "historical": historical_targets,
    "mix": mix_targets,
    "gaps": gap_targets,
}


def make_targets(
    observed: torch.Tensor, strategy: TargetStrategy, generator: torch.Generator
) -> torch.Tensor:
    """Training targets ``(batch, features, length)`` for the named strategy."""
    if strategy not in _STRATEGIES:
        raise ValueError(
            f"unknown target strategy {strategy!r}; expected one of {', '.join(get_args(TargetStrategy))}"
        )
    return _STRATEGIES[strategy](observed, generator)
