"""What the augmenter measures at ``fit`` on the samples it held out, and the copy guard it sets by it.

Defaults tuned on a few data sets do not carry over to others, so the settings that shape the
samples are chosen on each data set by a measured criterion rather than by constants: after
training, the augmenter draws samples with every candidate guidance scale and keeps the one whose
samples are most useful and least detectable *on the held-out samples* (a forest trained on the
synthetic samples and scored on the held-out ones, TSTR; a forest telling held-out from synthetic
samples, AUC). The same draw then sets the copy guard: a synthetic sample is a copy when it lies
closer to a training sample than ``copy_distance`` (a quantile of the held-out samples' own
distances to the training ones), the smallest quantile that brings the distance-to-closest-record
share down to ``DCR_TARGET``, the bottom of the 0.45-0.55 band around the ideal 0.5.

Everything works on samples as points ``(n, channels * length)`` in the network's standardised
units, so tables, series windows and images are measured alike. Which trained state to keep is
chosen earlier, by the denoising loss on the same held-out samples (``held_out_loss``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from diffimpute.data.batch import Windows
from diffimpute.diffusion.parameterisation import Prediction
from diffimpute.diffusion.schedules import NoiseSchedule
from diffimpute.engine.denoising import denoising_loss
from diffimpute.metrics.synthetic import (
    dcr_share,
    discriminator_auc,
    nearest_distance,
    train_on_synthetic,
)

AUTO_GUIDANCE = (1.0, 1.5, 2.0, 3.0)  # classifier-free guidance scales tried with labels
# Quantiles of the held-out samples' distances to the training ones tried as the copy distance. The
# first always applies: a sample nearer to a training sample than 95 % of unseen real samples get
# is a copy whatever the share says, because the share measured on a few held-out samples is noisy.
COPY_QUANTILES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
DCR_TARGET = 0.45  # the bottom of the 0.45-0.55 band: the share measured on a few held-out samples is noisy
MAX_DRAW = 512  # synthetic samples per candidate: enough for a forest, cheap on a CPU
REDRAWS = 5  # tries to replace a generated copy of a training sample
_MIN_COMPLETE = 10  # held-out samples without gaps the fit-time checks need to use those alone
_VALIDATION_DRAWS = 2048  # (held-out sample, step, noise) triples the held-out loss averages over
_MIN_KEPT = 20  # samples the guard must leave for the share it sets to mean something

# draw(n, labels (n,) class indices or None, guidance scale, seed) -> points (n, dims)
Draw = Callable[[int, np.ndarray | None, float, int], np.ndarray]


def as_points(samples: np.ndarray) -> np.ndarray:
    """Scaled samples ``(n, channels, length)`` -> points ``(n, channels * length)`` float64."""
    return np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)


def complete_samples(windows: Windows) -> Windows:
    """The samples without gaps, where there are ``_MIN_COMPLETE`` of them: a gap holds a
    placeholder (a category's all-zero channels) that no draw has, which a real-vs-synthetic
    classifier or a distance would read as a difference."""
    complete = windows.observed.flatten(1).all(dim=1)
    return windows[complete] if int(complete.sum()) >= _MIN_COMPLETE else windows


def held_out_loss(held: Windows, schedule: NoiseSchedule, prediction: Prediction, seed: int,
                  max_cells_per_pass: int, device: torch.device) -> Callable[[torch.nn.Module], float]:
    """Model selection: a scorer of a model's denoising loss on the ``held`` samples, each at a few
    diffusion steps with noise fixed once, so that every check scores the same problem."""
    repeats = max(1, min(16, _VALIDATION_DRAWS // len(held)))
    batch = held.repeat_each(repeats).to(device)
    steps = torch.randint(0, schedule.n_steps, (len(batch),), generator=torch.Generator().manual_seed(seed)).to(device)
    rows_per_pass = max(1, max_cells_per_pass // (batch.values.shape[1] * batch.values.shape[2]))
    nothing = torch.zeros_like(batch.observed)

    def score(model: torch.nn.Module) -> float:
        noise = torch.Generator(device=device).manual_seed(seed)
        total, cells = 0.0, 0.0
        for rows in torch.arange(len(batch), device=device).split(rows_per_pass):
            part = batch[rows]
            weight = float(part.observed.sum())
            loss = denoising_loss(model, schedule, part, nothing[rows], part.observed, noise, prediction,
                                  steps=steps[rows])
            total, cells = total + float(loss) * weight, cells + weight
        return total / max(cells, 1.0)

    return score


@dataclass(frozen=True)
class FitMeasurement:
    """The settings chosen at ``fit`` and what they measured on the held-out samples.

    ``candidates``: per guidance scale tried, its ``tstr`` (None without labels) and ``auc``;
    ``dcr_share`` with the copy guard at ``copy_distance`` (0: no guard), ``dcr_share_unguarded``
    without it; ``copy_share``: share of the fit-time draw the guard rejected."""

    guidance_scale: float
    candidates: dict[float, dict[str, float | None]]
    copy_distance: float
    dcr_share: float
    dcr_share_unguarded: float
    copy_share: float

    @property
    def chosen(self) -> dict[str, float | None]:
        return self.candidates[self.guidance_scale]

    def to_dict(self) -> dict:
        return {"guidance_scale": self.guidance_scale, "candidates": [[k, v] for k, v in self.candidates.items()],
                "copy_distance": self.copy_distance, "dcr_share": self.dcr_share,
                "dcr_share_unguarded": self.dcr_share_unguarded, "copy_share": self.copy_share}

    @classmethod
    def from_dict(cls, data: dict) -> FitMeasurement:
        return cls(**{**data, "candidates": {float(k): v for k, v in data["candidates"]}})

    def summary(self) -> str:
        """One line for the verbose fit summary."""
        chosen = self.chosen
        tstr = "" if chosen["tstr"] is None else f"TSTR {chosen['tstr']:.3f}, "
        tried = "" if len(self.candidates) == 1 else f" (of {', '.join(f'{k:g}' for k in self.candidates)})"
        return (f"held-out check: guidance {self.guidance_scale:g}{tried}: {tstr}real-vs-synthetic AUC "
                f"{chosen['auc']:.3f}; DCR share {self.dcr_share:.3f} (ideal 0.5; {self.dcr_share_unguarded:.3f} "
                f"before the copy guard, which rejects {self.copy_share:.1%} of draws)")


# ------------------------------------------------------------------------- helpers


def _score(candidate: dict[str, float | None]) -> float:
    """Higher is better: TSTR less half the AUC's excess over 0.5 (only the AUC without labels)."""
    excess = max(candidate["auc"] - 0.5, 0.0)
    return -excess if candidate["tstr"] is None else candidate["tstr"] - 0.5 * excess


def _labels_to_draw(labels: np.ndarray | None, n: int, seed: int) -> np.ndarray | None:
    """``n`` class indices in the training samples' proportions (None without labels)."""
    if labels is None:
        return None
    return np.random.default_rng(seed).choice(labels, size=n, replace=True)


def _copy_guard(synthetic: np.ndarray, train: np.ndarray, held: np.ndarray, seed: int,
                enabled: bool) -> tuple[float, float, float, float]:
    """``(copy_distance, dcr_share, dcr_share_unguarded, copy_share)`` for one draw.

    The smallest quantile of ``COPY_QUANTILES`` whose guard brings the share to ``DCR_TARGET`` (or,
    failing that, the lowest share that leaves ``_MIN_KEPT`` samples to measure); 0 (no guard) when
    ``enabled`` is False. ``generate`` redraws what the guard rejects, so a guard that rejects most
    of a draw costs sampling time, not samples."""
    unguarded = dcr_share(synthetic, train, held, seed)
    if not enabled:
        return 0.0, unguarded, unguarded, 0.0
    to_train = nearest_distance(synthetic, train)
    held_to_train = nearest_distance(held, train)
    best = None
    for quantile in COPY_QUANTILES:
        distance = float(np.quantile(held_to_train, quantile))
        kept = to_train >= distance
        if kept.sum() < _MIN_KEPT:
            break
        share = dcr_share(synthetic[kept], train, held, seed)
        if best is None or share < best[1]:
            best = (distance, share, unguarded, float(1 - kept.mean()))
        if share <= DCR_TARGET:
            break
    return (0.0, unguarded, unguarded, 0.0) if best is None else best


# ------------------------------------------------------------------------- public API


def copies(points: np.ndarray, train: np.ndarray, copy_distance: float) -> np.ndarray:
    """Which ``points`` lie closer than ``copy_distance`` to a training point, ``(n,)`` bool."""
    if copy_distance <= 0:
        return np.zeros(len(points), dtype=bool)
    return nearest_distance(points, train) < copy_distance


def redraw_copies(draws: np.ndarray, train: np.ndarray, copy_distance: float,
                  redraw: Callable[[np.ndarray, int], np.ndarray],
                  to_points: Callable[[np.ndarray], np.ndarray] = as_points) -> np.ndarray:
    """``draws`` (samples, any shape) with every copy of a ``train`` point drawn again by
    ``redraw(rows, attempt)``, up to ``REDRAWS`` times; a sample that stays a copy keeps its draw
    farthest from the training points."""
    distance = nearest_distance(to_points(draws), train)
    for attempt in range(1, REDRAWS + 1):
        again = np.flatnonzero(distance < copy_distance)
        if len(again) == 0:
            break
        redrawn = redraw(again, attempt)
        farther = nearest_distance(to_points(redrawn), train)
        better = farther > distance[again]
        draws[again[better]], distance[again[better]] = redrawn[better], farther[better]
    return draws


def measure(draw: Draw, train: np.ndarray, train_labels: np.ndarray | None, held: np.ndarray,
            held_labels: np.ndarray | None, scales: tuple[float, ...], reject_copies: bool,
            seed: int) -> FitMeasurement:
    """Try every guidance scale in ``scales`` on the held-out samples and set the copy guard.

    train, held: samples as points ``(n, dims)``; ``*_labels``: their class indices (None
    without labels). Each candidate draws the same labels with the same seed."""
    n = max(len(held), min(len(train), MAX_DRAW))
    labels = _labels_to_draw(train_labels, n, seed)
    candidates, draws = {}, {}
    for scale in scales:
        points = draws[scale] = draw(n, labels, scale, seed)
        tstr = None if labels is None else train_on_synthetic(points, labels, held, held_labels, seed)
        auc = discriminator_auc(held, points[:len(held)], seed)
        candidates[float(scale)] = {"tstr": tstr, "auc": auc}
    chosen = max(candidates, key=lambda s: _score(candidates[s]))
    guard = _copy_guard(draws[chosen], train, held, seed, reject_copies)
    return FitMeasurement(chosen, candidates, *guard)
