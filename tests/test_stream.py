"""io.stream: a Parquet series imputed chunk by chunk equals the whole file imputed at once, bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from diffimpute import DiffusionImputer
from diffimpute.cli.main import cli
from diffimpute.data.schema import series_clock
from diffimpute.io import stream
from diffimpute.io.files import read_table
from diffimpute.io.stream import ParquetSeries, SeriesParts, impute_chunks, impute_parquet
from tests.conftest import TINY, structured, with_gaps


def gappy_frame(n_time: int = 400) -> pd.DataFrame:
    """Hourly timestamps with a few skipped, then from row 250 every two hours (so a chunk's own
    median step is not the series'), random gaps, a long gap in ``a`` and rows 200-259 of ``b``
    missing (whole chunks of 37 rows with no observed ``b``)."""
    values, _ = with_gaps(structured(n_time, 3, seed=2), 0.2, seed=5)
    values[90:140, 0] = np.nan
    values[200:260, 1] = np.nan
    skipped = np.random.default_rng(1).random(n_time) < 0.05
    hours = np.cumsum(np.where(skipped | (np.arange(n_time) >= 250), 2, 1))
    index = pd.DatetimeIndex(pd.Timestamp("2024-01-01") + pd.to_timedelta(hours, unit="h"), name="time")
    return pd.DataFrame(values, index=index, columns=["a", "b", "c"])


@pytest.fixture(scope="module")
def model() -> DiffusionImputer:
    return DiffusionImputer(**{**TINY, "max_epochs": 2, "time_budget": None}).fit(gappy_frame())


def refining(model: DiffusionImputer, refines: bool) -> DiffusionImputer:
    """The model drawing from its network (True) or around its guess with residuals drawn from the
    guess's held-out errors (False: what two epochs of training choose)."""
    chosen = copy.copy(model)
    chosen.refines_ = refines
    assert refines or chosen.residual_quantiles_ is not None  # the guess path is random too, so keyed
    return chosen


@pytest.mark.parametrize("refines", [False, True])
def test_streamed_file_equals_impute_of_the_whole_file(model: DiffusionImputer, refines: bool, tmp_path,
                                                       monkeypatch) -> None:
    monkeypatch.setattr(stream, "_BATCH_CELLS", 4 * 29)  # reads of 29 rows, across row groups and chunks
    chosen = refining(model, refines)
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"
    gappy_frame().to_parquet(source, row_group_size=45)
    whole = chosen.impute(read_table(source), n_samples=5, seed=7).to_frame((0.1, 0.9))
    report = impute_parquet(source, chosen, output, n_samples=5, seed=7, quantiles=(0.1, 0.9), chunk_rows=37,
                            verbose=False)
    pd.testing.assert_frame_equal(pd.read_parquet(output), whole, check_exact=True)
    assert report.chunks == 11 and report.rows == 400
    assert report.imputed_cells == int(gappy_frame().isna().sum().sum())


def test_guess_draws_do_not_depend_on_the_cells_per_pass(model: DiffusionImputer) -> None:
    """The guess path draws its residuals a pass at a time (bounded memory); the draws are the same
    whether a pass holds one window or all of them."""
    one, all_ = refining(model, False), refining(model, False)
    one.max_cells_per_pass, all_.max_cells_per_pass = 1, 2**30
    frame = gappy_frame()
    a, b = one.impute(frame, n_samples=4, seed=3), all_.impute(frame, n_samples=4, seed=3)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert np.ptp(a.samples, axis=0).max() > 0  # the draws are spread, not all the guess


def test_reads_are_batches_of_bounded_cells(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(stream, "_BATCH_CELLS", 4 * 50)  # three features and the time column
    source = tmp_path / "in.parquet"
    gappy_frame().to_parquet(source, row_group_size=64)
    series = ParquetSeries(source)
    frames = list(series.frames())
    assert series.batch_rows == 50 and max(map(len, frames)) == 50 and len(frames) >= 8
    pd.testing.assert_frame_equal(pd.concat(frames), read_table(source), check_exact=True)


@pytest.mark.parametrize("layout", ["range index", "time column"])
def test_files_without_a_saved_time_index_stream_as_read_table_reads_them(model, layout: str, tmp_path) -> None:
    frame = gappy_frame()
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"
    if layout == "range index":
        frame.reset_index(drop=True).to_parquet(source, row_group_size=64)
    else:
        frame.reset_index().to_parquet(source, index=False, row_group_size=64)
    data = read_table(source)
    impute_parquet(source, model, output, n_samples=3, seed=1, chunk_rows=50, verbose=False)
    got = pd.read_parquet(output)
    pd.testing.assert_frame_equal(got, model.impute(data, n_samples=3, seed=1).median(), check_exact=True)


def test_chunks_read_only_the_rows_they_need(model: DiffusionImputer) -> None:
    """Each chunk is imputed once the rows up to its halo's end are read, and earlier rows are dropped."""
    frame = gappy_frame()
    consumed = []

    def parts():
        for start in range(0, len(frame), 10):
            consumed.append(start + 10)
            yield frame.iloc[start:start + 10]

    clock = series_clock(frame.index.asi8.astype(np.float64))
    chunks = []
    for chunk in impute_chunks(parts(), model, first=0, span=(0, len(frame)), length=len(frame), clock=clock,
                               n_samples=3, seed=2, chunk_rows=40):
        stop = sum(len(c) for c in chunks) + len(chunk)
        assert consumed[-1] <= stop + model.window_ + 10  # the halo and one part more, never the whole series
        chunks.append(chunk)
    pd.testing.assert_frame_equal(pd.concat(chunks), model.impute(frame, n_samples=3, seed=2).median(),
                                  check_exact=True)


def test_a_failed_stream_leaves_no_file_behind(model: DiffusionImputer, tmp_path) -> None:
    frame = gappy_frame()
    frame.iloc[350, 2] = np.inf  # found only when the chunk holding it is imputed
    source, output = tmp_path / "in.parquet", tmp_path / "out" / "imputed.parquet"
    frame.to_parquet(source, row_group_size=50)
    with pytest.raises(ValueError, match="infinite"):
        impute_parquet(source, model, output, n_samples=2, chunk_rows=40, verbose=False)
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda f: f.set_axis(f.index[np.r_[0:120, 119, 121:400]], axis=0), "repeated timestamp"),
        (lambda f: f.iloc[np.r_[0:100, 101, 100, 102:400]], "earlier than the one before"),
        (lambda f: f.assign(c=np.nan), r"features \['c'\] have no observed value in the whole series"),
        (lambda f: f.iloc[:10], "window"),
        (lambda f: f.rename(columns={"c": "d"}), "missing \\['c'\\], unexpected \\['d'\\]"),
    ],
    ids=["duplicate", "unsorted", "unobserved", "short", "columns"],
)
def test_bad_files_are_clear_errors(model: DiffusionImputer, spoil, message: str, tmp_path) -> None:
    source = tmp_path / "in.parquet"
    spoil(gappy_frame()).to_parquet(source, row_group_size=50)
    with pytest.raises(ValueError, match=message):
        impute_parquet(source, model, tmp_path / "out.parquet", n_samples=2, verbose=False)
    assert not (tmp_path / "out.parquet").exists()


