"""diffimpute.dask on a 2-worker LocalCluster: the same result as one process, the model shipped once,
bad input named by partition or series."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from diffimpute import DiffusionImputer  # noqa: E402
from diffimpute import dask as ddi  # noqa: E402
from diffimpute.cli.main import cli  # noqa: E402
from tests.conftest import TINY, structured, with_gaps  # noqa: E402

QUANTILES = (0.1, 0.9)


def one_series(n_time: int = 300) -> pd.DataFrame:
    """Hourly, random gaps, a long gap in ``a`` across the border of rows 100 and a partition's worth
    of ``b`` missing (rows 150-199)."""
    values, _ = with_gaps(structured(n_time, 3, seed=4), 0.2, seed=6)
    values[80:125, 0] = np.nan
    values[150:200, 1] = np.nan
    index = pd.date_range("2024-01-01", periods=n_time, freq="h", name="time")
    return pd.DataFrame(values, index=index, columns=["a", "b", "c"])


def many_series(lengths=(60, 90, 45, 120), step: str = "h") -> pd.DataFrame:
    """Long format (id, t, a, b, c), rows shuffled across series."""
    frames = []
    for number, n_time in enumerate(lengths):
        values, _ = with_gaps(structured(n_time, 3, seed=number), 0.25, seed=number)
        frame = pd.DataFrame(values, columns=["a", "b", "c"])
        frame.insert(0, "t", pd.date_range("2024-01-01", periods=n_time, freq=step))
        frame.insert(0, "id", f"s{number}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0)


@pytest.fixture(scope="module")
def model() -> DiffusionImputer:
    return DiffusionImputer(**{**TINY, "max_epochs": 2, "time_budget": None}).fit(one_series())


@pytest.fixture(scope="module")
def client():
    with ddi.local_cluster(n_workers=2) as connected:
        yield connected


def test_local_cluster_workers_keep_glibc_allocator_defaults(client) -> None:
    """Dask's nanny would set MALLOC_TRIM_THRESHOLD_ in its workers, which slows torch there."""
    environs = client.run(lambda: __import__("os").environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert len(environs) == 2 and set(environs.values()) == {None}


def _unpickled_models() -> int:
    import diffimpute

    return getattr(diffimpute, "_unpickled_models", 0)


def _reset_count() -> None:
    import diffimpute

    diffimpute._unpickled_models = 0


def test_one_series_over_partitions_equals_one_process(model: DiffusionImputer, client, tmp_path) -> None:
    class Counting(DiffusionImputer):  # defined here, so pickled by value: counts unpickling on workers
        def __setstate__(self, state):
            import diffimpute

            diffimpute._unpickled_models = getattr(diffimpute, "_unpickled_models", 0) + 1
            super().__setstate__(state)

    counting = copy.copy(model)
    counting.__class__ = Counting
    frame = one_series()
    whole = model.impute(frame, n_samples=4, seed=11)
    parts = dd.from_pandas(frame, npartitions=6)  # 50 rows each: halos reach into the neighbours

    lazy = ddi.impute(parts, counting, n_samples=4, seed=11, quantiles=QUANTILES, chunk_rows=20)
    pd.testing.assert_frame_equal(lazy.compute(), whole.to_frame(QUANTILES), check_exact=True)

    client.run(_reset_count)
    paths = ddi.impute(parts, counting, n_samples=4, seed=11, output=tmp_path / "out")
    assert [p.name for p in paths] == [f"part.{i:05d}.parquet" for i in range(6)]
    written = pd.concat(pd.read_parquet(p) for p in paths)
    pd.testing.assert_frame_equal(written, whole.median(), check_exact=True, check_freq=False)  # Parquet keeps no freq
    assert sorted(client.run(_unpickled_models).values()) == [1, 1]  # one copy per worker for six tasks


def test_many_series_equal_each_series_imputed_alone(model: DiffusionImputer, client, tmp_path) -> None:
    long = many_series()
    parts = dd.from_pandas(long, npartitions=3).shuffle(on="id", npartitions=2)
    got = ddi.impute(parts, model, n_samples=3, seed=5, series="id", time="t", quantiles=QUANTILES).compute()
    paths = ddi.impute(parts, model, n_samples=3, seed=5, series="id", time="t", output=tmp_path / "out")
    written = pd.concat(pd.read_parquet(p) for p in paths)
    for key, rows in long.groupby("id"):
        alone = rows.drop(columns="id").set_index("t").sort_index()
        result = model.impute(alone, n_samples=3, seed=ddi.series_seed(5, key))
        pd.testing.assert_frame_equal(got[got["id"] == key].drop(columns="id"), result.to_frame(QUANTILES),
                                      check_exact=True)
        pd.testing.assert_frame_equal(written[written["id"] == key].drop(columns="id"), result.median(),
                                      check_exact=True)
    assert set(client.run(ddi.series_seed, 5, "s1").values()) == {ddi.series_seed(5, "s1")}  # other processes agree
    assert len({ddi.series_seed(5, f"s{i}") for i in range(4)}) == 4


def test_a_dask_array_is_one_series_with_positions(model: DiffusionImputer) -> None:
    import dask.array as da

    values = one_series().to_numpy()
    with dask.config.set(scheduler="sync"):
        got = ddi.impute(da.from_array(values, chunks=(70, 3)), model, n_samples=3, seed=2).compute()
    want = model.impute(pd.DataFrame(values, columns=["a", "b", "c"]), n_samples=3, seed=2).median()
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def _duplicate_border() -> dd.DataFrame:
    """Six partitions of 50 rows; the first timestamp of partition 2 repeats the last of partition 1."""
    frame = one_series()
    index = frame.index.to_numpy().copy()
    index[100] = index[99]
    frame = frame.set_axis(pd.DatetimeIndex(index, name="time"), axis=0)
    return dd.concat([dd.from_pandas(frame.iloc[start:start + 50], npartitions=1, sort=False)
                      for start in range(0, 300, 50)])


@pytest.mark.parametrize(
    "make, options, message",
    [
        (_duplicate_border, {},
         "partition 2 starts at or before the end of the part before it"),
        (lambda: dd.from_pandas(one_series().assign(b=np.nan), npartitions=3), {},
         r"features \['b'\] have no observed value in the whole series"),
        (lambda: dd.from_pandas(many_series().sort_values("id"), npartitions=3, sort=False), {"series": "id"},
         r"series ids appear in more than one partition: 's1' \(partitions 0, 1\)"),
        (lambda: dd.from_pandas(pd.concat([many_series((60, 50)), many_series((60,))]), npartitions=1),
         {"series": "id"}, r"series 's0' has a repeated timestamp"),
        (lambda: dd.from_pandas(many_series((60, 10)), npartitions=1), {"series": "id"},
         r"series 's1' are shorter than the model's window \(16 steps\)"),
        (lambda: dd.from_pandas(pd.concat([many_series((60,)), many_series((70,), step="15min").replace("s0", "q")]),
                                npartitions=1), {"series": "id"},
         "series have different time steps .*'s0'.*'q'"),
        (lambda: dd.from_pandas(many_series((60, 50)).assign(c=lambda f: f["c"].where(f["id"] == "s0")),
                                npartitions=1), {"series": "id"},
         r"features with no observed value \('s1': \['c'\]\)"),
        (lambda: dd.from_pandas(many_series().rename(columns={"c": "d"}), npartitions=1), {"series": "id"},
         r"missing \['c'\], unexpected \['d'\]"),
    ],
    ids=["duplicate timestamp at a border", "feature never observed", "id in two partitions", "id used twice",
         "short series",
         "mixed frequencies", "series never observes a feature", "columns"],
)
def test_bad_input_at_scale_is_an_error_naming_the_partition_or_series(model, make, options, message) -> None:
    time = {"time": "t"} if "series" in options else {}
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match=message):
        ddi.impute(make(), model, n_samples=2, **options, **time)


