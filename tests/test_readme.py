"""README.md's Python snippets run as written, top to bottom, in one namespace.

Every estimator's ``fit`` runs here at a tiny budget (``BUDGET``: at most so many steps, epochs
and draws, whatever the snippet asks for), so the whole README runs in about 30 s on two cores;
everything else (data, calls, file names) is the README's own text. A traceback points at the
README line that failed.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import numpy as np
import pytest

import diffimpute
from diffimpute.datasets import seattle_weather

README = Path(__file__).resolve().parents[1] / "README.md"

# What each fit may spend here: the snippets' own budgets are minutes of training.
BUDGET = {"max_steps": 2, "max_epochs": 1, "prior_epochs": 1, "time_budget": None, "n_samples": 4}


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The README's ```python blocks as (line before the block's first line, code)."""
    return [(text.count("\n", 0, match.start(1)), match.group(1))
            for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)]


def _at_most(asked, cap):
    return cap if asked is None or cap is None else min(asked, cap)


@pytest.fixture()
def tiny_budgets(monkeypatch) -> None:
    """Every public estimator's ``fit`` first lowers its budget parameters to ``BUDGET``."""
    for name in diffimpute.__all__:
        estimator = getattr(diffimpute, name)
        if not (inspect.isclass(estimator) and hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
            continue
        original = estimator.fit

        def fit(self, *args, _original=original, **kwargs):
            params = self.get_params()
            self.set_params(**{key: _at_most(params[key], cap) for key, cap in BUDGET.items() if key in params})
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(estimator, "fit", fit)


def _user_files() -> None:
    """The files the Dask snippet reads as the user's own: a long series, and it in two parts."""
    weather = seattle_weather()
    weather = weather.mask(np.random.default_rng(1).random(weather.shape) < 0.1)
    weather.to_parquet("big.parquet")
    Path("parts").mkdir()
    weather.iloc[:730].to_parquet("parts/0.parquet")
    weather.iloc[730:].to_parquet("parts/1.parquet")


@pytest.mark.filterwarnings("ignore::UserWarning")  # tiny budgets: models fall back to their guesses, and say so
def test_readme_python_snippets_run_top_to_bottom(tiny_budgets, tmp_path, monkeypatch) -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 10, "the README's ```python blocks were not found"
    monkeypatch.chdir(tmp_path)
    _user_files()
    namespace = {"__name__": "__main__"}  # as a script: the LocalCluster block runs too
    environment = dict(os.environ)
    try:
        for offset, code in blocks:
            exec(compile("\n" * offset + code, str(README), "exec"), namespace)  # noqa: S102
    finally:  # Dask's nanny sets its workers' variables (MALLOC_TRIM_THRESHOLD_) in this process too
        os.environ.clear()
        os.environ.update(environment)
    assert (tmp_path / "report.html").exists() and len(list((tmp_path / "filled").iterdir())) == 2
