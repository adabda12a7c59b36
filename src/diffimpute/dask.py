"""Impute Dask collections on any Dask scheduler, with the same result as one process.

Two layouts:

* one long series, partitioned by time (a Dask DataFrame indexed by time, or a Dask Array
  ``(time, features)``): each partition is imputed by the loop of ``io.stream.impute_chunks`` from
  its rows plus the halo its windows need from the partitions around it (at most a window each
  side, sliced there so that only the halo travels);
* many series in long format (``series="id"``: a series-id column, time as the index or as the
  column ``time``), each series entirely in one partition (e.g. ``ddf.shuffle("id")``): each series
  is imputed whole by ``DiffusionImputer.impute``.

How seeds map, so that results do not depend on partitions, workers or scheduler. A window's
draws depend only on the seed, the window's cells and its key (series number, start in the whole
series), never on what else is computed with it (``DiffusionImputer.impute``). For one series,
the key is (0, start) wherever the window is computed, so the result equals
``model.impute(whole_series, n_samples, seed=seed)``. For many series, series ``s`` is imputed
with seed ``series_seed(seed, s)``: its result equals ``model.impute(series_s, n_samples,
seed=series_seed(seed, s))`` (each series alone, its frame sorted by time), and two series never
share noise.

Before imputing, one pass over the data gathers what needs all of it (``io.stream.SeriesParts``):
lengths, sortedness, the time step, which features are observed; bad input becomes an error that
names the partition or series. The model goes to each worker once (``client.scatter(...,
broadcast=True)`` under a distributed client; one shared graph key with the local schedulers).
With ``output`` each partition writes its own Parquet file, chunk by chunk, so the result may be
larger than memory; without it, a lazy Dask DataFrame is returned.
"""

from __future__ import annotations

import glob
import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from diffimpute._validation import check_positive_int, check_seed
from diffimpute.data.schema import Clock
from diffimpute.io.dialect import check_decimal, check_separator, sniff_dialect
from diffimpute.io.stream import (
    DEFAULT_MEMORY,
    SeriesParts,
    check_feature_columns,
    chunk_rows_for,
    impute_chunks,
    quiet_copy,
    write_parquet,
)
from diffimpute.tasks.imputer import DiffusionImputer

_MAX_NAMED = 10  # series named in one error message
_LOCAL_SCHEDULERS = ("threads", "sync")  # dask's "processes" would pickle the model into every task


# ------------------------------------------------------------------------- helpers


