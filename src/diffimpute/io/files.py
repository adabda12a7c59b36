"""Reading and writing user files: CSV or Parquet in and out, never a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

_PARQUET = {".parquet", ".pq"}
_CSV = {".csv", ".txt", ""}


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file beside ``path``, flush it to disk and rename it into place.

    The file gets the permissions a plain ``open(path, "w")`` would (0666 less the umask), not the
    temporary file's 0600; a symlink at ``path`` is kept and its target replaced.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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


def read_table(path: str | Path, index_col: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file into a frame indexed by time.

    With ``index_col`` that column becomes the index. Otherwise a first column that is not
    numeric and parses as dates becomes a DatetimeIndex, which the imputer uses as timestamps.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    frame = pd.read_parquet(path) if path.suffix.lower() in _PARQUET else pd.read_csv(path)
    if index_col is not None:
        if index_col not in frame.columns:
            raise ValueError(f"index column {index_col!r} not in {path}; columns are {list(frame.columns)}")
        return _parse_time_index(frame.set_index(index_col))
    first = frame.columns[0] if len(frame.columns) else None
    if first is not None and not pd.api.types.is_numeric_dtype(frame[first]) and _are_times(frame[first].head(20)):
        return _parse_time_index(frame.set_index(first))
    return frame


def _are_times(values: pd.Series) -> bool:
    for utc in (False, True):  # mixed UTC offsets (a daylight-saving change) parse only as UTC
        try:
            pd.to_datetime(values, format="mixed", utc=utc)
            return True
        except (ValueError, TypeError):
            continue
    return False


def _parse_time_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps become a DatetimeIndex; offsets that change within the file (a daylight-saving
    change) become UTC, so the index is still times and its order can be checked."""
    if pd.api.types.is_numeric_dtype(frame.index.dtype):
        return frame
    for utc in (False, True):
        try:
            stamps = pd.to_datetime(frame.index, format="mixed", utc=utc)
        except (ValueError, TypeError):
            continue
        if isinstance(stamps, pd.DatetimeIndex):
            frame.index = stamps.rename(frame.index.name)
            return frame
    return frame


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write CSV or Parquet (by suffix) atomically; the index is kept as the first column."""
    path = Path(path)
    check_writable(path, TABLE_SUFFIXES)
    if path.suffix.lower() in _PARQUET:
        payload = frame.to_parquet()
    else:
        payload = frame.to_csv().encode()
    atomic_write_bytes(path, payload)
