"""Shared fixtures: small structured data and a tiny model fitted once per session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import settings

from diffimpute import DiffusionImputer

# Tiny models gain nothing from threads, and on a shared machine two spinning OpenMP threads can
# slow every op by an order of magnitude; one thread keeps the suite fast and steady.
torch.set_num_threads(1)

# Property tests draw the same examples on every run, so that a CI run fails only when the code
# changed, and a failure is reproduced by running the test again.
settings.register_profile("repeatable", derandomize=True)
settings.load_profile("repeatable")

TINY = {
    "pretrained": None,  # the small CSDI denoiser trained from scratch; tests/test_pretrained.py covers the weights
    "window": 16,
    "channels": 16,
    "n_layers": 1,
    "n_heads": 2,
    "diffusion_steps": 20,
    "max_epochs": 30,
    "batch_size": 16,
    "n_samples": 8,
    "sampler": "ddim",
    "sampling_steps": 5,
    "device": "cpu",
    "verbose": False,
}


def structured(n_time: int = 240, n_features: int = 3, seed: int = 0) -> np.ndarray:
    """Correlated seasonal series: each feature is a scaled copy of one sine plus small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_time)
    base = np.sin(2 * np.pi * t / 24)
    scales = np.linspace(1.0, 3.0, n_features)
    return base[:, None] * scales + 0.05 * rng.standard_normal((n_time, n_features))


def with_gaps(values: np.ndarray, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hidden = rng.random(values.shape) < rate
    return np.where(hidden, np.nan, values), hidden


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    values, _ = with_gaps(structured(), 0.2, seed=1)
    index = pd.date_range("2024-01-01", periods=len(values), freq="h", name="time")
    return pd.DataFrame(values, index=index, columns=["a", "b", "c"])


@pytest.fixture(scope="session")
def fitted(frame: pd.DataFrame) -> DiffusionImputer:
    return DiffusionImputer(**TINY).fit(frame)


def browser_screenshot(report, tmp_path, height: int) -> np.ndarray:
    """``report`` written to HTML and rendered by headless Chromium at 1200 x ``height``: its
    pixels ``(height, 1200, 3)`` in [0, 1]. Skips the test where Chromium is not installed."""
    import shutil
    import subprocess

    import matplotlib.image

    from diffimpute.report.quality import write_report

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'); the browser check needs it")
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    write_report(report, page)
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                          f"--window-size=1200,{height}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    return matplotlib.image.imread(shot)[..., :3]