def test_clock_from_parts_equals_the_clock_of_the_whole_series() -> None:
    """The median step (hence every time position) from per-part step counts is exactly np.median's,
    for odd and even counts of irregular steps, however the series is cut."""
    rng = np.random.default_rng(0)
    for n_time in (2, 3, 50, 51, 400):
        ticks = np.cumsum(rng.choice([1e9, 2e9, 3.6e12, 7.3e9], size=n_time)) + 1.7e18
        frame = pd.DataFrame({"x": np.ones(n_time)}, index=pd.DatetimeIndex(ticks.astype("int64")))
        cuts = np.sort(rng.choice(np.arange(1, n_time), size=min(4, n_time - 1), replace=False))
        parts = SeriesParts()
        for number, piece in enumerate(np.split(np.arange(n_time), cuts)):
            parts = parts.then(SeriesParts.of(frame.iloc[piece], f"part {number}"), f"part {number}")
        assert parts.clock() == series_clock(frame.index.asi8.astype(np.float64))
        assert parts.rows == n_time


def test_cli_streams_a_parquet_file(model: DiffusionImputer, tmp_path) -> None:
    path, source, output = tmp_path / "model.safetensors", tmp_path / "in.parquet", tmp_path / "out.parquet"
    model.save(path)
    gappy_frame().to_parquet(source, row_group_size=100)
    run = CliRunner().invoke(cli, ["impute", str(path), str(source), "-o", str(output), "--stream", "--seed", "3",
                                   "--n-samples", "3", "--quantiles", "0.1,0.9", "--quiet"])
    assert run.exit_code == 0, run.output
    want = DiffusionImputer.load(path).impute(read_table(source), n_samples=3, seed=3).to_frame((0.1, 0.9))
    pd.testing.assert_frame_equal(pd.read_parquet(output), want, check_exact=True)
    both = CliRunner().invoke(cli, ["impute", str(path), str(source), "-o", str(output), "--stream", "--dask", "sync"])
    assert both.exit_code == 2 and "not both" in both.output
