"""How a fitted series imputer draws completions, of a whole series or of one span of it.

``impute`` and ``impute_span`` share one code path (``_impute_rows``): a window's draws depend only
on the seed, the window's own cells and its key (series number, start in the whole series), and
only the windows that ``stitch`` takes the wanted rows from are drawn. So a series too long for
one call (``io.stream``, ``dask``) is imputed span by span exactly as it would be whole.

``SpanImputation`` is a mixin of ``DiffusionImputer``: it reads the fitted state that ``fit`` sets
(``model_``, ``window_``, ``schema_``, ``scaler_``, ``domain_``, ``row_gaussian_``, ``seed_``) and
draws through the refiner's ``_draw_windows``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from diffimpute._validation import check_positive_int
from diffimpute._warnings import warn
from diffimpute.data.batch import windows_from_panel
from diffimpute.data.schema import Clock, from_panel, time_positions, time_ticks, to_panel
from diffimpute.data.windowing import owning_starts, stitch
from diffimpute.tasks.result import ImputationResult


class SpanImputation:
    """Draws completions of a series, whole (``impute``) or one span at a time (``impute_span``)."""

    def impute(
        self, X: pd.DataFrame | np.ndarray, n_samples: int | None = None, *, seed: int | None = None
    ) -> ImputationResult:
        """Draw ``n_samples`` completions of ``X``; observed cells are kept exactly in every draw.

        A window's draws depend only on the seed, the window's own cells and its key (series
        number in ``X``, start in the series), so ``impute_span`` reproduces any part of them.
        An imputer from ``from_pretrained`` that was not fitted first adapts to ``X`` (see there).
        """
        if self.pretrained is not None and self.max_steps == 0 and getattr(self, "adapts_on_call_", True):
            self.fit(X)
            self.adapts_on_call_ = True
        check_is_fitted(self, "model_")
        n_samples = check_positive_int(self.n_samples if n_samples is None else n_samples, "n_samples")
        panel = self._check_data(X)
        samples, guess = self._impute_rows(panel, time_positions(X), n_samples, seed, 0, panel.shape[1],
                                           (0, panel.shape[1]), dead=np.isnan(panel).all(axis=1))
        if guess is not None:
            guess = from_panel(guess, X)
        return ImputationResult(samples=samples, missing=np.isnan(panel), data=X, guess=guess,
                                whole=self.domain_.integer)

    def span_halo(self, start: int, stop: int, length: int) -> tuple[int, int]:
        """Rows ``[first, end)`` of a series of ``length`` rows that ``impute_span`` needs to impute
        rows ``[start, stop)``: those rows and at most ``window - 1`` more on each side."""
        check_is_fitted(self, "model_")
        self._check_length(length)
        if not 0 <= start < stop <= length:
            raise ValueError(f"span [{start}, {stop}) is not a non-empty part of a series of {length} rows")
        starts = owning_starts(start, stop, length, self.window_, self._imputation_stride())
        return int(starts[0]), int(starts[-1]) + self.window_

    def impute_span(
        self,
        X: pd.DataFrame | np.ndarray,
        span: tuple[int, int],
        *,
        offset: int,
        length: int,
        clock: Clock | None = None,
        n_samples: int | None = None,
        seed: int | None = None,
    ) -> ImputationResult:
        """Impute rows ``span = [start, stop)`` of a series of ``length`` rows that is too long for
        one call, exactly as ``impute`` imputes them from the whole series with the same seed.

        ``X`` (a DataFrame or ``(time, features)`` array) holds rows ``[offset, offset + len(X))`` of
        the series, at least ``span_halo(start, stop, length)``. ``clock``: the whole series'
        ``data.schema.series_clock`` of its timestamps (None for positions 0, 1, 2...), so the
        part's time positions are the whole's. The caller checks what needs the whole series
        (every feature observed somewhere, the index sorted across parts). Returns the result for
        rows ``[start, stop)`` alone.
        """
        check_is_fitted(self, "model_")
        n_samples = check_positive_int(self.n_samples if n_samples is None else n_samples, "n_samples")
        if np.ndim(X) != 2:
            raise ValueError(f"impute_span takes one series, a DataFrame or a (time, features) array, got shape {np.shape(X)}")
        panel = self._check_data(X, part=True)
        first, end = self.span_halo(*span, length)
        if first < offset or end > offset + panel.shape[1]:
            raise ValueError(f"X holds rows [{offset}, {offset + panel.shape[1]}) of the series, but imputing rows "
                             f"[{span[0]}, {span[1]}) needs rows [{first}, {end}) (span_halo)")
        if clock is None and time_ticks(X) is not None:
            raise ValueError("X has timestamps: pass clock=data.schema.series_clock(ticks of the whole series), so "
                             "that the part's time positions are the whole series'")
        positions = time_positions(X, clock)
        samples, guess = self._impute_rows(panel, positions, n_samples, seed, offset, length, span)
        rows = slice(span[0] - offset, span[1] - offset)
        data = X.iloc[rows] if isinstance(X, pd.DataFrame) else np.asarray(X)[rows]
        if guess is not None:
            guess = from_panel(guess, data)
        return ImputationResult(samples=samples, missing=np.isnan(panel[:, rows]), data=data, guess=guess,
                                whole=self.domain_.integer)

    def _imputation_stride(self) -> int:
        return max(1, self.window_ // 2)

    def _impute_rows(self, panel: np.ndarray, positions: np.ndarray, n_samples: int, seed: int | None, offset: int,
                     length: int, span: tuple[int, int], dead: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        """Draws ``(n_samples, series, stop - start, features)`` in original units for rows ``span``
        of series ``length`` rows long, of which ``panel (series, rows, features)`` holds rows
        ``[offset, offset + rows)``, and the filled guess ``(series, stop - start, features)`` (None
        without a guess). Only the windows ``stitch`` takes those rows from are drawn, each keyed by
        (series, start in the whole series): the one code path of ``impute`` and ``impute_span``.
        ``dead (series, features)``: features with no reading in the whole series, drawn from the
        row Gaussian (``impute_span``'s callers refuse them, so a part is imputed as the whole is)."""
        rows = panel[:, span[0] - offset:span[1] - offset]
        missing = np.isnan(rows)
        samples = np.broadcast_to(rows, (n_samples, *rows.shape)).copy()
        if not missing.any():
            return samples, (rows if self.guess != "none" else None)
        starts = owning_starts(*span, length, self.window_, self._imputation_stride()) - offset
        windows, index = windows_from_panel(self.scaler_.transform(panel), positions, self.window_,
                                            self._imputation_stride(), starts)
        keys = torch.from_numpy(np.stack([index[:, 0], index[:, 1] + offset], axis=1))
        draws, guesses = self._draw_windows(windows, n_samples, seed, row_ids=keys)
        n_series, n_rows = rows.shape[:2]
        stitched = stitch(draws, index, n_series, n_rows, span[0] - offset)
        if dead is not None and dead.any():
            stitched = self.row_gaussian_.draw_dead(stitched, dead, self.seed_ if seed is None else seed)
        imputed = self.scaler_.inverse_transform(stitched)
        samples[:, missing] = self.domain_.apply(imputed)[:, missing]
        guess = None
        if guesses is not None:
            filled = self.scaler_.inverse_transform(stitch(guesses, index, n_series, n_rows, span[0] - offset))
            guess = np.where(missing, filled, rows)
        return samples, guess

    def _check_length(self, length: int) -> None:
        if self.window_ > length:
            raise ValueError(
                f"the model's window ({self.window_}) is longer than this series ({length} time steps); "
                f"refit with window<={length}"
            )

    def _check_data(self, X: pd.DataFrame | np.ndarray, part: bool = False) -> np.ndarray:
        """The panel of ``X``; for a whole series (not ``part``), every feature observed somewhere
        and at least a window long."""
        panel = to_panel(X)
        self.schema_.check_matches(X, panel, "imputer")
        if part:
            return panel
        if np.isnan(panel).all():
            raise ValueError("X has no observed value at all; there is nothing to impute from")
        empty = np.isnan(panel).all(axis=1).any(axis=0)
        if empty.any():  # a dead sensor: only the other features and what fit learned say anything of it
            names = [name for name, e in zip(self.schema_.columns, empty) if e]
            warn(f"features {names} have no observed value in X (in at least one series): they are imputed from "
                 "the other features alone, with intervals at least as wide as their spread in the training data")
        self._check_length(panel.shape[1])
        return panel
