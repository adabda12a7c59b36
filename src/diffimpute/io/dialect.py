"""How a delimited text file writes its table: the field separator, quote and decimal mark.

Real files are not all pandas' ``,``, ``"`` and ``.``: SKAB's sensor logs are ``;``-separated,
European spreadsheets write ``10,4`` in ``;``-separated columns, and some tools quote with ``'``.
All three are found from the first lines, and a parse that went wrong (one column, numbers left
as text) is an error that names the fix, never a frame of garbage.
"""

from __future__ import annotations

import csv
import itertools
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SEPARATORS = (",", ";", "\t", "|")
QUOTES = ('"', "'")
DECIMAL_MARKS = (".", ",")
_SAMPLE_LINES = 100
_SEPARATOR_ALIASES = {"tab": "\t", "\\t": "\t"}

_COMMA_DECIMAL = re.compile(r"[+-]?\d+,\d+")
_POINT_DECIMAL = re.compile(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?")
# A number with ``mark`` as its decimal mark, alone or after digits grouped in threes by the other mark.
_PLAIN = {mark: rf"[+-]?(\d+{re.escape(mark)}?\d*|{re.escape(mark)}\d+)([eE][+-]?\d+)?" for mark in DECIMAL_MARKS}
_GROUPED = {".": r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", ",": r"[+-]?\d{1,3}(\.\d{3})+(,\d+)?"}
_ANY_NUMBER = "|".join(f"(?:{pattern})" for pattern in (*_PLAIN.values(), *_GROUPED.values()))
_NUMBER = re.compile(_ANY_NUMBER)


@dataclass(frozen=True)
class Dialect:
    """The separator, decimal mark and quote character of a delimited file.

    ``decimal_known`` is False when the file's numbers did not show the decimal mark (``.`` is then
    assumed), so a value such as ``1,234`` cannot be read as thousands with confidence.
    """

    sep: str
    decimal: str
    decimal_known: bool
    quote: str = '"'


def shown(sep: str) -> str:
    """A separator as a user would type it for ``--sep``."""
    return "tab" if sep == "\t" else sep


def check_separator(sep: str) -> str:
    """``sep`` as one character (``tab`` and ``\\t`` mean a tab); pandas reads longer ones as regexes."""
    sep = _SEPARATOR_ALIASES.get(sep, sep)
    if len(sep) != 1 or sep.isalnum() or sep in "\"'\r\n.":
        raise ValueError(f"the separator must be one character, such as ',', ';', '|' or tab, got {sep!r}")
    return sep


def check_decimal(decimal: str) -> str:
    if decimal not in DECIMAL_MARKS:
        raise ValueError(f"the decimal mark must be one of {list(DECIMAL_MARKS)}, got {decimal!r}")
    return decimal


def _sample(path: Path) -> tuple[list[str], bool]:
    """The first lines of ``path``, and whether they are the whole file."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
        lines = list(itertools.islice(file, _SAMPLE_LINES + 1))
    return lines[:_SAMPLE_LINES], len(lines) <= _SAMPLE_LINES


def _records(lines: list[str], sep: str, quote: str, complete: bool) -> list[list[str]]:
    records = [record for record in csv.reader(lines, delimiter=sep, quotechar=quote) if record]
    return records if complete else records[:-1]  # the last may be cut inside a quoted field


def _split_rank(records: list[list[str]], sep: str) -> tuple[bool, float, int, int, int]:
    """How well ``sep`` and a quote character split ``records``, best highest: the header splits
    at all; the share of rows with as many fields as the header; fewer row fields that still hold
    another separator (other than the comma of a number such as ``10,4``); more fields; fewer
    fields still wrapped in quotes. With a few rows the counts of fields can agree by chance (the
    header ``a;b (x, y)``): the separators left inside fields tell the split apart then."""
    if not records:
        return False, 0.0, 0, 0, 0
    fields = len(records[0])
    rows = records[1:]
    agree = sum(len(row) == fields for row in rows) / len(rows) if rows else 1.0
    others = [other for other in SEPARATORS if other != sep]
    values = [value.strip() for row in rows for value in row]
    foreign = sum(any(o in value for o in others) and not _NUMBER.fullmatch(value) for value in values)
    wrapped = sum(len(v) > 1 and v[0] == v[-1] and v[0] in QUOTES for r in records for v in map(str.strip, r))
    return fields > 1, agree, -foreign, fields, -wrapped


def sniff_dialect(path: str | Path, sep: str | None = None, decimal: str | None = None) -> Dialect:
    """The dialect of the delimited file at ``path``: ``sep`` and ``decimal`` where given, else found.

    The separator is the one of ``,``, ``;``, tab and ``|``, and the quote ``"`` or ``'``, that
    split the header into fields with every row agreeing, leave fewest other separators inside
    fields, and give most fields (``_split_rank``; ties go in those orders). The decimal mark is
    ``,`` only under another separator, when more fields are numbers like ``10,4`` than like ``10.4``.
    """
    lines, complete = _sample(Path(path))
    separators = SEPARATORS if sep is None else (check_separator(sep),)
    splits = [(s, q) for s in separators for q in QUOTES]  # in order of preference
    ranks = {split: _split_rank(_records(lines, *split, complete), split[0]) for split in splits}
    sep, quote = max(splits, key=lambda split: (ranks[split], -splits.index(split)))
    if decimal is not None:  # a decimal comma under a comma separator is read from quoted fields
        return Dialect(sep, check_decimal(decimal), decimal_known=True, quote=quote)
    fields = [field.strip() for row in _records(lines, sep, quote, complete)[1:] for field in row]
    commas = sum(bool(_COMMA_DECIMAL.fullmatch(field)) for field in fields)
    points = sum(bool(_POINT_DECIMAL.fullmatch(field)) for field in fields)
    if sep != "," and commas > points:
        return Dialect(sep, ",", decimal_known=True, quote=quote)
    return Dialect(sep, ".", decimal_known=points > 0, quote=quote)


def read_delimited(path: str | Path, sep: str | None = None, decimal: str | None = None) -> pd.DataFrame:
    """Read a delimited text file with its own separator and decimal mark (``sniff_dialect``).

    Raises ValueError, naming ``--sep`` and ``--decimal``, when the result cannot be the table
    the file holds: a single column while the lines hold another separator, rows with more fields
    than the header, or a column of numbers left as text.
    """
    dialect = sniff_dialect(path, sep, decimal)
    fix = "pass the file's separator with --sep and its decimal mark with --decimal (sep=, decimal= in Python)"
    try:
        # low_memory=False types each column once: read in chunks, a column could hold floats from some
        # and strings from others
        frame = pd.read_csv(path, sep=dialect.sep, decimal=dialect.decimal, quotechar=dialect.quote,
                            low_memory=False)
    except pd.errors.ParserError as error:
        raise ValueError(f"cannot read {path} with separator {shown(dialect.sep)!r} ({str(error).strip()}); {fix}") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the extra leading fields as an index
        raise ValueError(f"rows of {path} have more fields than its header with separator "
                         f"{shown(dialect.sep)!r} and decimal mark {dialect.decimal!r}; {fix}")
    _check_not_one_column(frame, dialect, path, fix)
    for name in frame.columns:
        numbers = _numbers_in_text(frame[name], dialect, name, path)
        if numbers is not None:
            frame[name] = numbers
    return frame


def _check_not_one_column(frame: pd.DataFrame, dialect: Dialect, path: str | Path, fix: str) -> None:
    if frame.shape[1] != 1:
        return
    column = frame.columns[0]
    text = [str(column), *(v for v in frame[column].head(_SAMPLE_LINES) if isinstance(v, str))]
    others = [s for s in SEPARATORS if s != dialect.sep and any(s in line for line in text)]
    if others:
        raise ValueError(f"{path} reads as the single column {str(column)!r} with separator "
                         f"{shown(dialect.sep)!r}, but its lines contain {shown(others[0])!r}; {fix} "
                         f"(e.g. --sep {shown(others[0])!r})")


def _numbers(values: pd.Series) -> pd.Series:
    """True for each value that is a number with either decimal mark."""
    return values.astype(str).str.strip().str.fullmatch(_ANY_NUMBER).astype(bool)


def _numbers_in_text(column: pd.Series, dialect: Dialect, name: object, path: str | Path) -> pd.Series | None:
    """The column as numbers when most of its values are numbers left as text that read with the
    file's decimal mark (digits grouped in threes by the other mark); the rest, such as ``-`` or
    ``#DIV/0!``, become missing with a warning. None for real text; ValueError for numbers that the
    decimal mark cannot read."""
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return None
    values = column.dropna()
    values = values[values.astype(str).str.strip() != ""]
    if values.empty or _numbers(values.head(_SAMPLE_LINES)).mean() <= 0.5:
        return None  # the first rows settle it for most text columns without a pass over them all
    numeric = _numbers(values)
    if numeric.mean() <= 0.5:
        return None
    text = values[numeric].str.strip()
    mark = dialect.decimal
    other = next(m for m in DECIMAL_MARKS if m != mark)
    plain, grouped = text.str.fullmatch(_PLAIN[mark]), text.str.fullmatch(_GROUPED[mark])
    readable = (plain | grouped) if dialect.decimal_known else plain
    if not readable.all():
        example = text[~readable].iloc[0]
        if grouped[~readable].all():
            raise ValueError(f"column {str(name)!r} of {path} holds numbers such as {example!r}, where {other!r} may "
                             f"group thousands or be the decimal mark; pass --decimal {mark} if it groups "
                             f"thousands, or --decimal {other} if it is the decimal mark (decimal= in Python)")
        raise ValueError(f"column {str(name)!r} of {path} holds numbers written with {other!r} as the decimal mark "
                         f"(e.g. {example!r}), left as text when read with decimal mark {mark!r}; pass --decimal "
                         f"{other} (decimal={other!r} in Python) if that is the file's decimal mark")
    if not numeric.all():  # left as text, the column would become categories
        others = values[~numeric]
        shown_values = ", ".join(repr(v) for v in others.unique()[:3])
        warnings.warn(f"column {str(name)!r} of {path} holds numbers, but {len(others)} of its {len(values)} values "
                      f"are not ({shown_values}): read as missing. Leave missing cells empty in the file, or "
                      f"pass --decimal (decimal= in Python) if numbers were misread", UserWarning, stacklevel=4)
    digits = text.str.replace(other, "", regex=False).str.replace(mark, ".", regex=False)
    return pd.to_numeric(digits).reindex(column.index)
