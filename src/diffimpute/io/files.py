"""Reading and writing user files: CSV or Parquet in and out, never a half-written file."""

from __future__ import annotations

import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from diffimpute.io.dialect import Dialect, read_delimited, sniff_dialect

_PARQUET = {".parquet", ".pq"}
_CSV = {".csv", ".txt", ""}
# A date with a four-digit year, and maybe a time and offset: "1.2.3" or "06-12-34" are versions or codes.
_DATE_LIKE = re.compile(r"\s*(\d{4}[/.-]\d{1,2}[/.-]\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4})"
                        r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?\s*")
_DAY_MONTH = re.compile(r"^\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{2,4})(?!\d)")  # 31/01/2024, 01.02.24, 1-2-2024


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a file that has no name yet, flush it to disk and give it its name
    (``atomic_file``)."""
    with atomic_file(path) as file:
        file.write(payload)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write in as many pieces as needed (a Parquet file streamed chunk by chunk)
    that appears at ``path`` only, complete and flushed to disk, when the block ends without error.

    Where the system allows (Linux ``O_TMPFILE``), the data go to an unnamed file that the kernel
    removes if the process dies, even by SIGKILL; it is linked beside ``path`` and renamed into
    place only once complete. Elsewhere a hidden temporary file is used instead, removed on any
    error the process survives. The file gets the permissions a plain ``open(path, "w")`` would
    (0666 less the umask); a symlink at ``path`` is kept and its target replaced.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    unnamed = _open_unnamed(path.parent)
    if unnamed is None:
        with _via_temporary(path) as file:
            yield file
    else:
        with _unnamed(unnamed, path) as file:
            yield file
    _sync_folder(path.parent)


def _open_unnamed(folder: Path) -> int | None:
    if not hasattr(os, "O_TMPFILE") or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666)  # the umask applies, as for open()
    except OSError:  # a filesystem without unnamed files
        return None


@contextmanager
def _unnamed(handle: int, path: Path) -> Iterator[BinaryIO]:
    temporary = path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        with os.fdopen(handle, "wb", closefd=False) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        _link_unnamed(handle, temporary)  # a name only once the data are on disk
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    finally:
        os.close(handle)


def _link_unnamed(handle: int, name: Path) -> None:
    """linkat(2) through /proc with AT_SYMLINK_FOLLOW; passing a folder descriptor makes Python use
    linkat rather than link, which would link the /proc entry itself."""
    descriptors = os.open("/proc/self/fd", os.O_RDONLY)
    try:
        os.link(str(handle), name, src_dir_fd=descriptors, follow_symlinks=True)
    finally:
        os.close(descriptors)


@contextmanager
def _via_temporary(path: Path) -> Iterator[BinaryIO]:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every system can open a folder)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def check_writable(path: str | Path, suffixes: set[str] | None = None) -> Path:
    """Fail before any expensive work if ``path`` cannot be written: a folder on the way that is a
    file, a folder at ``path`` itself, or a suffix not in ``suffixes``. Missing folders are fine
    (writing creates them)."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(f"cannot write {str(path)!r}: name it with one of {sorted(s for s in suffixes if s)}")
    if path.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: it is a folder; name a file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"cannot write {str(path)!r}: {str(parent)!r} is a file, not a folder")
            break
    return path


TABLE_SUFFIXES = _PARQUET | _CSV


def read_table(path: str | Path, index_col: str | None = None, *, sep: str | None = None,
               decimal: str | None = None, dayfirst: bool | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file into a frame indexed by time.

    A CSV file's separator, quote character and decimal mark are found from its first lines unless
    ``sep`` or ``decimal`` are given (``diffimpute.io.dialect``): SKAB's ``;`` and European ``10,4``
    read as they are. With ``index_col`` that column becomes the index. Otherwise a first column that is
    not numeric and parses as dates becomes a DatetimeIndex, which the imputer uses as timestamps;
    any other column of dates written as text becomes a date column (a table imputes it in days).
    Dates written ``31/01/2024`` are read day first when ``dayfirst`` is True, or, in a CSV file,
    when it is None and a day above 12 (or dots, ``31.01.2024``) shows it, or when only day first
    puts the dates in time order (with a warning that says so). The rows keep the file's order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() in _PARQUET:
        frame = pd.read_parquet(path)
        dayfirst = bool(dayfirst)  # as the chunks of ``io.stream`` read it, which cannot see the whole column
    else:
        frame = read_delimited(path, sep, decimal)
    if index_col is not None:
        if index_col not in frame.columns:
            raise ValueError(f"index column {index_col!r} not in {path}; columns are {list(frame.columns)}")
        return _parse_date_columns(_parse_time_index(frame.set_index(index_col),
                                                     _day_first(frame[index_col], dayfirst)), dayfirst)
    first = frame.columns[0] if len(frame.columns) else None
    if first is None or pd.api.types.is_numeric_dtype(frame[first]):
        return _parse_date_columns(frame, dayfirst)
    day_first = _day_first(frame[first], dayfirst)
    if _are_times(frame[first].head(20), day_first):
        frame = _parse_time_index(frame.set_index(first), day_first)
    return _parse_date_columns(frame, dayfirst)


def _parse_date_columns(frame: pd.DataFrame, dayfirst: bool | None) -> pd.DataFrame:
    """Text columns whose every value is a date with a four-digit year become date columns (mixed
    offsets as UTC); one value in another format keeps the column text, never parsed value by value."""
    for name, column in frame.items():
        text = column.dropna()
        textual = pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype)
        if not textual or text.empty or not text.astype(str).str.fullmatch(_DATE_LIKE).all():
            continue
        day_first = _day_first(column, dayfirst)
        for utc in (False, True):  # mixed UTC offsets (a daylight-saving change) parse only as UTC
            try:
                frame[name] = _to_times(column, utc, day_first, value_by_value=False)
                break
            except (ValueError, TypeError):
                continue
    return frame


