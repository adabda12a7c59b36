"""A seeded synthetic suite of multivariate anomalies, one kind at a time (NumPy, no downloads).

Real benchmarks mix kinds of anomaly and label them loosely, so a detector that wins on average
may still miss a whole kind. Here every kind is injected on its own into the same normal data,
so a table can say which kinds a method catches and which it misses.

Normal data: 6 correlated channels mixed (random weights, random units) from 3 shared latent
signals, each a sine of its own period plus AR(1) noise, with small independent noise per
channel. 2,000 training rows, then the next 2,000 rows of the same process as the test series.

Kinds, each injected into one channel at a time (the channel drawn per event):

- ``spike``: 10-20 isolated 1-2 step spikes of 3-6 channel std; what point-wise scorers are for.
- ``level_shift``: 3-4 stretches of 10-35 steps offset by 1.5-3 channel std; a sensor's offset.
- ``noise_burst``: 3-4 stretches of 10-35 steps with added noise of 0.3-0.8 channel std; a
  loose contact. The level is unchanged, so a scorer needs to look at variability.
- ``frequency``: 3-4 stretches of 20-35 steps where the channel's oscillations run 2-4 times
  faster, at their usual amplitude; a changed rhythm that no single row shows.
- ``broken_correlation``: 3-4 stretches of 20-35 steps where the channel follows an independent
  draw of its own process: the same marginal distribution, only its link to the others is
  gone. A scorer of one channel at a time cannot see it.
- ``stuck``: 3-4 stretches of 10-35 steps where the channel holds its last value; every row
  stays in range, only the missing movement gives it away.
- ``obvious``: 4 sine channels (noise 0.05), three 10-step shifts of +2 in one channel; a
  sanity check every useful detector passes (its own training series).

About 1-6 % of each test series is anomalous. Seeds are disjoint between splits, so settings
chosen on ``tune`` are reported on ``report``; each split has 3 series per kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

KINDS = (
    "spike",
    "level_shift",
    "noise_burst",
    "frequency",
    "broken_correlation",
    "stuck",
    "obvious",
)
SEEDS = {"tune": (0, 1, 2), "report": (100, 101, 102)}
N_TRAIN = N_TEST = 2000
N_CHANNELS, N_LATENT = 6, 3
MARGIN = 50  # no anomaly this close to either end of a test series

# A task: training rows of normal data (time, features), and the test series to score with it as
# (name "kind/seed", values (time, features), labels (time,) with 1 = anomalous).
Task = tuple[np.ndarray, list[tuple[str, np.ndarray, np.ndarray]]]

# ---------------------------------------------------------------------------- normal data


@dataclass(frozen=True)
class _Process:
    """The correlated process behind one seed's normal data, kept so that an anomaly can redraw
    part of one channel from it. Arrays cover training and test rows, ``(time, latent)``."""

    phase: np.ndarray  # radians of each latent sine
    ar: np.ndarray  # AR(1) part of each latent signal
    weights: np.ndarray  # (latent, channels) mixing
    scale: np.ndarray  # (channels,) units of each channel

    def channel(self, phase: np.ndarray, ar: np.ndarray, c: int) -> np.ndarray:
        """Channel ``c`` without its independent noise, for latent ``phase`` and ``ar`` rows."""
        return (np.sin(phase) + ar) @ self.weights[:, c] * self.scale[c]


def _ar1(rng: np.random.Generator, n: int, width: int, phi: float = 0.95, std: float = 0.3):
    """``width`` stationary AR(1) paths of ``n`` steps with marginal std ``std``."""
    shocks = rng.normal(scale=std * np.sqrt(1 - phi**2), size=(n, width))
    paths = np.empty((n, width))
    paths[0] = rng.normal(scale=std, size=width)
    for t in range(1, n):
        paths[t] = phi * paths[t - 1] + shocks[t]
    return paths


def _correlated(seed: int) -> tuple[np.ndarray, _Process]:
    """Normal values ``(N_TRAIN + N_TEST, N_CHANNELS)`` and the process that made them."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    periods = rng.uniform(20, 150, size=N_LATENT)
    phase = 2 * np.pi * np.arange(n)[:, None] / periods + rng.uniform(0, 2 * np.pi, N_LATENT)
    process = _Process(
        phase=phase,
        ar=_ar1(rng, n, N_LATENT),
        weights=rng.normal(size=(N_LATENT, N_CHANNELS)),
        scale=rng.lognormal(sigma=1.0, size=N_CHANNELS),
    )
    clean = np.column_stack([process.channel(phase, process.ar, c) for c in range(N_CHANNELS)])
    noise = 0.1 * clean.std(axis=0) * rng.normal(size=clean.shape)
    offset = rng.normal(scale=5.0, size=N_CHANNELS) * process.scale
    return clean + noise + offset, process


