"""Columns the CLI sets aside: no model can learn from them, so they are written back as read.

A real file often carries an identifier (a name or a code per row: more distinct values than a
category may have) or a column with no value at all (a dead sensor, a year not yet reported).
The library refuses both, as an estimator should; the commands instead impute the other columns,
say which ones they set aside, and put them back in place in what they write.
"""

from __future__ import annotations

import pandas as pd

from diffimpute.cli.common import echo
from diffimpute.data.table import MAX_LEVELS


def unusable_columns(frame: pd.DataFrame, known: list[str] | None = None) -> list[str]:
    """Columns of ``frame`` entirely missing, or not numeric with more than ``MAX_LEVELS`` distinct
    values; with ``known`` (a fitted model's columns), only those the model was not fitted on: it
    imputes its own columns even when they are empty here."""
    names = []
    for name in frame.columns:
        if known is not None and name in known:
            continue
        column = frame[name]
        identifier = not pd.api.types.is_numeric_dtype(column) and column.nunique() > MAX_LEVELS
        if column.isna().all() or identifier:
            names.append(name)
    return names


def set_aside(frame: pd.DataFrame, names: list[str], quiet: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame`` without the columns ``names`` and those columns, saying which were set aside."""
    if names:
        empty = [n for n in names if frame[n].isna().all()]
        identifiers = [n for n in names if n not in empty]
        reasons = ([f"entirely missing: {', '.join(map(str, empty))}"] if empty else []) + (
            [f"identifiers (over {MAX_LEVELS} distinct values): {', '.join(map(str, identifiers))}"]
            if identifiers else [])
        echo(quiet, f"columns set aside and written back unchanged ({'; '.join(reasons)})")
    return frame.drop(columns=names), frame[names]


def put_back(table: pd.DataFrame, aside: pd.DataFrame, order: pd.Index) -> pd.DataFrame:
    """``table`` (the imputed columns first, in ``order``, then any quantile columns) with the
    ``aside`` columns back at their places in ``order``, the columns as they were read."""
    table = table.copy()
    for name in aside.columns:
        table.insert(order.get_loc(name), name, aside[name].to_numpy())
    return table