def csv_dialect(path: str | Path, sep: str | None = None, decimal: str | None = None) -> Dialect | None:
    """The separator and decimal mark ``read_table`` reads ``path`` with; None for Parquet."""
    return None if Path(path).suffix.lower() in _PARQUET else sniff_dialect(path, sep, decimal)


def _day_first(values: pd.Series, dayfirst: bool | None) -> bool:
    """Whether to read the dates in ``values`` day first. Only dates written day/month/year or
    month/day/year qualify: pandas' ``dayfirst`` also swaps month and day of ISO dates."""
    text = values.dropna().astype(str)
    if text.empty or not _DAY_MONTH.match(text.iloc[0]):  # ISO and the like: no need to scan them all
        return False
    dates = pd.Series(text.str.strip().str.slice(0, 10).unique())  # the date part, once per day
    parts = dates.str.extract(_DAY_MONTH)
    if parts[0].isna().any():
        return False
    if dayfirst is not None:
        return dayfirst
    first, second = parts[0].astype(int), parts[2].astype(int)
    if (first > 12).any() or (second > 12).any():
        return bool((first > 12).any())
    if (parts[1] == ".").all():  # 01.02.2024 is day first wherever dots are used
        return True
    return _only_day_first_in_order(dates, first, second, parts[3].astype(int), values.name)


def _only_day_first_in_order(dates: pd.Series, first: pd.Series, second: pd.Series, year: pd.Series,
                             column: object) -> bool:
    """For dates that read either way (no day above 12): month first, as pandas reads them, unless
    only day first puts them in time order, as a series' rows are. ``dates`` are the distinct
    dates in the order of the file, their fields ``first``/``second``/``year`` as written."""
    year = year.where(year >= 100, year + np.where(year < 69, 2000, 1900))  # strptime's %y

    def in_order(month: pd.Series, day: pd.Series) -> bool:
        return bool((np.diff((year * 10_000 + month * 100 + day).to_numpy()) >= 0).all())

    if in_order(first, second) or not in_order(second, first):
        return False
    example = _DAY_MONTH.match(dates.iloc[0]).group(0).strip()
    warnings.warn(f"the dates of column {str(column)!r} are read day first ({example!r} is "
                  f"{year.iloc[0]}-{second.iloc[0]:02d}-{first.iloc[0]:02d}): only so are they in time order; "
                  f"pass --monthfirst (dayfirst=False in Python) to read them month first",
                  UserWarning, stacklevel=4)
    return True


def _to_times(values: pd.Series | pd.Index, utc: bool, dayfirst: bool,
              value_by_value: bool = True) -> pd.Series | pd.DatetimeIndex:
    """Fast when every value is written as the first one is (pandas infers the format once);
    otherwise value by value, or (``value_by_value=False``) the ValueError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": parsed value by value
            return pd.to_datetime(values, utc=utc, dayfirst=dayfirst)
    except (ValueError, TypeError):
        if not value_by_value:
            raise
        return pd.to_datetime(values, format="mixed", utc=utc, dayfirst=dayfirst)


def _are_times(values: pd.Series, dayfirst: bool = False) -> bool:
    for utc in (False, True):  # mixed UTC offsets (a daylight-saving change) parse only as UTC
        try:
            _to_times(values, utc, dayfirst)
            return True
        except (ValueError, TypeError):
            continue
    return False


def _parse_time_index(frame: pd.DataFrame, dayfirst: bool = False) -> pd.DataFrame:
    """Timestamps become a DatetimeIndex; offsets that change within the file (a daylight-saving
    change) become UTC, so the index is still times and its order can be checked."""
    if pd.api.types.is_numeric_dtype(frame.index.dtype):
        return frame
    for utc in (False, True):
        try:
            stamps = _to_times(frame.index, utc, dayfirst)
        except (ValueError, TypeError):
            continue
        if isinstance(stamps, pd.DatetimeIndex):
            frame.index = stamps.rename(frame.index.name)
            return frame
    return frame


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write CSV or Parquet (by suffix) atomically. A CSV keeps the index as its first column (the
    times of a series), unless it is only unnamed row numbers (a table read without an index):
    the file then has the columns it was read with, not an extra one."""
    path = Path(path)
    check_writable(path, TABLE_SUFFIXES)
    if path.suffix.lower() in _PARQUET:
        payload = frame.to_parquet()
    else:
        row_numbers = frame.index.name is None and frame.index.equals(pd.RangeIndex(len(frame)))
        payload = frame.to_csv(index=not row_numbers).encode()
    atomic_write_bytes(path, payload)
