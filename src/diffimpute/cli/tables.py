"""The options every command that reads a user's table shares: ``--sep``, ``--decimal`` and
``--dayfirst``, for CSV files that sniffing reads wrongly, and the note on stderr when sniffing
found a separator or decimal mark other than pandas' ``,`` and ``.``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import click
import pandas as pd

from diffimpute.io.dialect import shown
from diffimpute.io.files import csv_dialect, read_table

_OPTIONS = [
    click.option("--sep", default=None, metavar="CHAR",
                 help="CSV field separator: , ; tab or | [default: found from the file's first lines]."),
    click.option("--decimal", type=click.Choice([".", ","]), default=None,
                 help="CSV decimal mark [default: found from the file; , only under a ; tab or | separator]."),
    click.option("--dayfirst/--monthfirst", default=None,
                 help="Read dates such as 01/02/2024 day first or month first [default: day first when a day "
                      "above 12, or dots (01.02.2024), shows it, or when only day first puts the rows in time "
                      "order]."),
]


@dataclass(frozen=True)
class TableFormat:
    """How to read DATA as the user said (None: as sniffed from the file)."""

    sep: str | None = None
    decimal: str | None = None
    dayfirst: bool | None = None

    def read(self, path: str, index_col: str | None, quiet: bool) -> pd.DataFrame:
        """``read_table`` with these options; says on stderr what sniffing chose when it is not ``,``/``.``."""
        frame = read_table(path, index_col, sep=self.sep, decimal=self.decimal, dayfirst=self.dayfirst)
        dialect = csv_dialect(path, self.sep, self.decimal)
        found = dialect is not None and (self.sep is None and dialect.sep != "," or
                                         self.decimal is None and dialect.decimal != ".")
        if found and not quiet:
            click.echo(f"read {path} with separator {shown(dialect.sep)!r} and decimal mark {dialect.decimal!r}, "
                       f"found from its first lines (--sep and --decimal override)", err=True)
        return frame


def table_options(command):
    """Add ``--sep``, ``--decimal`` and ``--dayfirst`` to ``command``, which gets them as one
    ``table_format`` argument."""

    @functools.wraps(command)
    def wrapper(*args, sep, decimal, dayfirst, **kwargs):
        return command(*args, table_format=TableFormat(sep, decimal, dayfirst), **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper
