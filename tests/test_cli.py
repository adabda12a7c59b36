"""The command line end to end on a tiny file: fit, impute, evaluate, plot, demo, and user errors."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from diffimpute import DiffusionImputer
from diffimpute.cli.main import cli
from diffimpute.tasks.evaluate import PROBABILISTIC_METHODS, method_label
from tests.conftest import structured, with_gaps
from tests.test_bad_input import forbid_training

TINY_FLAGS = ["--window", "16", "--epochs", "2", "--channels", "8", "--layers", "1", "--sampler", "ddim", "--steps", "3"]


@pytest.fixture()
def csv(tmp_path) -> str:
    values, _ = with_gaps(structured(n_time=96), 0.2, seed=3)
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    frame.insert(0, "time", pd.date_range("2024-01-01", periods=len(frame), freq="h"))
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return str(path)


def _run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    return result


@pytest.mark.parametrize("guess", ["interpolate", "latent", "none"])
def test_fit_impute_plot_round_trip(csv: str, tmp_path, guess: str) -> None:
    model = str(tmp_path / "model.safetensors")
    fitted = _run("fit", csv, "-o", model, "--quiet", "--guess", guess, "--time-budget", "30", *TINY_FLAGS)
    assert fitted.exit_code == 0, fitted.output
    out = str(tmp_path / "imputed.parquet")
    imputed = _run("impute", model, csv, "-o", out, "--n-samples", "4", "--quantiles", "0.1,0.9", "--quiet")
    assert imputed.exit_code == 0, imputed.output
    table = pd.read_parquet(out)
    original = pd.read_csv(csv, index_col="time")
    assert list(table.columns) == ["a", "b", "c", "a_q0.1", "b_q0.1", "c_q0.1", "a_q0.9", "b_q0.9", "c_q0.9"]
    assert len(table) == len(original) and not table.isna().any().any()
    observed = original.notna().to_numpy()
    assert np.array_equal(table[["a", "b", "c"]].to_numpy()[observed], original.to_numpy()[observed])
    picture = tmp_path / "plot.png"
    plotted = _run("plot", model, csv, "-o", str(picture), "--columns", "a,c", "--n-samples", "3", "--quiet")
    assert plotted.exit_code == 0, plotted.output
    assert picture.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_prints_and_saves_one_row_per_method(csv: str, tmp_path) -> None:
    report = tmp_path / "scores.json"
    result = _run("evaluate", csv, "--mask", "mcar:0.2", "--methods", "diffusion,lssdm,mean,linear",
                  "--n-samples", "4", "-o", str(report), "--quiet", *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    assert "coverage_90%" in result.output
    rows = json.loads(report.read_text())
    assert [row["method"].split(" (")[0] for row in rows] == ["diffusion", "lssdm", "mean", "linear"]
    assert all(row["mae"] > 0 for row in rows)
    by_method = {row["method"].split(" (")[0]: row for row in rows}
    assert by_method["linear"]["mae"] < by_method["mean"]["mae"]  # structured data: interpolation wins


def test_impute_without_a_model_uses_the_pretrained_one(csv: str, tmp_path) -> None:
    out = tmp_path / "filled.csv"
    result = _run("impute", csv, "-o", str(out), "--n-samples", "4", "--steps", "3", "--index-col", "time", "--quiet")
    assert result.exit_code == 0, result.output
    original = pd.read_csv(csv, index_col="time")
    table = pd.read_csv(out, index_col="time")
    assert table.shape == original.shape and not table.isna().any().any()
    observed = original.notna().to_numpy()
    assert np.array_equal(table.to_numpy()[observed], original.to_numpy()[observed])
    three = _run("impute", "a.dfi", csv, "extra.csv", "-o", str(out))
    assert three.exit_code == 2 and "takes [MODEL] DATA" in three.output
    streamed = _run("impute", csv, "-o", str(out), "--stream")
    assert streamed.exit_code == 2 and "need a MODEL" in streamed.output


def test_impute_reads_a_semicolon_file_with_decimal_commas_and_says_so_once(tmp_path) -> None:
    values, _ = with_gaps(structured(n_time=96), 0.2, seed=3)
    times = pd.date_range("2024-01-01", periods=len(values), freq="h", name="time")
    path, out = tmp_path / "european.csv", tmp_path / "filled.csv"
    pd.DataFrame(values, index=times, columns=["a", "b", "c"]).to_csv(path, sep=";", decimal=",",
                                                                      date_format="%d.%m.%Y %H:%M")
    result = _run("impute", str(path), "-o", str(out), "--n-samples", "4", "--steps", "3")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("separator ';' and decimal mark ','") == 1
    original = pd.read_csv(path, sep=";", decimal=",", index_col="time")
    table = pd.read_csv(out, index_col="time", parse_dates=True)
    assert table.index.equals(times) and not table.isna().any().any()
    observed = original.notna().to_numpy()
    assert np.array_equal(table.to_numpy()[observed], original.to_numpy()[observed])
    quiet = _run("impute", str(path), "-o", str(out), "--n-samples", "4", "--steps", "3", "--quiet")
    assert quiet.exit_code == 0 and "separator" not in quiet.output
    wrong = _run("impute", str(path), "-o", str(out), "--sep", ",")
    assert wrong.exit_code == 2 and "--sep" in wrong.output and "Traceback" not in wrong.output


def test_demo_writes_its_files_and_names_models_that_fell_back(tmp_path, monkeypatch) -> None:
    refines = []
    fit = DiffusionImputer.fit

    def recording(self, *args, **kwargs):
        fitted = fit(self, *args, **kwargs)
        refines.append(fitted.refines_)
        return fitted

    monkeypatch.setattr(DiffusionImputer, "fit", recording)
    out = tmp_path / "demo"
    result = _run("demo", "--out", str(out), "--max-steps", "2", "--n-samples", "2", "--quiet")
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"scores.csv", "imputed.csv", "imputation.png", "comparison.png"}
    names = [method_label(m, r) for m, r in zip(["diffusion", "zero-shot", "lssdm"], refines, strict=True)]
    names += ["mean", "linear", "knn", "mice"]
    assert pd.read_csv(out / "scores.csv")["method"].tolist() == names
    printed = [re.match(r"(.+?)\s+[-\d]", line)[1] for line in result.output.splitlines()[-len(names):]]
    assert printed == names


def test_evaluate_names_a_model_that_fell_back_to_its_guess(csv: str, tmp_path, monkeypatch) -> None:
    """Untrained (no steps from random weights) with x0 prediction, the model is exactly its guess,
    so it cannot beat it and imputes the guess."""
    monkeypatch.setitem(PROBABILISTIC_METHODS, "diffusion", {**PROBABILISTIC_METHODS["diffusion"], "prediction": "x0"})
    report = tmp_path / "scores.json"
    result = _run("evaluate", csv, "--methods", "diffusion,linear", "--pretrained", "none", "--max-steps", "0",
                  "--n-samples", "4", "-o", str(report), "--quiet", *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    label = "diffusion (fell back to its guess)"
    assert [row["method"] for row in json.loads(report.read_text())] == [label, "linear"]
    assert f"\n{label} " in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "{csv}", "--mask", "mcar:2"], "outside (0, 1)"),
        (["evaluate", "{csv}", "--methods", "magic"], "unknown methods ['magic']"),
        (["fit", "missing.csv", "-o", "m.safetensors"], "no such file"),
        (["impute", "missing.safetensors", "{csv}", "-o", "x.csv"], "no model file"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(csv: str, args: list[str], message: str) -> None:
    result = _run(*[a.format(csv=csv) for a in args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_threads_option_sets_torch_threads(csv: str) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the suite runs single-threaded; start elsewhere so the check can fail
    try:
        result = _run("--threads", "1", "evaluate", csv, "--methods", "mean", "--quiet")
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_quiet_dask_imputation_prints_no_dask_info_lines(csv: str, tmp_path) -> None:
    """Under the CLI's INFO logging, distributed reports every worker's start and stop: --quiet
    leaves only its warnings and errors."""
    pytest.importorskip("distributed")
    model = str(tmp_path / "model.safetensors")
    assert _run("fit", csv, "-o", model, "--quiet", "--pretrained", "none", *TINY_FLAGS).exit_code == 0
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    distributed_logger = logging.getLogger("distributed")
    distributed_logger.addHandler(handler)
    try:
        result = _run("impute", model, csv, "-o", str(tmp_path / "out"), "--dask", "local", "--index-col", "time",
                      "--n-samples", "2", "--quiet")
    finally:
        distributed_logger.removeHandler(handler)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").iterdir())) >= 1
    assert [r.getMessage() for r in records if r.levelno < logging.WARNING] == []


def test_default_threads_do_not_follow_the_machine_load(csv: str, monkeypatch) -> None:
    """The same command uses the same number of threads (and so gives the same draws) however busy
    the machine is: PyTorch's default, capped by the cores the process may use."""
    import os

    import torch

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (16.0, 16.0, 16.0), raising=False)
    try:
        for default, expected in ((2, 2), (8, 2), (1, 1)):
            torch.set_num_threads(default)
            result = _run("evaluate", csv, "--methods", "mean", "--quiet")
            assert result.exit_code == 0, result.output
            assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_detect_scores_flags_evaluates_and_saves(tmp_path) -> None:
    rng = np.random.default_rng(0)
    phase = 2 * np.pi * np.arange(400) / 24
    values = np.stack([np.sin(phase), 2 * np.sin(phase)], axis=1) + 0.05 * rng.standard_normal((400, 2))
    frame = pd.DataFrame(values, columns=["a", "b"], index=pd.date_range("2024-01-01", periods=400, freq="h"))
    frame["anomaly"] = 0
    train, test = frame.iloc[:300], frame.iloc[300:].copy()
    test["changepoint"] = 0  # a second label column, as SKAB's runs have: ignored with a note
    test.iloc[50, 0] += 5.0
    test.iloc[50, test.columns.get_loc("anomaly")] = 1
    train_path, test_path = tmp_path / "train.csv", tmp_path / "test.csv"
    train.drop(columns="anomaly").to_csv(train_path, index_label="time")
    test.to_csv(test_path, index_label="time")
    out, model = tmp_path / "scores.csv", tmp_path / "detector.safetensors"
    result = _run("detect", str(train_path), str(test_path), "-o", str(out), "--label-col", "anomaly",
                  "--window", "24", "--time-budget", "5", "--epochs", "3", "--steps", "2", "--model", str(model))
    assert result.exit_code == 0, result.output
    assert "network passes per row" in result.output and "VUS-PR" in result.output
    assert "ignoring ['changepoint']" in result.output
    scores = pd.read_csv(out, index_col=0)
    assert scores["anomaly"].iloc[50] == 1 and scores["anomaly"].mean() < 0.2  # flags as predict makes them
    assert list(scores.columns) == ["anomaly_score", "anomaly"] and len(scores) == 100
    assert 38 <= scores["anomaly_score"].to_numpy().argmax() <= 62  # within the smoothing window of the spike
    assert model.exists()
    bad = _run("detect", str(train_path), str(test_path), "-o", str(out), "--window", "1000")
    assert bad.exit_code == 2 and "window" in bad.output


