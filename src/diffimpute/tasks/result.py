"""The distribution of imputations, in the user's own units and container type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from diffimpute._validation import check_probability
from diffimpute.data.schema import from_panel
from diffimpute.data.table import TableEncoder, most_frequent
from diffimpute.tasks.level_sets import in_set


@dataclass
class DrawsResult:
    """What every result of the imputers shares: draws ``samples`` with the sample axis first,
    ``missing`` True where drawn, the ``data`` passed in; point summaries of the draws come back in
    the form of ``data`` through the subclass's ``_summary``."""

    samples: np.ndarray
    missing: np.ndarray
    data: pd.DataFrame | np.ndarray

    @property
    def n_samples(self) -> int:
        return self.samples.shape[0]

    def median(self) -> pd.DataFrame | np.ndarray:
        return self._summary(np.median(self.samples, axis=0))

    def mean(self) -> pd.DataFrame | np.ndarray:
        return self._summary(self.samples.mean(axis=0))

    def quantile(self, q: float) -> pd.DataFrame | np.ndarray:
        """The ``q``-quantile of the draws at every missing cell."""
        return self._summary(np.quantile(self.samples, check_probability(q, "q"), axis=0))

    def interval(self, alpha: float = 0.1) -> tuple[pd.DataFrame | np.ndarray, pd.DataFrame | np.ndarray]:
        """Central ``1 - alpha`` interval as (lower, upper); alpha=0.1 gives the 90 % interval."""
        alpha = check_probability(alpha, "alpha")
        return self.quantile(alpha / 2), self.quantile(1 - alpha / 2)

    def _summary(self, values: np.ndarray) -> pd.DataFrame | np.ndarray:
        """A statistic of the draws, ``samples.shape[1:]``, in the form of ``data``."""
        raise NotImplementedError


@dataclass
class ImputationResult(DrawsResult):
    """Draws from the imputation distribution.

    samples: ``(n_samples, series, time, features)`` float64 in original units; observed cells hold
    the observed value in every draw. ``missing``: ``(series, time, features)`` True where imputed.
    Point summaries come back in the type of the data passed in (DataFrame or array, same shape,
    index, columns and dtypes) with observed cells untouched.
    ``guess``: the first estimate the diffusion model refined (interpolation or the latent
    prior's coarse reconstruction), in the same type; None for ``guess="none"``.
    ``whole``: ``(features,)`` True for features of whole numbers: their summaries are rounded
    too (the median of an even number of whole-number draws can fall between two).
    """

    guess: pd.DataFrame | np.ndarray | None = None
    whole: np.ndarray | None = None

    def to_frame(self, quantiles: Sequence[float] = (0.05, 0.95)) -> pd.DataFrame:
        """One wide frame: the median under each column's name plus ``<column>_q<level>`` columns.

        For arrays and panels the frame is indexed by (series, time) and columns are numbered.
        """
        frames = {"": self.median()}
        for q in quantiles:
            frames[f"_q{q:g}"] = self.quantile(q)
        parts = []
        for suffix, part in frames.items():
            part = part if isinstance(part, pd.DataFrame) else _panel_frame(part)
            parts.append(part.rename(columns=lambda c, s=suffix: f"{c}{s}"))
        return pd.concat(parts, axis=1)

    def _summary(self, panel: np.ndarray) -> pd.DataFrame | np.ndarray:
        if self.whole is not None:
            panel = np.where(self.whole, np.round(panel), panel)
        return from_panel(panel, self.data)


def _panel_frame(values: np.ndarray) -> pd.DataFrame:
    panel = values if values.ndim == 3 else values[None]
    n_series, n_time, n_features = panel.shape
    index = pd.MultiIndex.from_product([range(n_series), range(n_time)], names=["series", "time"])
    return pd.DataFrame(panel.reshape(-1, n_features), index=index, columns=[str(i) for i in range(n_features)])


