"""The data-quality report for tables: every section, the same numbers as evaluate_table_methods,
honest names for a model that fell back, the CLI choosing table or series, one clear error for
data it cannot report on, and the page as a real browser renders it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from diffimpute.cli.main import cli
from diffimpute.report.table_quality import table_report
from diffimpute.tasks.evaluate import evaluate_table_methods
from tests.conftest import browser_screenshot

TINY = {"hidden": 16, "n_layers": 1, "max_epochs": 3, "diffusion_steps": 20, "sampling_steps": 5}
QUICK = {"time_budget": None, "n_samples": 5, "diffusion_params": TINY}
# Untrained with x0 prediction, the model *is* its guess, so it cannot beat it and falls back.
FALLS_BACK = {**TINY, "max_epochs": 1, "learning_rate": 0.0, "prediction": "x0"}
LABEL = "diffusion (fell back to its guess)"
METHODS = ("diffusion", "knn", "mice", "missforest")


def records(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """People: income rises with age and is missing for the old (missing at random given age);
    other cells are missing completely at random."""
    rng = np.random.default_rng(seed)
    age = rng.normal(45, 12, n)
    city = rng.choice(["north", "south", "east"], n)
    frame = pd.DataFrame({
        "age": age,
        "income": 1000 * age + rng.normal(0, 8000, n),
        "group": np.where(age + rng.normal(0, 5, n) > 45, "older", "younger"),
        "city": city,
        "score": np.where(city == "north", 1.0, 0.0) + 0.02 * age + rng.normal(0, 0.3, n),
    })
    frame.loc[frame["age"] > 55, "income"] = np.nan
    for column in ("age", "group", "city", "score"):
        frame.loc[rng.random(n) < 0.1, column] = np.nan
    return frame


@pytest.fixture(scope="module")
def measured():
    return table_report(records(), target="score", progress=False, **QUICK)


def test_every_section_appears_with_its_numbers(measured) -> None:
    html = measured.to_html()
    for section in ("summary", "missingness", "quality", "plausibility", "downstream"):
        assert f'id="{section}"' in html
    profile = measured.profile
    assert list(profile.index) == ["age", "income", "group", "city", "score"]
    assert profile.loc["city", "kind"] == "categorical (3 levels)" and profile.loc["age", "kind"] == "numeric"
    assert profile.loc["income", "missing_rate"] == pytest.approx(records()["income"].isna().mean())
    assert measured.patterns.index[0] == "(none: complete rows)" and measured.patterns["rows"].is_monotonic_decreasing
    assert measured.mcar.loc["income", "verdict"] == "depends on observed values"
    assert set(measured.per_column.index) == set(profile.index)
    assert set(measured.per_column["score"]) == {"MAE (sd)", "accuracy"}
    assert set(measured.numeric_plausibility.index) == {"age", "income", "score"}
    assert set(measured.categorical_plausibility.index) == {"group", "city"}
    # income is missing for the old, so its imputed values are higher than its observed ones
    assert measured.numeric_plausibility.loc["income", "mean_shift_sd"] > 0.5
    assert list(measured.downstream.index) == ["complete rows only", "mean/mode-imputed", "diffusion-imputed"]
    assert {"comissing", "distributions"} <= set(measured.figures)
    assert all(png[:4] == b"\x89PNG" for png in measured.figures.values())
    assert html.count("data:image/png;base64,") == 2
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert len(measured.summary) >= 4 and "missing" in measured.summary[0]


def test_the_methods_are_named_and_scored_like_evaluate_table_methods(measured) -> None:
    params = {"time_budget": None, "verbose": False, **TINY}
    table, _ = evaluate_table_methods(records(), "mcar:0.1", METHODS, n_samples=5, seed=0, diffusion_params=params)
    pd.testing.assert_frame_equal(table.drop(columns=["fit_seconds", "impute_seconds"]),
                                  measured.scores.drop(columns=["fit_seconds", "impute_seconds"]))
    html = measured.to_html()
    diffusion = "diffusion" if measured.scores.loc["diffusion", "refines"] else LABEL
    for name in (diffusion, "knn", "mice", "missforest"):
        assert f"<th>{name}</th>" in html
    for figure in ("accuracy", "macro_f1", "coverage_90%", "mae", "rmse"):
        assert f"<th>{figure}</th>" in html
    assert "MissForest-style" in html and "TabularImputer training with no time cap" in html


@pytest.mark.filterwarnings("ignore:the diffusion model did not beat")
def test_a_model_that_fell_back_is_named_for_what_it_imputed() -> None:
    report = table_report(records(), target="score", methods=("diffusion", "knn"), progress=False,
                          time_budget=None, n_samples=5, diffusion_params=FALLS_BACK)
    assert report.scores.loc["diffusion", "refines"] is np.False_ and report.imputer_refines is False
    assert any(line.startswith("The diffusion imputer fell back to its guess") for line in report.summary)
    assert "diffusion for" not in next(line for line in report.summary if line.startswith("Best method"))
    assert set(report.per_column.columns) >= {LABEL, "knn"} and "diffusion" not in report.per_column.columns
    html = report.to_html()
    assert f"<th>{LABEL}</th>" in html and "<th>diffusion-imputed (fell back to its guess)</th>" in html
    assert f"filled by {LABEL}" in html
    assert "<th>diffusion</th>" not in html and "<th>diffusion-imputed</th>" not in html


def test_a_table_without_gaps_says_so() -> None:
    full = records().dropna()
    report = table_report(full, progress=False, **QUICK)
    assert report.scores is None and report.summary[0].startswith("No cell is missing")
    assert "nothing was scored" in report.to_html()


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f[["city"]], "at least two"),
    (lambda f: f.head(10), "at least 20"),
    (lambda f: f.assign(age=np.nan, income=np.nan, group=None, city=None, score=np.nan), "every cell"),
    (lambda f: f.assign(income=np.nan), "['income'] are entirely missing"),
])
def test_data_the_report_cannot_work_with_is_one_clear_error(change, message) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        table_report(change(records()), progress=False, **QUICK)
    with pytest.raises(ValueError, match="target 'zz' is not a column"):
        table_report(records(), target="zz", progress=False, **QUICK)


def test_cli_writes_a_table_report_and_rejects_bad_tables(tmp_path) -> None:
    data, out = tmp_path / "people.csv", tmp_path / "report.html"
    records().to_csv(data, index=False)
    run = CliRunner().invoke(cli, ["report", str(data), "-o", str(out), "--time-budget", "2", "--n-samples", "4",
                                   "--target", "city", "--quiet"])
    assert run.exit_code == 0, run.output
    html = out.read_text(encoding="utf-8")
    assert "Data-quality report (table): people.csv" in html and "Commonest sets of missing columns" in html
    assert "Logistic regression of &#39;city&#39;" in html and "<th>macro_f1</th>" in html
    for name in ("knn", "mice", "missforest"):
        assert f"<th>{name}</th>" in html
    one_column, empty = tmp_path / "one.csv", tmp_path / "empty.csv"
    records()[["city"]].to_csv(one_column, index=False)
    pd.DataFrame({"a": [np.nan] * 30, "b": [np.nan] * 30}).to_csv(empty, index=False)
    for path, message in ((one_column, "at least two"), (empty, "every cell")):
        bad = CliRunner().invoke(cli, ["report", str(path), "-o", str(out), "--kind", "table", "--quiet"])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output


def test_cli_reports_numbers_as_a_table_when_told_and_the_series_report_refuses_categories(tmp_path) -> None:
    data, out = tmp_path / "numbers.csv", tmp_path / "report.html"
    records().drop(columns=["group", "city"]).to_csv(data, index=False)
    run = CliRunner().invoke(cli, ["report", str(data), "-o", str(out), "--kind", "table", "--time-budget", "1",
                                   "--n-samples", "4", "--quiet"])
    assert run.exit_code == 0, run.output
    assert "Data-quality report (table)" in out.read_text(encoding="utf-8")
    mixed = tmp_path / "mixed.csv"
    records().to_csv(mixed, index=False)
    bad = CliRunner().invoke(cli, ["report", str(mixed), "-o", str(out), "--kind", "series", "--quiet"])
    assert bad.exit_code == 2 and "not numeric" in bad.output and "table_report" in bad.output


def test_a_real_browser_renders_the_table_report(measured, tmp_path) -> None:
    pixels = browser_screenshot(measured, tmp_path, 3000)
    assert pixels.shape[:2] == (3000, 1200)
    colourful = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.25  # the embedded plots, not text or background
    assert colourful.mean() > 0.005
    dark = pixels.max(axis=-1) < 0.3  # rendered text
    assert dark.mean() > 0.002


def test_the_python_entry_point_reports_a_table_with_categories_as_a_table(tmp_path) -> None:
    import diffimpute

    full = records().dropna()
    report = diffimpute.report(full, tmp_path / "table.html", progress=False, **QUICK)
    assert isinstance(report, diffimpute.TableQualityReport)
    assert (tmp_path / "table.html").read_text().startswith("<!")


def test_plausibility_of_a_date_column_is_in_days() -> None:
    """Means of a date column came out in pandas' raw microsecond ticks (about 1.7e15)."""
    from diffimpute.data.table import TableEncoder
    from diffimpute.report.table_quality import plausibility

    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(40) % 30, unit="D")
    frame = pd.DataFrame({"visit": days, "x": np.arange(40.0)})
    draw = frame.copy()
    frame.loc[::4, "visit"] = pd.NaT
    numeric, _ = plausibility(frame, draw, TableEncoder.of(frame))
    expected = (frame["visit"].dropna() - pd.Timestamp("1970-01-01")).dt.days.mean()  # about 19,735
    assert numeric.loc["visit", "observed_mean"] == pytest.approx(expected)