def test_impossible_output_paths_fail_before_any_training(csv: str, tmp_path, monkeypatch) -> None:
    forbid_training(monkeypatch, "training started before the output path was checked")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for args in (["fit", csv, "-o", str(blocker / "model.safetensors")],
                 ["evaluate", csv, "-o", str(tmp_path / "scores.xlsx")],
                 ["detect", csv, csv, "-o", str(blocker / "scores.csv")]):
        result = _run(*args, "--quiet")
        assert result.exit_code == 2, result.output
        assert "cannot write" in result.output


def test_a_table_fit_takes_a_step_budget(tmp_path) -> None:
    """``--max-steps`` sets a table's training budget as it does a series'."""
    from diffimpute import TabularImputer

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60), "kind": rng.choice(["a", "b"], 60)})
    table.loc[::7, "x"] = np.nan
    table.to_csv(tmp_path / "table.csv", index=False)
    model = tmp_path / "table.safetensors"
    result = _run("fit", str(tmp_path / "table.csv"), "-o", str(model), "--kind", "table", "--max-steps", "5",
                  "--quiet")
    assert result.exit_code == 0, result.output
    assert TabularImputer.load(model).history_.steps == 5


def test_a_table_with_a_column_of_dates_comes_back_with_dates_in_its_gaps(tmp_path) -> None:
    """A date column of a CSV table is imputed in days and written back as dates (it was refused),
    in a file with the input's columns only."""
    rng = np.random.default_rng(0)
    visit = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, 60), unit="D")
    table = pd.DataFrame({"kind": rng.choice(["a", "b"], 60), "visit": visit.strftime("%d/%m/%Y"),
                          "x": rng.normal(size=60)})
    table.loc[::6, "visit"] = None
    table.to_csv(tmp_path / "table.csv", index=False)
    model, filled = tmp_path / "table.safetensors", tmp_path / "filled.csv"
    assert _run("fit", str(tmp_path / "table.csv"), "-o", str(model), "--max-steps", "5", "--quiet").exit_code == 0
    result = _run("impute", str(model), str(tmp_path / "table.csv"), "-o", str(filled), "--quiet")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(filled).columns) == ["kind", "visit", "x"]  # no column of row numbers added
    dates = pd.read_csv(filled)["visit"]
    assert dates.notna().all() and dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()  # whole days, ISO
    assert (pd.to_datetime(dates[1::6]) == visit[1::6]).all()  # given dates as they were