@dataclass
class TableImputationResult(DrawsResult):
    """Draws from the imputation distribution of a table of independent rows.

    samples: ``(n_samples, rows, columns)`` float64: numeric values in original units, and for a
    categorical column the index of its level in ``encoder.columns[j].levels``; observed cells hold
    the observed value in every draw. ``missing``: ``(rows, columns)`` True where imputed.
    Point summaries come back as a DataFrame like the one passed in (same index, columns and
    dtypes; an array in gives an array out): numeric cells take the statistic of their draws,
    categorical cells the most frequent level among their draws.
    ``guess``: the first estimate the diffusion model refined, in the same form; None without one.
    ``whole``: ``(columns,)`` True for numeric columns whose values are whole numbers: their
    summaries are rounded too (the median of an even number of draws can fall between two).
    """

    encoder: TableEncoder
    guess: pd.DataFrame | np.ndarray | None = None
    whole: np.ndarray | None = None
    level_threshold: float = float("inf")

    @property
    def numeric_columns(self) -> list[str]:
        return [spec.name for spec in self.encoder.columns if spec.kind == "numeric"]

    def numeric_samples(self) -> np.ndarray:
        """``(n_samples, rows, numeric columns)`` draws of the numeric columns, in ``numeric_columns`` order."""
        return self.samples[..., self.encoder.numeric]

    def probabilities(self, column: str) -> pd.DataFrame:
        """Share of draws giving each level of categorical ``column``: ``(rows, levels)``, rows summing
        to 1; an observed cell puts all its weight on its level."""
        names = [spec.name for spec in self.encoder.columns]
        if column not in names:
            raise ValueError(f"no column {column!r}; columns are {names}")
        j = names.index(column)
        spec = self.encoder.columns[j]
        if spec.kind != "categorical":
            raise ValueError(f"column {column!r} is numeric; probabilities are for categorical columns")
        draws = self.samples[:, :, j].astype(np.int64)
        counts = np.stack([(draws == k).sum(axis=0) for k in range(len(spec.levels))], axis=1)
        index = self.data.index if isinstance(self.data, pd.DataFrame) else pd.RangeIndex(len(draws[0]))
        return pd.DataFrame(counts / self.n_samples, index=index, columns=pd.Index(spec.levels, name=column))

    def prediction_set(self, column: str) -> pd.DataFrame:
        """The levels of categorical ``column`` in each cell's 90 % prediction set, ``(rows, levels)``
        bool: the most drawn levels, calibrated on held-out cells at fit to hold the true level
        about 90 % of the time (``tasks.level_sets``); an observed cell's set is its level."""
        shares = self.probabilities(column)
        values = shares.to_numpy()
        observed = ~self.missing[:, [spec.name for spec in self.encoder.columns].index(column)]
        sets = np.where(observed[:, None], values > 0, in_set(values, self.level_threshold))
        return pd.DataFrame(sets, index=shares.index, columns=shares.columns)

    def to_frame(self, quantiles: Sequence[float] = (0.05, 0.95)) -> pd.DataFrame:
        """The median frame plus ``<column>_q<level>`` columns for each numeric column and level."""
        median = self.median()
        median = median if isinstance(median, pd.DataFrame) else pd.DataFrame(median, columns=self.numeric_columns)
        parts = [median]
        for q in quantiles:
            bound = self.quantile(q)
            bound = bound if isinstance(bound, pd.DataFrame) else pd.DataFrame(bound, columns=median.columns)
            parts.append(bound[self.numeric_columns].rename(columns=lambda c, q=q: f"{c}_q{q:g}"))
        return pd.concat(parts, axis=1)

    def _summary(self, numeric: np.ndarray) -> pd.DataFrame | np.ndarray:
        """Numeric cells take the statistic; categorical cells the most frequent level of their draws."""
        codes = numeric.copy() if self.whole is None else np.where(self.whole, np.round(numeric), numeric)
        categorical = ~self.encoder.numeric
        if categorical.any():
            codes[:, categorical] = most_frequent(self.samples[:, :, categorical])
        if isinstance(self.data, pd.DataFrame):
            return self.encoder.to_frame(codes, self.data)
        frame = pd.DataFrame(np.asarray(self.data, dtype=np.float64), columns=[s.name for s in self.encoder.columns])
        return self.encoder.to_frame(codes, frame).to_numpy(dtype=np.float64)


@dataclass
class ImageInpaintingResult(DrawsResult):
    """Draws of the missing pixels of a stack of images.

    samples: ``(n_samples, *images.shape)`` float64 in the images' own units, where the images
    passed in are ``(n, height, width)`` or ``(n, height, width, channels)``; observed entries hold
    their value in every draw. ``missing``: the images' shape, True where inpainted. Summaries
    come back in the images' shape and float dtype (float64 for integer images), with observed
    pixels bit-identical. ``guess``: the first estimate the model refined (the harmonic
    fill), in the same form; None for ``guess="none"``.
    """

    guess: np.ndarray | None = None

    def std(self) -> np.ndarray:
        """Per-pixel standard deviation of the draws (0 at observed pixels)."""
        return self._summary(self.samples.std(axis=0), observed=0.0)

    def interval_width(self, alpha: float = 0.1) -> np.ndarray:
        """Per-pixel width of the central ``1 - alpha`` interval (0 at observed pixels): the
        uncertainty in the images' own units."""
        alpha = check_probability(alpha, "alpha")
        upper, lower = (np.quantile(self.samples, q, axis=0) for q in (1 - alpha / 2, alpha / 2))
        return self._summary(upper - lower, observed=0.0)

    def _summary(self, images: np.ndarray, observed: float | None = None) -> np.ndarray:
        dtype = self.data.dtype if np.issubdtype(self.data.dtype, np.floating) else np.float64
        kept = self.data if observed is None else observed
        return np.where(self.missing, images, kept).astype(dtype, copy=False)
