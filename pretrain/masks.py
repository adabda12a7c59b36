"""Which observed cells pretraining hides: the gaps users meet, one kind per window.

Kinds: scattered points, 8-step patches at any offset, patches plus points (TSPulse's hybrid),
long blocks in a few features, one whole feature missing for a long stretch, and another
window's missing pattern (natural missingness, where the data have any).
"""

from __future__ import annotations

import numpy as np

KINDS = ("points", "patches", "hybrid", "blocks", "feature", "natural")
_WEIGHTS = np.array([0.2, 0.2, 0.2, 0.15, 0.15, 0.1])


def _patches(shape: tuple[int, int], rate: float, size: int, rng: np.random.Generator) -> np.ndarray:
    n_features, length = shape
    hidden = np.zeros(shape, dtype=bool)
    count = max(1, int(rate * length / size))
    for c in range(n_features):
        for start in rng.integers(-size + 1, length, count):
            hidden[c, max(0, start):start + size] = True
    return hidden


def window_targets(observed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(n, features, length)`` bool: the training targets, a subset of ``observed``."""
    n, n_features, length = observed.shape
    targets = np.zeros_like(observed)
    for i in range(n):
        kind = rng.choice(KINDS, p=_WEIGHTS)
        rate = rng.uniform(0.05, 0.8)
        if kind == "points":
            hidden = rng.random((n_features, length)) < rate
        elif kind == "patches":
            hidden = _patches((n_features, length), rate, 8, rng)
        elif kind == "hybrid":
            hidden = _patches((n_features, length), rate / 2, 8, rng) | (rng.random((n_features, length)) < rate / 2)
        elif kind == "blocks":
            hidden = np.zeros((n_features, length), dtype=bool)
            for c in rng.choice(n_features, rng.integers(1, n_features + 1), replace=False):
                size = int(rng.integers(max(2, length // 16), max(3, length // 3)))
                start = rng.integers(0, length - size + 1)
                hidden[c, start:start + size] = True
        elif kind == "feature":
            hidden = np.zeros((n_features, length), dtype=bool)
            size = int(rng.integers(length // 4, length + 1))
            start = rng.integers(0, length - size + 1)
            hidden[rng.integers(0, n_features), start:start + size] = True
        else:
            hidden = ~observed[rng.integers(0, n)] | (rng.random((n_features, length)) < 0.05)
        targets[i] = hidden & observed[i]
        if n_features > 1 and (observed[i] & ~targets[i]).sum() < 2:
            targets[i] = observed[i] & (rng.random((n_features, length)) < 0.5)
    return targets