def test_warnings_reach_the_user_as_one_line_without_python_source(tmp_path) -> None:
    """A run that warns printed click's file and source line ('return callback(*args, **kwargs)')."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    x = rng.normal(size=150)  # a guess near exact, which a model trained 3 steps cannot beat: it warns
    related = {"x": x, "y": 2 * x + 0.01 * rng.normal(size=150), "kind": np.where(x > 0, "a", "b")}
    pd.DataFrame(related).mask(rng.random((150, 3)) < 0.2).to_csv(tmp_path / "table.csv", index=False)
    run = subprocess.run([sys.executable, "-m", "diffimpute.cli.main", "--threads", "1", "fit",
                          str(tmp_path / "table.csv"), "-o", str(tmp_path / "m.safetensors"), "--max-steps", "3"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert any(line.startswith("warning: the diffusion model did not beat its own guess") for line in lines), lines
    assert "Warning:" not in run.stderr and "return callback" not in run.stderr


def test_a_table_of_categories_alone_fits_and_reports_its_accuracy(tmp_path) -> None:
    """No numeric column means no interval figures: the fit still reports its held-out accuracy
    (the report line read the numeric figures unconditionally)."""
    rng = np.random.default_rng(0)
    a = rng.choice(["x", "y"], 200)
    table = pd.DataFrame({"a": a, "b": np.where(rng.random(200) < 0.8, a, "z")}).mask(rng.random((200, 2)) < 0.2)
    table.to_csv(tmp_path / "cats.csv", index=False)
    result = _run("fit", str(tmp_path / "cats.csv"), "-o", str(tmp_path / "cats.safetensors"), "--max-steps", "5")
    assert result.exit_code == 0, result.output
    assert "categorical accuracy" in result.output and "MAE" not in result.output


def test_identifier_and_empty_columns_are_set_aside_and_written_back_in_place(tmp_path) -> None:
    """A real table with a name per row and a column with no value (refused by the library) fits
    and imputes: those columns come back as read, in their places; the others' gaps are filled."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    table = pd.DataFrame({"name": [f"site {i}" for i in range(80)], "x": x, "late": np.nan,
                          "y": x + 0.1 * rng.normal(size=80), "kind": rng.choice(["a", "b"], 80)})
    table.loc[::5, "y"] = np.nan
    table.to_csv(tmp_path / "table.csv", index=False)
    model, filled = tmp_path / "table.safetensors", tmp_path / "filled.csv"
    fitted = _run("fit", str(tmp_path / "table.csv"), "-o", str(model), "--max-steps", "5")
    assert fitted.exit_code == 0, fitted.output
    assert "entirely missing: late" in fitted.output and "name" in fitted.output
    result = _run("impute", str(model), str(tmp_path / "table.csv"), "-o", str(filled), "--quiet")
    assert result.exit_code == 0, result.output
    out = pd.read_csv(filled)
    assert list(out.columns) == ["name", "x", "late", "y", "kind"]
    assert (out["name"] == table["name"]).all() and out["late"].isna().all()
    assert out["y"].notna().all() and (out["y"][1::5] == table["y"][1::5]).all()