def series_seed(seed: int, series_id: object) -> int:
    """The seed series ``series_id`` is imputed with when many series are imputed together: the
    first 63 bits of BLAKE2b of ``f"{seed}:{series_id}"`` (``str`` of the id, so ``5`` and
    ``np.int64(5)`` agree). Stable across processes, platforms and versions of Python."""
    digest = hashlib.blake2b(f"{check_seed(seed)}:{series_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _active_client():
    """The distributed client that ``dask.compute`` would use now, or None (a local scheduler)."""
    from dask.base import get_scheduler

    try:
        from distributed import Client
    except ImportError:
        return None
    owner = getattr(get_scheduler(), "__self__", None)
    return owner if isinstance(owner, Client) else None


def _ship(model: DiffusionImputer):
    """A reference to the model that tasks take as an argument: scattered to every worker once under
    a distributed client, one graph key otherwise; never copied into each task."""
    import dask

    client = _active_client()
    if client is not None:
        return client.scatter(model, broadcast=True, hash=False)
    return dask.delayed(model, traverse=False)


def _named(items: Sequence) -> str:
    shown = ", ".join(repr(i) for i in list(items)[:_MAX_NAMED])
    return shown + (f" and {len(items) - _MAX_NAMED} more" if len(items) > _MAX_NAMED else "")


def _as_frame(data, model: DiffusionImputer):
    """A Dask DataFrame: a Dask Array ``(time, features)`` becomes one with the model's column names
    and positions 0, 1, 2... as its index."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(data, da.Array):
        if data.ndim != 2:
            raise ValueError(f"a Dask Array must be (time, features), got {data.ndim} dimensions")
        return dd.from_dask_array(data.rechunk({1: -1}), columns=list(model.schema_.columns))
    if isinstance(data, dd.DataFrame):
        return data
    raise TypeError(f"data must be a Dask DataFrame or Dask Array, got {type(data).__name__}")


def _output_folder(output: str | Path) -> Path:
    folder = Path(output)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"output {str(folder)!r} must be a new or empty folder (one Parquet file per partition is "
                         "written there); remove it or name another")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _meta(features: pd.DataFrame, quantiles: Sequence[float]) -> pd.DataFrame:
    """The empty frame of the output's columns: as ``ImputationResult.to_frame`` lays them out."""
    parts = [features] + [features.rename(columns=lambda c, q=q: f"{c}_q{q:g}") for q in quantiles]
    return pd.concat(parts, axis=1)


# ------------------------------------------------------------------------- tasks (run on workers)


def _summary(frame: pd.DataFrame, number: int) -> SeriesParts:
    return SeriesParts.of(frame, f"partition {number}")


def _rows(frame: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    return frame.iloc[start:stop]


def _impute_part(model, pieces: list[pd.DataFrame], first: int, span: tuple[int, int], length: int,
                 clock: Clock | None, options: dict, path: Path | None):
    """Rows ``span`` of the one long series from its partition and halo ``pieces`` (from row ``first``)."""
    frames = impute_chunks(pieces, model, first=first, span=span, length=length, clock=clock, **options)
    if path is None:
        return pd.concat(list(frames))
    return str(path), write_parquet(frames, path, span[1] - span[0])


def _series_frames(frame: pd.DataFrame, series: str, time: str | None):
    """Each series of a long-format partition as ``impute`` takes it: indexed by time, sorted."""
    for key, rows in frame.groupby(series, sort=False, dropna=False):
        rows = rows.drop(columns=[series])
        if time is not None:
            rows = rows.set_index(time)
        yield key, rows.sort_index(kind="stable")


def _series_summaries(frame: pd.DataFrame, number: int, series: str, time: str | None) -> dict:
    if frame[series].isna().any():
        raise ValueError(f"partition {number} has rows without a series id in column {series!r}; drop or label them")
    return {key: SeriesParts.of(rows, f"series {key!r}") for key, rows in _series_frames(frame, series, time)}


def _impute_series(model, frame: pd.DataFrame, series: str, time: str | None, seed: int, n_samples: int,
                   quantiles: Sequence[float], path: Path | None):
    """Every series of one partition, each imputed whole with its own seed, in order of appearance."""

    def outputs():
        for key, rows in _series_frames(frame, series, time):
            result = model.impute(rows, n_samples, seed=series_seed(seed, key))
            out = result.to_frame(quantiles) if quantiles else result.median()
            out.insert(0, series, pd.Series([key] * len(out), index=out.index, dtype=frame[series].dtype))
            yield out

    if path is None:
        return pd.concat(list(outputs()))
    return str(path), write_parquet(outputs(), path, None)


# ------------------------------------------------------------------------- checks


def _check_many(summaries: list[dict], model: DiffusionImputer, columns: Sequence[str]) -> None:
    """Many series: each id in one partition, a window long, one time step for all, features observed."""
    where: dict = {}
    for number, found in enumerate(summaries):
        for key in found:
            where.setdefault(key, []).append(number)
    split = {key: numbers for key, numbers in where.items() if len(numbers) > 1}
    if split:
        shown = ", ".join(f"{key!r} (partitions {', '.join(map(str, numbers))})"
                          for key, numbers in list(split.items())[:_MAX_NAMED])
        shown += f" and {len(split) - _MAX_NAMED} more" if len(split) > _MAX_NAMED else ""
        raise ValueError(f"series ids appear in more than one partition: {shown}; each series must be in one "
                         "partition (e.g. ddf.shuffle(on=<series column>)), and an id used twice must be renamed")
    merged = {key: parts for found in summaries for key, parts in found.items()}
    short = [key for key, parts in merged.items() if parts.rows < model.window_]
    if short:
        raise ValueError(f"series {_named(short)} are shorter than the model's window ({model.window_} steps); a "
                         "series imputer needs a whole window of context: drop them, or refit with a shorter window")
    empty = {key: [c for c, n in zip(columns, parts.observed) if n == 0] for key, parts in merged.items()}
    empty = {key: names for key, names in empty.items() if names}
    if empty:
        shown = "; ".join(f"{key!r}: {names}" for key, names in list(empty.items())[:_MAX_NAMED])
        raise ValueError(f"series have features with no observed value ({shown}); there is nothing to fill those "
                         "gaps from: drop those series or fill those features first")
    steps: dict = {}
    for key, parts in merged.items():
        clock = parts.clock()
        if clock is not None:
            steps.setdefault(clock[1], []).append(key)
    if len(steps) > 1:
        shown = "; ".join(f"step {step:g}: {_named(keys)}" for step, keys in steps.items())
        raise ValueError(f"series have different time steps (median step in the index's units: {shown}); the model "
                         "reads time in steps, so resample them to one frequency first (e.g. frame.resample(...))")


# ------------------------------------------------------------------------- public API


def impute(
    data,
    model: DiffusionImputer,
    *,
    n_samples: int | None = None,
    seed: int | None = None,
    quantiles: Sequence[float] = (),
    output: str | Path | None = None,
    series: str | None = None,
    time: str | None = None,
    chunk_rows: int | None = None,
    memory: int = DEFAULT_MEMORY,
):
    """Impute a Dask DataFrame or Array with a fitted ``DiffusionImputer`` on the current Dask scheduler.

    data: one long series partitioned by time (a Dask DataFrame indexed by time, or a Dask Array
        ``(time, features)``), or, with ``series``, many series in long format.
    series: the column holding each row's series id; every series must lie in one partition.
    time: with ``series``, the column of timestamps (default: the index).
    n_samples, seed: as ``DiffusionImputer.impute`` (defaults: the model's); see the module notes
        for how the seed reaches each series.
    quantiles: also give ``<column>_q<level>`` columns, as ``ImputationResult.to_frame``.
    output: a new or empty folder: each partition writes ``part.NNNNN.parquet`` there (atomically,
        chunk by chunk) and the paths are returned; None returns a lazy Dask DataFrame.
    chunk_rows, memory: rows imputed at a time within a partition (default: ``memory`` bytes of
        draws, see ``io.stream.chunk_rows_for``).

    The output has the columns (and index) of the input: imputed medians, then quantile columns;
    with ``series``, the id column first and the index the time.
    """
    import dask

    frame = _as_frame(data, model)
    n_samples = check_positive_int(model.n_samples if n_samples is None else n_samples, "n_samples")
    seed = model.random_state if seed is None else check_seed(seed)
    quantiles = tuple(quantiles)
    if chunk_rows is not None:
        check_positive_int(chunk_rows, "chunk_rows")
    folder = _output_folder(output) if output is not None else None
    ignored = [c for c in (series, time) if c is not None]
    for name in ignored:
        if name not in frame.columns:
            raise ValueError(f"column {name!r} not in the data; columns are {list(frame.columns)}")
    columns = [c for c in frame.columns if c not in ignored]
    check_feature_columns(model, columns, "the data")
    quiet = quiet_copy(model)
    parts = frame.to_delayed()
    paths = [None if folder is None else folder / f"part.{i:05d}.parquet" for i in range(len(parts))]
    if series is None:
        if time is not None:
            raise ValueError("time names the timestamp column of many series (with series=); one series is indexed "
                             "by time: set_index(time) first")
        tasks = _one_series_tasks(parts, quiet, columns, paths, n_samples, seed, quantiles, chunk_rows, memory)
        meta = _meta(frame._meta, quantiles)
    else:
        summaries = dask.compute(*[dask.delayed(_series_summaries)(p, i, series, time) for i, p in enumerate(parts)])
        _check_many(summaries, quiet, columns)
        reference = _ship(quiet)
        tasks = [dask.delayed(_impute_series)(reference, part, series, time, seed, n_samples, quantiles, path)
                 for part, path, found in zip(parts, paths, summaries) if found]
        meta = _meta(frame._meta[columns] if time is None else frame._meta.set_index(time)[columns], quantiles)
        meta.insert(0, series, frame._meta[series])
    if folder is not None:
        return [Path(path) for path, _ in dask.compute(*tasks)]
    import dask.dataframe as dd

    return dd.from_delayed(tasks, meta=meta)


def _one_series_tasks(parts, model, columns, paths, n_samples, seed, quantiles, chunk_rows, memory) -> list:
    """One task per non-empty partition: its rows, imputed from them and the halo sliced from the
    partitions around it."""
    import dask

    summaries = dask.compute(*[dask.delayed(_summary)(part, i) for i, part in enumerate(parts)])
    whole = SeriesParts()
    for number, found in enumerate(summaries):
        whole = whole.then(found, f"partition {number}")
    whole.check(model, columns)
    length, clock = whole.rows, whole.clock()
    bounds = np.concatenate([[0], np.cumsum([s.rows for s in summaries])])
    options = {"n_samples": n_samples, "seed": seed, "quantiles": quantiles,
               "chunk_rows": chunk_rows if chunk_rows is not None else chunk_rows_for(model, n_samples, memory)}
    reference = _ship(model)
    tasks = []
    for number in range(len(parts)):
        start, stop = int(bounds[number]), int(bounds[number + 1])
        if start == stop:
            continue
        low, high = model.span_halo(start, stop, length)
        pieces = []
        for other in range(len(parts)):
            first, end = max(low, int(bounds[other])), min(high, int(bounds[other + 1]))
            if first >= end:
                continue
            whole_part = other == number
            pieces.append(parts[other] if whole_part else
                          dask.delayed(_rows)(parts[other], first - int(bounds[other]), end - int(bounds[other])))
        tasks.append(dask.delayed(_impute_part)(reference, pieces, low, (start, stop), length, clock, options,
                                                paths[number]))
    return tasks


@contextmanager
def local_cluster(n_workers: int | None = None):
    """A ``distributed.LocalCluster`` of single-threaded worker processes (one per core by default)
    and its ``Client``, with glibc's own allocator settings in the workers.

    Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in the workers it spawns, to hand memory back
    to the system sooner; glibc then maps and unmaps every buffer over 64 KiB, the network's
    activations included, and imputing a series ran 1.4-1.7x slower on this project's machine. The
    setting is left out here; on a cluster of your own, set the Dask config
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_`` to null for the same effect."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


@contextmanager
def scheduler(name: str, quiet: bool = False) -> Iterator[None]:
    """Run the block's Dask work on ``name``: ``"local"`` starts a ``LocalCluster`` (one
    single-threaded worker process per core) and closes it after; an address such as
    ``"tcp://host:8786"`` connects to a running scheduler; ``"threads"`` or ``"sync"`` use a local
    scheduler of dask's in this process. ``quiet``: distributed logs only warnings and errors
    meanwhile (under an INFO root logger, as the CLI sets, it reports every worker's start and stop)."""
    import dask

    if name in _LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=name):
            yield
        return
    from distributed import Client

    if name != "local" and "://" not in name:
        raise ValueError(f"scheduler must be 'local', a scheduler address such as tcp://host:8786, or one of "
                         f"{_LOCAL_SCHEDULERS}, got {name!r}")
    with _distributed_logs(logging.WARNING if quiet else None):
        if name == "local":
            with local_cluster():
                yield
        else:
            with Client(name):
                yield


@contextmanager
def _distributed_logs(level: int | None) -> Iterator[None]:
    """distributed's loggers at no lower than ``level`` for the block (None: as they are)."""
    logger = logging.getLogger("distributed")
    before = logger.level
    if level is not None:
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(before)


def read_dask(path: str | Path, index_col: str | None = None, series: str | None = None, *,
              sep: str | None = None, decimal: str | None = None):
    """A Parquet or CSV file (or a glob of them) as a Dask DataFrame: for one series indexed by
    ``index_col`` (else by the index saved in the Parquet file); with ``series``, ``index_col`` is
    the time column of the long format and stays a column. CSV files are read with ``sep`` and
    ``decimal``, else with those the first local file shows (``io.dialect.sniff_dialect``)."""
    import dask.dataframe as dd

    parquet = str(path).lower().endswith((".parquet", ".pq"))
    dates = [index_col] if index_col is not None and not parquet else False
    if parquet:
        frame = dd.read_parquet(path)
    else:
        frame = dd.read_csv(path, parse_dates=dates, **_csv_dialect(path, sep, decimal))
    if index_col is not None and series is None:
        frame = frame.set_index(index_col, sorted=True)
    return frame


def _csv_dialect(path: str | Path, sep: str | None, decimal: str | None) -> dict[str, str]:
    """What ``read_table`` would read the first file with; files elsewhere (``s3://``) as given, else pandas'."""
    local = sorted(glob.glob(str(path)))
    if local:
        dialect = sniff_dialect(local[0], sep, decimal)
        return {"sep": dialect.sep, "decimal": dialect.decimal, "quotechar": dialect.quote}
    return {"sep": "," if sep is None else check_separator(sep),
            "decimal": "." if decimal is None else check_decimal(decimal)}