# ---------------------------------------------------------------------------- anomalies


def _stretches(rng: np.random.Generator, count: int, lengths: tuple[int, int]) -> list[slice]:
    """``count`` disjoint stretches of the test series, one in each of ``count`` equal parts."""
    edges = np.linspace(MARGIN, N_TEST - MARGIN, count + 1).astype(int)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        start = int(rng.integers(lo, hi - length))
        out.append(slice(start, start + length))
    return out


def _inject(
    kind: str, test: np.ndarray, process: _Process, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``test`` ``(N_TEST, N_CHANNELS)`` with anomalies of ``kind``, and its 0/1 labels."""
    values, labels = test.copy(), np.zeros(N_TEST, dtype=int)
    std = test.std(axis=0)
    if kind == "spike":
        events = _stretches(rng, int(rng.integers(10, 21)), (1, 2))
    elif kind in ("frequency", "broken_correlation"):
        events = _stretches(rng, int(rng.integers(3, 5)), (20, 35))
    else:
        events = _stretches(rng, int(rng.integers(3, 5)), (10, 35))
    for rows in events:
        c, n = int(rng.integers(N_CHANNELS)), rows.stop - rows.start
        sign = rng.choice([-1.0, 1.0])
        at = slice(N_TRAIN + rows.start, N_TRAIN + rows.stop)  # the same rows in the process
        if kind == "spike":
            values[rows, c] += sign * rng.uniform(3, 6) * std[c]
        elif kind == "level_shift":
            values[rows, c] += sign * rng.uniform(1.5, 3) * std[c]
        elif kind == "noise_burst":
            values[rows, c] += rng.normal(scale=rng.uniform(0.3, 0.8) * std[c], size=n)
        elif kind == "frequency":
            start = process.phase[at.start]
            faster = start + rng.uniform(2, 4) * (process.phase[at] - start)
            values[rows, c] += process.channel(faster, process.ar[at], c)
            values[rows, c] -= process.channel(process.phase[at], process.ar[at], c)
        elif kind == "broken_correlation":
            phase = process.phase[at] + rng.uniform(0, 2 * np.pi, N_LATENT)
            values[rows, c] += process.channel(phase, _ar1(rng, n, N_LATENT), c)
            values[rows, c] -= process.channel(process.phase[at], process.ar[at], c)
        elif kind == "stuck":
            values[rows, c] = values[rows.start - 1, c]
        else:
            raise ValueError(f"unknown anomaly kind {kind!r}; choose one of {KINDS}")
        labels[rows] = 1
    return values, labels


# ---------------------------------------------------------------------------- the suite


def correlated_task(seed: int) -> Task:
    """One normal series (seed ``seed``): its training rows and one test series per kind but
    ``obvious``, all from the same clean test rows, so kinds differ only in what was injected."""
    values, process = _correlated(seed)
    clean = values[N_TRAIN:]
    tests = []
    for index, kind in enumerate(KINDS[:-1]):
        test, labels = _inject(kind, clean, process, np.random.default_rng([seed, index]))
        tests.append((f"{kind}/{seed}", test, labels))
    return values[:N_TRAIN], tests


def obvious_task(seed: int) -> Task:
    """4 noisy sines to train on; the next rows with three 10-step +2 shifts in one channel."""
    rng = np.random.default_rng([seed, len(KINDS)])
    t = np.arange(N_TRAIN + N_TEST)[:, None]
    values = np.sin(2 * np.pi * t / rng.uniform(20, 100, 4) + rng.uniform(0, 2 * np.pi, 4))
    values += 0.05 * rng.normal(size=values.shape)
    test, labels = values[N_TRAIN:].copy(), np.zeros(N_TEST, dtype=int)
    channel = int(rng.integers(4))
    for rows in _stretches(rng, 3, (10, 10)):
        test[rows, channel] += 2.0
        labels[rows] = 1
    return values[:N_TRAIN], [(f"obvious/{seed}", test, labels)]


def synthetic(split: Literal["tune", "report", "all"]) -> list[Task]:
    """Every task of ``split``: per seed, the correlated task (six kinds) and the obvious one."""
    seeds = SEEDS["tune"] + SEEDS["report"] if split == "all" else SEEDS[split]
    return [task for seed in seeds for task in (correlated_task(seed), obvious_task(seed))]


def kind_of(name: str) -> str:
    """The kind of a test series from its name ``"kind/seed"``."""
    return name.split("/")[0]