def test_output_must_be_a_new_or_empty_folder(model: DiffusionImputer, tmp_path) -> None:
    (tmp_path / "old.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="new or empty folder"):
        ddi.impute(dd.from_pandas(one_series(), npartitions=2), model, output=tmp_path)


def test_cli_dask_local_starts_a_cluster_and_writes_a_folder(model: DiffusionImputer, tmp_path) -> None:
    path, source, output = tmp_path / "model.safetensors", tmp_path / "in.parquet", tmp_path / "out"
    model.save(path)
    one_series().to_parquet(source)
    run = CliRunner().invoke(cli, ["impute", str(path), str(source), "-o", str(output), "--dask", "local",
                                   "--seed", "3", "--n-samples", "3", "--quiet"])
    assert run.exit_code == 0, run.output
    got = pd.concat(pd.read_parquet(p) for p in sorted(output.iterdir()))
    want = DiffusionImputer.load(path).impute(one_series(), n_samples=3, seed=3).median()
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_freq=False)


def test_read_dask_reads_quoted_decimal_commas_as_read_table_does(tmp_path) -> None:
    from diffimpute.io.files import read_table

    path = tmp_path / "quoted.csv"
    path.write_text("t;x;y\n" + "".join(f"2024-01-{d:02d};'{d},5';'{2 * d},25'\n" for d in range(1, 20)))
    frame = ddi.read_dask(path, index_col="t").compute()
    expected = read_table(path, index_col="t")
    assert frame.dtypes.tolist() == [np.float64, np.float64]
    np.testing.assert_array_equal(frame.to_numpy(), expected.to_numpy())
