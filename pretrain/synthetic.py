"""Synthetic multivariate series for pretraining: Gaussian-process paths mixed into channels.

The idea follows KernelSynth (Ansari et al. 2024, arXiv 2403.07815): draw a random kernel by
combining a few base kernels with + and x, then draw paths from the Gaussian process it defines.
On top of that, and our own, channels are built from a few *shared* latent paths, each channel
with its own weights, lags and noise, so that the network learns to borrow across features; then
trends, level shifts, flat-lined stretches (a stuck sensor still reports a value) and dead
stretches (NaN: the sensor sent nothing) are added.

``LatentBank`` draws the GP paths once (the Cholesky factorisations are the expensive part) and
caches them; ``synthetic_batch`` mixes fresh channels from them for every training step.
All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PATH_LENGTH = 512 + 64  # room for lags
# Periods in steps: hourly data (day, half-day, week), daily data (week, month, year), minutes, etc.
PERIODS = (4, 6, 7, 8, 12, 14, 24, 30, 48, 52, 60, 96, 168, 288, 336, 365)


# ------------------------------------------------------------------------- kernels


def _base_kernel(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One base kernel's Gram matrix over times ``t`` (steps), with random hyper-parameters."""
    d = t[:, None] - t[None, :]
    kind = rng.choice(["periodic", "periodic", "periodic", "rbf", "rq", "linear", "white", "constant"])
    if kind == "periodic":
        period = float(rng.choice(PERIODS)) * rng.uniform(0.97, 1.03)
        smooth = rng.choice([0.5, 1.0, 2.0])
        return np.exp(-2 * np.sin(np.pi * np.abs(d) / period) ** 2 / smooth**2)
    if kind == "rbf":
        scale = float(rng.choice([3, 10, 30, 100, 300]))
        return np.exp(-(d**2) / (2 * scale**2))
    if kind == "rq":
        scale, alpha = float(rng.choice([5, 20, 80, 300])), float(rng.choice([0.1, 1.0, 10.0]))
        return (1 + d**2 / (2 * alpha * scale**2)) ** (-alpha)
    if kind == "linear":
        centred = (t - rng.uniform(0, len(t))) / len(t)
        return np.outer(centred, centred) + 0.1
    if kind == "white":
        return np.eye(len(t)) * rng.uniform(0.01, 0.3)
    return np.full((len(t), len(t)), rng.uniform(0.1, 1.0))


def random_kernel(t: np.ndarray, rng: np.random.Generator, max_parts: int = 4) -> np.ndarray:
    """A kernel made of 1 to ``max_parts`` base kernels joined by + or x, as KernelSynth does."""
    kernel = _base_kernel(t, rng)
    for _ in range(rng.integers(0, max_parts)):
        other = _base_kernel(t, rng)
        kernel = kernel + other if rng.random() < 0.6 else kernel * other
    return kernel


def gp_paths(kernel: np.ndarray, n_paths: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_paths, len)`` zero-mean draws from the GP with Gram matrix ``kernel``, standardised."""
    jitter = 1e-6 * np.trace(kernel) / len(kernel)
    for _ in range(6):
        try:
            factor = np.linalg.cholesky(kernel + jitter * np.eye(len(kernel)))
            break
        except np.linalg.LinAlgError:
            jitter *= 10
    else:
        eigen, vectors = np.linalg.eigh(kernel)
        factor = vectors * np.sqrt(np.clip(eigen, 0, None))
    paths = (factor @ rng.standard_normal((len(kernel), n_paths))).T
    paths -= paths.mean(axis=1, keepdims=True)
    return paths / np.maximum(paths.std(axis=1, keepdims=True), 1e-6)


class LatentBank:
    """``(n_kernels * paths_per_kernel, PATH_LENGTH)`` float32 GP paths, drawn once and cached."""

    def __init__(self, paths: np.ndarray) -> None:
        self.paths = paths

    @classmethod
    def build(cls, n_kernels: int, paths_per_kernel: int, seed: int, cache: Path | None = None) -> LatentBank:
        if cache is not None and cache.is_file():
            return cls(np.load(cache))
        rng = np.random.default_rng(seed)
        t = np.arange(PATH_LENGTH, dtype=np.float64)
        paths = np.concatenate([gp_paths(random_kernel(t, rng), paths_per_kernel, rng) for _ in range(n_kernels)])
        paths = paths.astype(np.float32)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, paths)
        return cls(paths)

    def draw(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, length + 64)`` random crops of random paths (the extra steps feed the lags)."""
        rows = rng.integers(0, len(self.paths), n)
        starts = rng.integers(0, PATH_LENGTH - (length + 64) + 1, n)
        return np.stack([self.paths[r, s:s + length + 64] for r, s in zip(rows, starts)])


# ------------------------------------------------------------------------- channels


def _mixed_channels(bank: LatentBank, n_features: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``(features, length)``: each channel a weighted, lagged sum of shared latents plus its own path."""
    n_latent = int(rng.integers(1, 5))
    latents = bank.draw(n_latent, length, rng)
    own = bank.draw(n_features, length, rng)[:, 32:32 + length]
    weights = rng.normal(0, 1, (n_features, n_latent)) * (rng.random((n_features, n_latent)) < 0.7)
    lags = rng.integers(-12, 13, (n_features, n_latent)) * (rng.random((n_features, n_latent)) < 0.3)
    shared = np.zeros((n_features, length))
    for c in range(n_features):
        for j in range(n_latent):
            start = 32 + lags[c, j]
            shared[c] += weights[c, j] * latents[j, start:start + length]
    own_share = rng.uniform(0.0, 1.0, (n_features, 1)) ** 2
    noise = rng.standard_normal((n_features, length)) * rng.uniform(0.0, 0.3, (n_features, 1)) ** 2
    return np.sqrt(1 - own_share) * shared + np.sqrt(own_share) * own + noise


def _add_structure(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Trends, level shifts, positive spiky transforms, flat-lined and dead (NaN) stretches."""
    n_features, length = x.shape
    t = np.linspace(-1, 1, length)
    for c in range(n_features):
        if rng.random() < 0.3:
            x[c] += rng.normal(0, 1) * t + rng.normal(0, 0.5) * t**2
        if rng.random() < 0.15:
            at = rng.integers(1, length)
            x[c, at:] += rng.normal(0, 2)
        if rng.random() < 0.1:  # positive, skewed (like concentrations or counts)
            x[c] = np.exp(0.7 * x[c])
        if rng.random() < 0.05:
            at, run = rng.integers(0, length), rng.integers(length // 8, length // 2 + 1)
            x[c, at:at + run] = x[c, at]
        if rng.random() < 0.05:
            at, run = rng.integers(0, length), rng.integers(length // 8, length // 2 + 1)
            x[c, at:at + run] = np.nan
    return x


def synthetic_batch(bank: LatentBank, n: int, n_features: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, features, length)`` float32 series, each channel standardised over its window's cells,
    as a scaler fitted on a whole series would leave it, give or take."""
    out = np.empty((n, n_features, length), dtype=np.float32)
    for i in range(n):
        x = _add_structure(_mixed_channels(bank, n_features, length, rng), rng)
        mean = np.nanmean(x, axis=1, keepdims=True)
        std = np.nanstd(x, axis=1, keepdims=True)
        x = (x - mean) / np.where(std > 1e-6, std, 1.0)
        # a window is a part of a longer series: shift and scale it as such a part would be
        out[i] = x * rng.uniform(0.3, 1.5, (n_features, 1)) + rng.normal(0, 0.7, (n_features, 1))
    return out
