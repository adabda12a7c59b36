"""Impute a series longer than memory: read it in chunks, impute each with its halo, write as it goes.

The imputer draws each window from the seed, the window's own cells and its place in the whole
series (``DiffusionImputer.impute_span``), so a chunk of rows imputed from its halo (at most a
window on each side) equals the same rows of the whole series imputed at once, bit for bit. This
module is the one loop over chunks: ``impute_parquet`` streams a Parquet file through it, and
``diffimpute.dask`` runs it on each partition of a Dask collection.

What the whole series decides is gathered first, in a pass that keeps a few numbers per part
(``SeriesParts``): the length, whether timestamps are sorted and unique across parts, the time
step (the exact median of the steps, from a count of each distinct step), and which features are
observed anywhere. Memory is then bounded by the chunk (``chunk_rows``), not by the series: the
draws of a chunk, their calibration and summaries take about 190 bytes per row, feature and draw
(measured with psutil on 1,000-5,000-row chunks); ``BYTES_PER_DRAW`` leaves a margin, and a chunk
is sized so that its draws take ``memory`` bytes.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.utils.validation import check_is_fitted

from diffimpute._progress import progress
from diffimpute._validation import check_columns, check_positive_int
from diffimpute.data.schema import Clock, time_ticks
from diffimpute.io.files import _are_times, _parse_time_index, atomic_file, check_writable
from diffimpute.tasks.imputer import DiffusionImputer

DEFAULT_MEMORY = 512 * 2**20  # bytes of draws per chunk
BYTES_PER_DRAW = 300  # per row, draw and feature while a chunk is imputed (measured, with margin)
_BATCH_CELLS = 2**20  # cells per Parquet read (8 MiB of float64), so a read's memory does not grow with features


# ------------------------------------------------------------------------- the whole series


@dataclass
class SeriesParts:
    """What checks and positions need from a whole series, gathered part by part in order.

    ``steps`` counts each distinct step between consecutive timestamps (one entry for a regular
    series), so the median step, and with it every time position, is exactly what
    ``data.schema.series_clock`` gives for the whole series; ``observed`` counts each feature's
    observed cells. None ticks: rows are only ordered (positions 0, 1, 2...).
    """

    rows: int = 0
    first: float | None = None
    last: float | None = None
    steps: Counter = field(default_factory=Counter)
    observed: np.ndarray | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame, name: str) -> SeriesParts:
        """The summary of one part; ``name`` (e.g. "partition 3") says where a problem is."""
        ticks = time_ticks(frame)
        observed = frame.notna().to_numpy().sum(axis=0)
        if ticks is None or not len(ticks):
            return cls(rows=len(frame), observed=observed)
        steps = np.diff(ticks)
        bad = np.flatnonzero(steps <= 0)
        if len(bad):
            at = frame.index[bad[0] + 1]
            what = "a repeated timestamp" if steps[bad[0]] == 0 else "a timestamp earlier than the one before it"
            raise ValueError(f"{name} has {what} ({at!r}); sort by time and drop duplicated timestamps first")
        values, counts = np.unique(steps, return_counts=True)
        return cls(len(frame), float(ticks[0]), float(ticks[-1]), Counter(dict(zip(values.tolist(), counts.tolist()))),
                   observed)

    def then(self, other: SeriesParts, name: str) -> SeriesParts:
        """This summary followed by ``other``, the next part (``name``) of the same series."""
        if not other.rows:
            return self
        if not self.rows:
            return other
        steps = self.steps + other.steps
        if self.last is not None and other.first is not None:
            border = other.first - self.last
            if border <= 0:
                raise ValueError(f"{name} starts at or before the end of the part before it; the series must be "
                                 "sorted by time, without repeated timestamps, across parts (sort it first)")
            steps[border] += 1
        observed = self.observed + other.observed
        return SeriesParts(self.rows + other.rows, self.first, other.last, steps, observed)

    def clock(self) -> Clock | None:
        """``(first tick, median step)``, equal to ``series_clock`` of the whole series' ticks."""
        total = sum(self.steps.values())
        if self.first is None or total == 0:
            return None
        values = sorted(self.steps)
        ends = np.cumsum([self.steps[v] for v in values])

        def at(rank: int) -> float:
            return values[int(np.searchsorted(ends, rank, side="right"))]

        middle = np.array([at((total - 1) // 2), at(total // 2)])
        step = float(np.mean(middle)) if total % 2 == 0 else float(middle[0])  # as np.median computes it
        return (self.first, step) if step > 0 else None

    def check(self, model: DiffusionImputer, columns: Sequence[str]) -> None:
        """What ``impute`` checks of a whole series: every feature observed somewhere, a window long."""
        empty = [str(c) for c, n in zip(columns, self.observed) if n == 0] if self.observed is not None else []
        if empty:
            raise ValueError(
                f"features {empty} have no observed value in the whole series; a series imputer fills gaps from "
                "the values around them, so pass data with some observed values of every feature (or drop those "
                "columns). A part with no observed value of a feature is fine: its windows see the values around it"
            )
        model._check_length(self.rows)


# ------------------------------------------------------------------------- the one loop over chunks


def quiet_copy(model: DiffusionImputer) -> DiffusionImputer:
    """The fitted model without its own progress bars (one per chunk would flood a log); shares
    the weights, so it costs nothing and leaves the caller's model as it was."""
    check_is_fitted(model, "model_")
    quiet = copy.copy(model)
    quiet.verbose = False
    return quiet


def check_feature_columns(model: DiffusionImputer, columns: Sequence[str], name: str) -> None:
    """The features of the data (all columns but time and series id) are those the model was fitted on."""
    check_is_fitted(model, "model_")
    if model.schema_.kind == "frame":
        check_columns([str(c) for c in columns], model.schema_.columns, name)
    elif len(columns) != model.n_features_in_:
        raise ValueError(f"{name} has {len(columns)} feature columns but the imputer was fitted on "
                         f"{model.n_features_in_}; pass data with the same features as at fit")


def chunk_rows_for(model: DiffusionImputer, n_samples: int, memory: int = DEFAULT_MEMORY) -> int:
    """Rows per chunk so that a chunk's draws take about ``memory`` bytes (at least two windows)."""
    per_row = BYTES_PER_DRAW * n_samples * model.n_features_in_
    return max(2 * model.window_, int(memory // per_row))


def impute_chunks(
    frames: Iterable[pd.DataFrame],
    model: DiffusionImputer,
    *,
    first: int,
    span: tuple[int, int],
    length: int,
    clock: Clock | None,
    n_samples: int,
    seed: int | None,
    quantiles: Sequence[float] = (),
    chunk_rows: int,
) -> Iterator[pd.DataFrame]:
    """Imputed rows ``span = [start, stop)`` of a series of ``length`` rows, chunk by chunk.

    ``frames``: consecutive parts of the series, the first starting at row ``first``, covering at
    least ``model.span_halo(*span, length)``; they are read only as far as each chunk needs and
    dropped once behind it. Each chunk comes back as ``ImputationResult.median()``, or
    ``to_frame(quantiles)`` with quantile columns.
    """
    parts = iter(frames)
    held, held_first = [], first  # frames in memory and the row of the first
    held_rows = 0
    for start in range(span[0], span[1], chunk_rows):
        stop = min(span[1], start + chunk_rows)
        low, high = model.span_halo(start, stop, length)
        while held_first + held_rows < high:
            part = next(parts, None)
            if part is None:
                raise ValueError(f"the parts end at row {held_first + held_rows} but rows [{start}, {stop}) need "
                                 f"rows up to {high}")
            held.append(part)
            held_rows += len(part)
        while held and held_first + len(held[0]) <= low:
            held_first += len(held[0])
            held_rows -= len(held[0])
            held.pop(0)
        block = pd.concat(held) if len(held) > 1 else held[0]
        block = block.iloc[low - held_first:high - held_first]
        result = model.impute_span(block, (start, stop), offset=low, length=length, clock=clock,
                                   n_samples=n_samples, seed=seed)
        yield result.to_frame(quantiles) if quantiles else result.median()


# ------------------------------------------------------------------------- Parquet in and out


class ParquetSink:
    """Frames appended to one Parquet file that appears, complete, only when ``close`` succeeds
    (``io.files.atomic_file``). With ``rows``, frames are consecutive rows of one series: a
    RangeIndex is kept as pandas keeps it (no column), the whole file's range declared from
    ``rows``; otherwise (and for any other index) the index is written as columns."""

    def __init__(self, path: str | Path, rows: int | None) -> None:
        self.path, self.rows = Path(path), rows
        self._file = atomic_file(self.path)
        self._handle = self._file.__enter__()
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._range = False

    def write(self, frame: pd.DataFrame) -> None:
        if self._writer is None:
            self._open(frame)
        table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=not self._range)
        self._writer.write_table(table)

    def _open(self, frame: pd.DataFrame) -> None:
        self._range = self.rows is not None and isinstance(frame.index, pd.RangeIndex)
        schema = pa.Schema.from_pandas(frame, preserve_index=None if self._range else True)
        if self._range:
            pandas = json.loads(schema.metadata[b"pandas"])
            step = frame.index.step
            pandas["index_columns"] = [{"kind": "range", "name": frame.index.name, "start": frame.index.start,
                                        "stop": frame.index.start + self.rows * step, "step": step}]
            schema = schema.with_metadata({**schema.metadata, b"pandas": json.dumps(pandas).encode()})
        self._schema = schema
        self._writer = pq.ParquetWriter(self._handle, schema)

    def close(self) -> None:
        """Finish the file and give it its name."""
        if self._writer is None:
            raise ValueError(f"nothing was written to {self.path}")
        self._writer.close()
        self._file.__exit__(None, None, None)

    def abort(self, error: BaseException) -> None:
        """Drop the unfinished file: nothing appears at ``path``."""
        if self._writer is not None:
            self._writer.close()
        try:
            self._file.__exit__(type(error), error, error.__traceback__)
        except BaseException as raised:
            if raised is not error:
                raise


def write_parquet(frames: Iterable[pd.DataFrame], path: str | Path, rows: int | None) -> int:
    """Write ``frames`` to one Parquet file atomically (``ParquetSink``: ``rows``, the rows in all
    when they are consecutive rows of one series); returns the rows written."""
    sink = ParquetSink(path, rows)
    written = 0
    try:
        for frame in frames:
            sink.write(frame)
            written += len(frame)
    except BaseException as error:
        sink.abort(error)
        raise
    sink.close()
    return written


class ParquetSeries:
    """One series stored in a Parquet file, read in batches as the frames ``read_table`` would give:
    the pandas index it was saved with (a RangeIndex keeps its labels), else ``index_col``, else a
    first column of timestamps. ``batch_rows``: rows per read (default: ``_BATCH_CELLS`` cells).

    The file is read without pre-buffering: with it, pyarrow (26) keeps every column chunk read so
    far until the reader is done (its read cache has no eviction, apache/arrow#39808), so a pass
    over a 1,000,000 x 100 file held about 1 GiB of Arrow memory at its end; without it, the
    reader holds about one row group (measured: 127 MiB for row groups of 50,000 x 100 floats)."""

    def __init__(self, path: str | Path, index_col: str | None = None, batch_rows: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such file: {self.path}")
        self.file = pq.ParquetFile(self.path, pre_buffer=False)
        self.rows = self.file.metadata.num_rows
        names = self.file.schema_arrow.names
        self.batch_rows = max(1, _BATCH_CELLS // max(1, len(names))) if batch_rows is None else batch_rows
        pandas = self.file.schema_arrow.pandas_metadata or {}
        stored = pandas.get("index_columns", [])
        self.range = next((i for i in stored if isinstance(i, dict)), None)
        saved = [i for i in stored if isinstance(i, str)]
        if len(saved) > 1:
            raise ValueError(f"{self.path} has a {len(saved)}-level index {saved}; stream one series with one time index")
        self.index_col = index_col
        self.saved_index = saved[0] if saved and index_col is None else None
        if index_col is not None and index_col not in names:
            raise ValueError(f"index column {index_col!r} not in {self.path}; columns are {names}")
        if index_col is None and self.saved_index is None and names and self._first_column_is_time(names[0]):
            self.index_col = names[0]
        self.columns = [n for n in names if n not in (self.index_col, self.saved_index)]

    def _first_column_is_time(self, name: str) -> bool:
        kind = self.file.schema_arrow.field(name).type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return True
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)) or not self.rows:
            return False
        head = next(self.file.iter_batches(batch_size=20, columns=[name])).to_pandas()[name]
        return _are_times(head)

    def frames(self) -> Iterator[pd.DataFrame]:
        """The series in batches, in order, each indexed as the whole file would be."""
        offset = 0
        for batch in self.file.iter_batches(batch_size=self.batch_rows):
            frame = pa.Table.from_batches([batch]).to_pandas()
            if self.index_col is not None:
                frame = _parse_time_index(frame.set_index(self.index_col))
            elif self.range is not None:
                start, step = self.range["start"], self.range["step"]
                frame.index = pd.RangeIndex(start + offset * step, start + (offset + len(frame)) * step, step,
                                            name=self.range["name"])
            offset += len(frame)
            yield frame

    def summary(self) -> SeriesParts:
        """The pass over the whole file that ``impute_parquet`` needs before imputing."""
        parts = SeriesParts()
        first = 0
        for frame in self.frames():
            name = f"rows {first}..{first + len(frame) - 1} of {self.path.name}"
            parts = parts.then(SeriesParts.of(frame, name), name)
            first += len(frame)
        return parts


@dataclass(frozen=True)
class StreamReport:
    """What ``impute_parquet`` did: rows and imputed cells written, chunks, rows per chunk."""

    rows: int
    imputed_cells: int
    chunks: int
    chunk_rows: int


def impute_parquet(
    source: str | Path,
    model: DiffusionImputer,
    output: str | Path,
    *,
    n_samples: int | None = None,
    seed: int | None = None,
    quantiles: Sequence[float] = (),
    index_col: str | None = None,
    chunk_rows: int | None = None,
    memory: int = DEFAULT_MEMORY,
    verbose: bool = True,
) -> StreamReport:
    """Impute the series in Parquet file ``source`` into Parquet file ``output``, chunk by chunk.

    The file written equals ``model.impute(read_table(source, index_col), n_samples, seed=seed)``'s
    ``median()`` (or ``to_frame(quantiles)``), bit for bit, while memory stays bounded by a chunk:
    ``chunk_rows`` rows (default: as many as ``memory`` bytes of draws allow, see
    ``chunk_rows_for``) plus their halo and the reader's row group of ``source`` (write ``source``
    in row groups of some 10,000s of rows: pyarrow's default, up to 1,048,576 rows, makes that one
    group the largest term). ``output`` appears only when complete.
    """
    check_writable(output, {".parquet", ".pq"})
    n_samples = model.n_samples if n_samples is None else n_samples
    series = ParquetSeries(source, index_col)
    check_feature_columns(model, series.columns, series.path.name)
    parts = series.summary()
    parts.check(model, series.columns)
    rows = check_positive_int(chunk_rows, "chunk_rows") if chunk_rows is not None else chunk_rows_for(
        model, n_samples, memory)
    chunks = -(-series.rows // rows)
    quiet = quiet_copy(model)  # one bar over chunks rather than one per chunk
    with progress(total=chunks, desc="imputing", unit="chunks", enabled=verbose) as bar:
        def counted(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for frame in frames:
                bar.update(1)
                yield frame

        written = write_parquet(counted(impute_chunks(
            series.frames(), quiet, first=0, span=(0, series.rows), length=series.rows, clock=parts.clock(),
            n_samples=n_samples, seed=seed, quantiles=quantiles, chunk_rows=rows)), output, series.rows)
    imputed = int(parts.rows * len(series.columns) - parts.observed.sum())
    return StreamReport(rows=written, imputed_cells=imputed, chunks=chunks, chunk_rows=rows)
