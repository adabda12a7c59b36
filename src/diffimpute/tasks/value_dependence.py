"""Which columns' gaps sit at other values than their observed cells, as the other columns tell.

A model fitted on observed cells imputes well when gaps are missing at random given the other
cells (MAR); when a value's own size decides whether it is missing (MNAR: large incomes left
blank), its imputations lean towards the observed values and its intervals cover too little.
No data can tell MNAR from MAR, but both leave a trace: where a column is missing, the other
cells of the row predict other values for it than where it is observed. The imputer names those
columns, so that a user who knows how the gaps arose can judge the MNAR risk.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import mannwhitneyu

_MIN_CELLS = 20  # missing and observed cells a column needs for the comparison
_MIN_EFFECT = 0.1  # |AUC - 0.5| of guessed values, missing vs observed cells, worth naming
_MAX_P_VALUE = 1e-3
_MAX_ROWS = 2000  # rows the check runs on


def value_dependent(
    guess: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    values: torch.Tensor,
    observed: torch.Tensor,
    columns: list[np.ndarray],
    seed: int,
) -> list[tuple[int, float]]:
    """``(column, AUC)`` for each column whose guessed values at its missing cells differ from its
    guessed values at its observed cells (those hidden, the rest of the row given) by a rank test.

    ``guess(values, given)`` maps ``(rows, channels)`` twice to the guess ``(rows, channels)``;
    ``values``/``observed``: ``(rows, channels)``; ``columns``: each checked column's channels.
    AUC above 0.5: the missing cells are guessed higher than the observed ones.
    """
    if len(values) > _MAX_ROWS:
        rows = torch.from_numpy(np.random.default_rng(seed).permutation(len(values))[:_MAX_ROWS])
        values, observed = values[rows], observed[rows]
    found = []
    for index, channels in enumerate(columns):
        missing = ~observed[:, channels[0]]
        if min(int(missing.sum()), int((~missing).sum())) < _MIN_CELLS:
            continue
        given = observed.clone()
        given[:, channels] = False
        with torch.no_grad():
            guessed = guess(values, given)[:, channels[0]].double().numpy()
        missing = missing.numpy()
        test = mannwhitneyu(guessed[missing], guessed[~missing])
        auc = float(test.statistic / (missing.sum() * (~missing).sum()))
        if abs(auc - 0.5) >= _MIN_EFFECT and test.pvalue < _MAX_P_VALUE:
            found.append((index, auc))
    return found


def dependence_warning(names: list[str], aucs: list[float]) -> str:
    """The warning that names the columns found by ``value_dependent``."""
    listed = ", ".join(
        f"{name!r} ({'higher' if auc > 0.5 else 'lower'}, AUC {auc:.2f})"
        for name, auc in zip(names, aucs)
    )
    return (
        f"where columns {listed} are missing, the other cells of the row predict other values "
        "for them than where they are observed: their gaps depend on the values. If they "
        "depend on the missing values themselves (MNAR), which no data can show, their "
        "imputations lean towards the observed values and their 90 % intervals cover less than "
        "90 %; check how these gaps arose"
    )
