"""The data-quality report: every section, no gaps, numbers equal evaluate_methods, MCAR check, CLI,
and the page as a real browser renders it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import diffimpute
from diffimpute.cli.main import cli
from diffimpute.report.quality import missingness_dependence, quality_report
from diffimpute.tasks.evaluate import evaluate_methods
from tests.conftest import browser_screenshot

QUICK = {"time_budget": None, "n_samples": 5, "methods": ("diffusion", "linear", "mean"),
         "diffusion_params": {"max_epochs": 2, "window": 24, "channels": 8, "n_layers": 1, "n_heads": 2}}


def gappy(seed: int = 0, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.arange(n) / 24
    frame = pd.DataFrame({"a": np.sin(phase), "b": 2 * np.sin(phase) + 0.1 * rng.standard_normal(n),
                          "c": np.cos(phase), "y": np.sin(phase) + np.cos(phase)},
                         index=pd.date_range("2024-01-01", periods=n, freq="h"))
    for column in "abc":
        for start in rng.integers(0, n - 10, size=6):
            frame.iloc[start : start + rng.integers(1, 8), frame.columns.get_loc(column)] = np.nan
    return frame


@pytest.fixture(scope="module")
def measured():
    return quality_report(gappy(), target="y", progress=False, **QUICK)


def test_every_section_appears_with_numbers_and_pictures(measured) -> None:
    html = measured.to_html()
    for section in ("summary", "missingness", "quality", "plausibility", "downstream"):
        assert f'id="{section}"' in html
    for picture in ("heatmap", "comissing", "distributions", "series"):
        assert picture in measured.figures and measured.figures[picture][:4] == b"\x89PNG"
    assert html.count("data:image/png;base64,") == 4
    assert set(measured.profile.index) == {"a", "b", "c", "y"} and measured.profile.loc["y", "missing_rate"] == 0
    assert set(measured.per_column.index) == {"a", "b", "c", "y"} and set(measured.per_column["best"]) <= set(QUICK["methods"])
    assert list(measured.downstream.index) == ["complete rows only", "linear-imputed", "diffusion-imputed"]
    assert len(measured.summary) >= 3 and "missing" in measured.summary[0]


def test_sections_the_data_is_too_small_for_are_named_as_skipped() -> None:
    frame = gappy()
    frame.iloc[5, 3] = np.nan  # one missing target cell: too few to check its missingness
    report = quality_report(frame, progress=False, **QUICK)
    assert any("'y'" in line and "missingness check" in line for line in report.skipped)
    assert "Skipped:" in report.to_html()


def test_the_page_needs_no_network(measured) -> None:
    html = measured.to_html()
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_scores_equal_evaluate_methods_on_the_same_seed(measured) -> None:
    params = {"time_budget": None, "verbose": False, **QUICK["diffusion_params"]}
    table, _ = evaluate_methods(gappy(), "gaps:0.1", QUICK["methods"], n_samples=5, seed=0, diffusion_params=params)
    pd.testing.assert_frame_equal(table.drop(columns=["fit_seconds", "impute_seconds"]),
                                  measured.scores.drop(columns=["fit_seconds", "impute_seconds"]))


def test_a_frame_without_gaps_says_so() -> None:
    full = gappy().interpolate().bfill()
    report = quality_report(full, progress=False, **QUICK)
    assert report.scores is None and "No cell is missing" in report.summary[0]
    assert 'id="plausibility"' in report.to_html()


def test_the_missingness_check_finds_dependence_and_not_randomness() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=2000)
    frame = pd.DataFrame({"a": a, "b": a + 0.5 * rng.normal(size=2000), "c": rng.normal(size=2000)})
    frame.loc[frame["a"] > 0.8, "b"] = np.nan  # missing at random given a
    frame.loc[rng.random(2000) < 0.1, "c"] = np.nan  # completely at random
    verdicts = missingness_dependence(frame)["verdict"]
    assert verdicts["b"] == "depends on observed values" and verdicts["c"] == "consistent with MCAR"


def test_python_entry_point_writes_the_file(tmp_path) -> None:
    path = tmp_path / "report.html"
    diffimpute.report(gappy(), path, progress=False, **QUICK)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not [p for p in tmp_path.iterdir() if p.name != "report.html"]  # no temporary file left


def test_cli_writes_the_report_and_rejects_bad_input(tmp_path) -> None:
    data = tmp_path / "data.csv"
    gappy().to_csv(data, index_label="time")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(data), "-o", str(out), "--time-budget", "3", "--n-samples", "4",
                                      "--target", "y", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Data-quality report" in out.read_text(encoding="utf-8")
    for args, message in ((["-o", str(tmp_path / "r.pdf")], ".html"), (["-o", str(data / "r.html")], "is a file"),
                          (["-o", str(out), "--target", "zz"], "target")):
        bad = CliRunner().invoke(cli, ["report", str(data), *args, "--time-budget", "1", "--quiet"])
        assert bad.exit_code == 2 and message in bad.output


def test_a_real_browser_renders_the_page(measured, tmp_path) -> None:
    pixels = browser_screenshot(measured, tmp_path, 2400)
    assert pixels.shape[:2] == (2400, 1200)
    colourful = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.25  # the embedded plots, not text or background
    assert colourful.mean() > 0.005
    dark = pixels.max(axis=-1) < 0.3  # rendered text
    assert dark.mean() > 0.002
