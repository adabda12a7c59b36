"""The row-wise baselines on tables with categorical columns, through the tabular encoding.

A categorical column becomes one 0/1 channel per level (``data.table``); a numeric baseline
(``mean``, ``median``, ``knn``, ``mice``, ``missforest``) fills the channels like any numeric
feature and a categorical cell takes the level whose channel came out largest. For ``mean`` that
is the column's most frequent level (the mode), for ``knn`` the majority among the neighbours.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from diffimpute.baselines.imputation import make_baseline
from diffimpute.data.table import TableEncoder

TABLE_BASELINES = ("mean", "median", "knn", "mice", "missforest")


class TableBaseline(TransformerMixin, BaseEstimator):
    """``method`` (one of ``TABLE_BASELINES``) on a DataFrame of numeric and categorical columns;
    gives back a DataFrame with the same columns and dtypes, observed cells untouched."""

    def __init__(self, method: str = "mean", random_state: int | None = None) -> None:
        self.method = method
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Any = None) -> TableBaseline:
        if self.method not in TABLE_BASELINES:
            raise ValueError(f"unknown table baseline {self.method!r}; valid names are {list(TABLE_BASELINES)}")
        self.encoder_ = TableEncoder.of(X)
        params = {"random_state": self.random_state} if self.method in ("mice", "missforest") else {}
        self.imputer_ = make_baseline(self.method, **params).fit(self._encoded(X))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "imputer_")
        filled = self.imputer_.transform(self._encoded(X))
        return self.encoder_.to_frame(self.encoder_.decode(filled), X)

    def _encoded(self, X: pd.DataFrame):
        return self.encoder_.encode(self.encoder_.codes(X))
