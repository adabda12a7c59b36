"""TabularImputer: probabilistic imputation of tables whose rows are independent records.

The same recipe as the time-series imputer (``tasks.refiner``), with a row as a window of
length 1: a first guess of every cell from the given cells of its row (the conditional mean
under a multivariate normal fitted by EM, ``nn.guess.GaussianGuess``, or per column, where they do
better on held-out cells, MissForest-style forests, ``nn.tree_guess``), a diffusion model over the
residual from it (a residual MLP, ``nn.tabular``, or a transformer over columns), model selection
and split-conformal calibration on held-out observed cells. Categorical columns are one-hot
channels (``data.table``); a categorical cell's draws are levels, so the result gives the most
likely level and, on request, each level's share of the draws.

Training targets are whole columns of a row, never single channels of a one-hot block: hiding
one level's channel while showing the others would give the answer away.

How the guess is fitted and chosen per column lives in ``tasks.tabular_guess``; what is special
to categorical columns (levels, their draws from the guess, prediction sets) in
``tasks.tabular_levels``.
"""

from __future__ import annotations

import time
from typing import Literal, get_args

import numpy as np
import pandas as pd
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from diffimpute._validation import check_choice, check_positive_int
from diffimpute._warnings import warn
from diffimpute.data.batch import Windows
from diffimpute.data.domain import FeatureDomain
from diffimpute.data.scaling import FeatureScaler
from diffimpute.data.table import TableEncoder
from diffimpute.diffusion.parameterisation import Prediction
from diffimpute.diffusion.samplers import SamplerKind
from diffimpute.diffusion.schedules import ScheduleKind
from diffimpute.engine.trainer import TrainHistory
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.guess import GaussianGuess
from diffimpute.nn.tabular import TabularDenoiser
from diffimpute.nn.tree_guess import ColumnChoiceGuess, TreeGuess
from diffimpute.tasks.estimator import CheckpointArg, DeviceName, resolve_device
from diffimpute.tasks.held_out import HeldOut
from diffimpute.tasks.refiner import GuessRefiner
from diffimpute.tasks.result import TableImputationResult
from diffimpute.tasks.tabular_guess import TableGuessFitting
from diffimpute.tasks.tabular_levels import CategoricalLevels
from diffimpute.tasks.value_dependence import dependence_warning, value_dependent

DenoiserKind = Literal["mlp", "transformer"]
TabularGuessKind = Literal["gaussian", "auto", "none"]
_MIN_ROWS = 8  # fewer rows cannot both train a model and hold out cells to check it
_HELD_OUT_CELLS, _MIN_AUTO_HELD_OUT, _MAX_AUTO_HELD_OUT = 400, 0.1, 0.2  # the automatic validation_fraction
_STEPS_PER_ROW, _MIN_STEPS, _MAX_STEPS = 1, 300, 4000  # training steps per training row, and their bounds
_CHECKS = 12  # model-selection checks over the training steps; patience counts them


def _column_targets(observed_columns: torch.Tensor, channel_column: torch.Tensor,
                    generator: torch.Generator, rate: float | torch.Tensor | None = None) -> torch.Tensor:
    """CSDI's random strategy on whole columns: each row hides a uniform-random share of its observed
    columns (or ``rate`` of them). ``observed_columns (rows, columns)`` -> channel targets ``(rows, channels, 1)``."""
    rows, _ = observed_columns.shape
    if rate is None:
        rate = torch.rand(rows, 1, generator=generator, device=observed_columns.device)
    hidden = observed_columns & (torch.rand(observed_columns.shape, generator=generator,
                                            device=observed_columns.device) < rate)
    return hidden[:, channel_column].unsqueeze(-1)


class TabularImputer(TransformerMixin, TableGuessFitting, CategoricalLevels, GuessRefiner):
    """Fill missing cells of a table (numeric, integer, boolean and categorical columns) with a
    diffusion model that refines a first guess, and say how sure it is.

    Rows are independent records (patients, survey answers, accounts); for series use
    ``DiffusionImputer``. A DataFrame comes back with the same index, columns and dtypes; numeric
    arrays ``(rows, columns)`` are accepted too.

    Parameters
    ----------
    guess: ``"gaussian"`` (each cell's conditional mean given the other cells of its row under a
        multivariate normal fitted by EM), ``"auto"`` (default: per column, that, forests of
        extremely randomised trees on the row filled by it, ``nn.tree_guess``, or their mean,
        whichever has the lower MAE on held-out cells; needs ``validation_fraction`` > 0; the trees are cross-fitted, so
        each training row is guessed by trees that never saw it, as rows are at imputation)
        or ``"none"`` (the model learns from the column means up, as TabCSDI).
    guess_ridge: shrinkage of the Gaussian guess's covariance towards its diagonal (0-1); None
        (default) picks it from a few values by MAE on the held-out cells.
    tree_rounds: MissForest-style rounds of the tree guess, each fitted on rows whose gaps hold the
        round before's out-of-fold guess. 2 (default): a second round cut MAE by 2-6 % on the
        bench's small tables (seed 1), a third added under 1 % for half as much time again.
    denoiser: ``"mlp"`` (a residual MLP over the whole row, default) or ``"transformer"`` (CSDI's
        feature attention over the columns, TabCSDI's feature tokens).
    hidden, n_layers: size of the MLP (``channels``, ``n_heads`` size the transformer).
    prediction, diffusion_steps, schedule, beta_start, beta_end, sampler, sampling_steps,
        ddim_eta: as for ``DiffusionImputer``.
    max_steps: optimiser steps of training (None: one per training row, at least 300, at most
        4000); a budget in steps, so that a seed gives the same model on any machine.
    max_epochs, batch_size, learning_rate, weight_decay, patience, ema_decay, time_budget:
        training on the engine's loop (early stopping counts ``patience`` in checks, 12 over the
        steps); ``time_budget`` caps training seconds and warns when it cuts training short
        (None: no limit).
    validation_fraction: share of observed cells held out for model selection, calibration and
        ``validation_`` (0 turns all three off); None (default): 10 %, raised to at most 20 % so that
        a small table still holds out about 400 cells (fewer make the intervals under-cover).
    n_samples: draws per missing cell for ``transform`` (and ``impute`` unless given).
    calibrate, keep_nonnegative, keep_integers, clip_margin: as for ``DiffusionImputer``; they
        apply to numeric columns.
    max_cells_per_pass, device, random_state, verbose: as for ``DiffusionImputer``.

    Categorical columns may have at most ``data.table.MAX_LEVELS`` (64) levels; a level met at
    ``transform`` that was not seen at ``fit`` is an error, and so is an infinite number (set it to
    NaN to impute it). A row with every cell missing is imputed from the learned distribution alone
    (its draws are samples of a whole row); a column with no observed value in the data imputed is
    imputed from the other columns, with a warning and, if numeric, intervals at least as wide as
    its spread at ``fit``; data with no observed value at all are an error.

    After ``fit``: ``history_``, ``train_steps_`` (the step budget), ``validation_`` (on held-out
    cells: numeric MAE, CRPS and 90 % coverage in standardised units, MAE of the guess alone,
    categorical accuracy and the 90 % prediction sets' coverage),
    ``refines_`` (False when the model did not beat its guess, which is then imputed),
    ``value_dependent_columns_`` (numeric columns whose gaps the other columns place at other
    values than their observed cells, also named in a warning: their gaps may be MNAR, see
    ``tasks.value_dependence``).
    """

    selection_steps = 1  # one DDIM step from noise: the model's conditional mean, comparable to the guess's
    check_draws_against_guess = True  # on small tables a better mean need not give a better median of draws
    calibration_samples = 32  # rows are cheap to sample, and few held-out cells need well-estimated spreads
    disjoint_calibration = True  # tables are small: choices made on cells bias intervals fitted on them

    def __init__(
        self,
        *,
        guess: TabularGuessKind = "auto",
        guess_ridge: float | None = None,
        tree_rounds: int = 2,
        denoiser: DenoiserKind = "mlp",
        hidden: int = 128,
        n_layers: int = 2,
        channels: int = 32,
        n_heads: int = 4,
        dropout: float = 0.0,
        prediction: Prediction = "v",
        diffusion_steps: int = 50,
        schedule: ScheduleKind = "quad",
        beta_start: float = 1e-4,
        beta_end: float = 0.5,
        max_steps: int | None = None,
        max_epochs: int = 2000,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-6,
        patience: int = 5,
        ema_decay: float | None = None,
        time_budget: float | None = 60.0,
        validation_fraction: float | None = None,
        n_samples: int = 50,
        sampler: SamplerKind = "ddim",
        sampling_steps: int | None = None,
        ddim_eta: float = 1.0,
        calibrate: bool = True,
        keep_nonnegative: bool = True,
        keep_integers: bool = True,
        clip_margin: float | None = 1.0,
        max_cells_per_pass: int = 2**15,
        device: DeviceName = "auto",
        random_state: int = 0,
        verbose: bool = True,
    ) -> None:
        self.guess = guess
        self.guess_ridge = guess_ridge
        self.tree_rounds = tree_rounds
        self.denoiser = denoiser
        self.hidden = hidden
        self.n_layers = n_layers
        self.channels = channels
        self.n_heads = n_heads
        self.dropout = dropout
        self.prediction = prediction
        self.diffusion_steps = diffusion_steps
        self.schedule = schedule
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.ema_decay = ema_decay
        self.time_budget = time_budget
        self.validation_fraction = validation_fraction
        self.n_samples = n_samples
        self.sampler = sampler
        self.sampling_steps = sampling_steps
        self.ddim_eta = ddim_eta
        self.calibrate = calibrate
        self.keep_nonnegative = keep_nonnegative
        self.keep_integers = keep_integers
        self.clip_margin = clip_margin
        self.max_cells_per_pass = max_cells_per_pass
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameter checks
    def _check_params(self) -> None:
        self._check_refiner_params()
        check_choice(self.guess, get_args(TabularGuessKind), "guess")
        check_choice(self.denoiser, get_args(DenoiserKind), "denoiser")
        check_positive_int(self.hidden, "hidden")
        check_positive_int(self.tree_rounds, "tree_rounds")
        if self.max_steps is not None:
            check_positive_int(self.max_steps, "max_steps")
        if self.guess_ridge is not None and not 0 <= self.guess_ridge <= 1:
            raise ValueError(f"guess_ridge must be in [0, 1], got {self.guess_ridge}")

    # ------------------------------------------------------------------ what the refiner needs
    def _n_channels(self) -> int:
        return self.encoder_.n_channels

    def _window_length(self) -> int:
        return 1

    def _interval_channels(self) -> np.ndarray:
        return self.encoder_.numeric_channels

    def _training_targets(self, observed: torch.Tensor, generator: torch.Generator,
                          rate: float | torch.Tensor | None = None) -> torch.Tensor:
        channel_column = torch.from_numpy(self.encoder_.channel_column).to(observed.device)
        first = torch.from_numpy(self.encoder_.first_channel).to(observed.device)
        return _column_targets(observed[:, first, 0], channel_column, generator, rate)

    def _random_targets(self, observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Targets at the table's own missing rate: the residual scale (and with it the guess's
        intervals) then matches the errors of the guess where cells are really missing."""
        return self._training_targets(observed, generator, rate=self.missing_rate_)

    def _step_budget(self) -> tuple[int, int]:
        """Steps in proportion to the rows: a small table's model seldom gains after a few
        hundred, and a time budget alone made the model depend on the machine's speed."""
        return self.train_steps_, max(1, self.train_steps_ // _CHECKS)

    def _build_model(self, prior=None) -> torch.nn.Module:
        guess = None if self.guess == "none" else GaussianGuess(self._n_channels())
        if self.guess == "auto":
            guess = ColumnChoiceGuess(guess, [TreeGuess(self._n_channels()) for _ in range(self.tree_rounds)])
        if self.denoiser == "transformer":
            return CSDIDenoiser(n_features=self._n_channels(), channels=self.channels, n_layers=self.n_layers,
                                n_heads=self.n_heads, dropout=self.dropout, guess=guess)
        return TabularDenoiser(self._n_channels(), hidden=self.hidden, n_layers=self.n_layers,
                               dropout=self.dropout, guess=guess)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame | np.ndarray, y: None = None, *, checkpoint: CheckpointArg = None,
            resume: bool = False) -> TabularImputer:
        """Learn to refine the first guess from the observed cells of ``X``; returns ``self``.

        ``checkpoint``, ``resume``: save training progress to a file and continue an interrupted
        fit from it, as in ``DiffusionImputer.fit``.
        """
        started = time.perf_counter()
        self._check_params()
        self._start_fit(X)
        plan = self._checkpointing(checkpoint, resume)
        frame = self._as_frame(X)
        self.encoder_ = TableEncoder.of(frame)
        codes = self.encoder_.codes(frame)
        self._check_fit_data(codes)
        self.input_kind_ = "frame" if isinstance(X, pd.DataFrame) else "array"
        self.missing_rate_ = float(np.clip(np.isnan(codes).mean(), 0.05, 0.5))
        self.domain_ = FeatureDomain.of(codes, nonnegative=self.keep_nonnegative, integer=self.keep_integers)
        encoded = self.encoder_.encode(codes)
        self.scaler_ = FeatureScaler().fit(encoded)
        scaled = self.scaler_.transform(encoded)
        self.observed_range_ = (np.nanmin(scaled, axis=0), np.nanmax(scaled, axis=0))
        device = resolve_device(self.device)

        rng = np.random.default_rng(self.seed_)
        held_columns = self._held_out_columns(codes, rng)
        held_channels = held_columns[:, self.encoder_.channel_column]
        train_rows = np.where(held_channels, np.nan, scaled)
        train_windows = self._windows(train_rows)
        train_windows = train_windows.with_observed_cells()
        held = None
        if held_columns.any():
            rows = torch.from_numpy(np.flatnonzero(held_columns.any(axis=1)))
            all_rows = self._windows(scaled)
            held = HeldOut(all_rows[rows], torch.from_numpy(held_channels)[rows].unsqueeze(-1))
        if self._cross_fits():
            keys = torch.from_numpy(self._tree_folds(len(train_windows))).float().unsqueeze(-1)
            train_windows = Windows(train_windows.values, train_windows.observed, keys)
        by_rows = int(np.clip(_STEPS_PER_ROW * len(train_windows), _MIN_STEPS, _MAX_STEPS))
        self.train_steps_ = by_rows if self.max_steps is None else self.max_steps
        self._train_refiner(train_windows, held, device, checkpoint=plan, resume=resume)
        self._score_categories(held, device)
        if held is not None:
            self._refit_trees(self._windows(scaled).with_observed_cells())
        self._check_value_dependence(scaled)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _check_value_dependence(self, scaled: np.ndarray) -> None:
        """Name the numeric columns whose gaps the other columns place at other values than their
        observed cells (``tasks.value_dependence``), in ``value_dependent_columns_`` and a warning;
        the Gaussian guess reads the rows (none without a guess: nothing to read them with)."""
        self.value_dependent_columns_ = []
        guess = self.model_.guess
        if guess is None:
            return
        gaussian = guess.gaussian if isinstance(guess, ColumnChoiceGuess) else guess
        windows = self._windows(scaled)
        numeric = np.flatnonzero(self.encoder_.numeric)

        def guess_rows(values: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
            keys = torch.zeros(len(values), 1)
            return gaussian(values.unsqueeze(-1), given.unsqueeze(-1), keys)[..., 0]

        channels = [np.array([self.encoder_.first_channel[j]]) for j in numeric]
        found = value_dependent(guess_rows, windows.values[..., 0], windows.observed[..., 0], channels,
                                self.seed_)
        if found:
            names = [self.encoder_.columns[numeric[k]].name for k, _ in found]
            self.value_dependent_columns_ = names
            warn(dependence_warning(names, [auc for _, auc in found]))

    def _check_fit_data(self, codes: np.ndarray) -> None:
        if len(codes) < _MIN_ROWS:
            raise ValueError(f"X has {len(codes)} row(s); the tabular imputer needs at least {_MIN_ROWS} to learn from")
        empty = np.isnan(codes).all(axis=0)
        if empty.any():
            names = [spec.name for spec, e in zip(self.encoder_.columns, empty) if e]
            raise ValueError(f"columns {names} are entirely missing; there is nothing to learn them from, drop them")

    def _held_out_columns(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Observed cells ``(rows, columns)`` held out for selection and calibration: ``validation_fraction``
        of them at random, never a column's last observed cell."""
        observed = ~np.isnan(codes)
        held = np.zeros(codes.shape, dtype=bool)
        if self.validation_fraction == 0:
            return held
        cells = np.flatnonzero(observed)
        fraction = self.validation_fraction
        if fraction is None:
            fraction = min(_MAX_AUTO_HELD_OUT, max(_MIN_AUTO_HELD_OUT, _HELD_OUT_CELLS / max(len(cells), 1)))
        chosen = rng.choice(cells, size=round(fraction * len(cells)), replace=False)
        held.flat[chosen] = True
        starved = (observed & ~held).sum(axis=0) == 0
        held[:, starved] = False
        return held

    @staticmethod
    def _windows(scaled: np.ndarray) -> Windows:
        """Rows ``(rows, channels)`` with NaN as windows ``(rows, channels, 1)``."""
        observed = ~np.isnan(scaled)
        return Windows(values=torch.from_numpy(np.where(observed, scaled, 0.0).astype(np.float32)).unsqueeze(-1),
                       observed=torch.from_numpy(observed).unsqueeze(-1),
                       positions=torch.zeros(len(scaled), 1))

    @staticmethod
    def _as_frame(X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            if X.shape[1] == 0 or X.shape[0] == 0:
                raise ValueError(f"X is empty (shape {X.shape}); pass at least one row and column")
            if X.columns.duplicated().any():
                raise ValueError(f"X has duplicated column names {list(X.columns[X.columns.duplicated()])}; rename them")
            return X
        array = np.asarray(X)
        if array.ndim != 2:
            raise ValueError(f"X must be a DataFrame or a 2-D array (rows, columns); got {array.ndim}-D")
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"an array X must be numeric (got {array.dtype}); pass a DataFrame for categorical columns") from None
        return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])

    # ------------------------------------------------------------------ imputing
    def transform(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        """The median of ``n_samples`` draws (the most likely level for categories), so Pipelines work."""
        return self.impute(X).median()

    def impute(self, X: pd.DataFrame | np.ndarray, n_samples: int | None = None, *,
               seed: int | None = None) -> TableImputationResult:
        """Draw ``n_samples`` completions of ``X``; observed cells are kept exactly in every draw."""
        check_is_fitted(self, "model_")
        n_samples = check_positive_int(self.n_samples if n_samples is None else n_samples, "n_samples")
        frame = self._as_frame(X)
        codes = self.encoder_.codes(frame)
        missing = np.isnan(codes)
        dead = self._dead_columns(missing)
        samples = np.broadcast_to(codes, (n_samples, *codes.shape)).copy()
        guess = None
        if missing.any():
            scaled = self.scaler_.transform(self.encoder_.encode(codes))
            draws, guesses = self._draw_windows(self._windows(scaled), n_samples, seed, unit="row")
            values = self.domain_.apply(self._levels(self._widen(draws, dead)))
            samples[:, missing] = values[:, missing]
            if guesses is not None:
                filled = self._levels(guesses)
                guess = self._like(np.where(missing, self.domain_.apply(filled), codes), X, frame)
        return TableImputationResult(samples=samples, missing=missing, data=X, encoder=self.encoder_, guess=guess,
                                     whole=self.domain_.integer & self.encoder_.numeric,
                                     level_threshold=self.level_set_threshold_)

    def _dead_columns(self, missing: np.ndarray) -> np.ndarray:
        """``(columns,)`` True for the columns with no observed value in ``X`` (``missing``: its
        missing cells, ``(rows, columns)``): they are imputed from the other columns, with a
        warning; an ``X`` with no observed value at all is refused."""
        if missing.all():
            raise ValueError(
                "X has no observed value; each row is imputed from its given cells (a row that is "
                "entirely missing is fine among others), so pass data with some observed cells")
        dead = missing.all(axis=0)
        if dead.any():
            names = [spec.name for spec, d in zip(self.encoder_.columns, dead) if d]
            warn(f"columns {names} have no observed value in X; they are imputed from the other "
                 "columns and what fit learned, with intervals at least as wide as each numeric "
                 "column's spread at fit. Check that X is the kind of data the model was fitted on")
        return dead

    def _widen(self, draws: np.ndarray, dead: np.ndarray) -> np.ndarray:
        """Draws ``(samples, rows, channels, 1)`` in scaled units, with the spread of each cell of a
        ``dead`` numeric column stretched about its median to at least the column's spread at fit
        (1 scaled unit).

        Given the other columns, draws are narrower than the column's marginal; but a column missing
        from the whole of X may have changed since fit, and no held-out cell calibrated that."""
        columns = np.flatnonzero(dead & self.encoder_.numeric)
        if not columns.size:
            return draws
        channels = self.encoder_.first_channel[columns]
        low, high = self.observed_range_
        spread = np.where(high[channels] > low[channels], 1.0, 0.0)  # constant at fit: stays so
        block = draws[:, :, channels, 0]  # (samples, rows, dead columns)
        median = np.median(block, axis=0)
        std = block.std(axis=0)  # zero with a single draw: nothing to stretch
        stretch = np.maximum(1.0, spread / np.where(std > 0, std, 1.0))
        widened = median + (block - median) * stretch
        bounds = self._value_range()
        if bounds is not None:  # the sampler's clamp: the observed range and its margin
            low_bound, high_bound = (bound.numpy()[channels, 0] for bound in bounds)
            widened = np.clip(widened, low_bound, high_bound)
        out = draws.copy()
        out[:, :, channels, 0] = widened
        return out

    def _like(self, codes: np.ndarray, X, frame: pd.DataFrame):
        filled = self.encoder_.to_frame(codes, frame)
        return filled if isinstance(X, pd.DataFrame) else filled.to_numpy(dtype=np.float64)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {
            "encoder": self.encoder_.to_dict(),
            "scaler": self.scaler_.to_dict(),
            "domain": self.domain_.to_dict(),
            "observed_range": [r.tolist() for r in self.observed_range_],
            "input_kind": self.input_kind_,
            "interval_scale": self.interval_scale_.tolist(),
            "refines": self.refines_,
            "guess_channels": self.guess_channels_.tolist(),
            "residual_quantiles": None if self.residual_quantiles_ is None else self.residual_quantiles_.tolist(),
            "validation": self.validation_,
            "value_dependent_columns": self.value_dependent_columns_,
            "level_set_threshold": None if np.isinf(self.level_set_threshold_) else self.level_set_threshold_,
            "history": self.history_.to_dict(),
        }, {}

    def _restore(self, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.encoder_ = TableEncoder.from_dict(metadata["encoder"])
        self.scaler_ = FeatureScaler.from_dict(metadata["scaler"])
        self.domain_ = FeatureDomain.from_dict(metadata["domain"])
        self.observed_range_ = tuple(np.asarray(r, dtype=np.float64) for r in metadata["observed_range"])
        self.input_kind_ = metadata["input_kind"]
        self.n_features_in_ = len(self.encoder_.columns)
        self.interval_scale_ = np.asarray(metadata["interval_scale"], dtype=np.float64)
        self.refines_ = bool(metadata["refines"])
        self.guess_channels_ = np.asarray(metadata["guess_channels"], dtype=bool)
        quantiles = metadata["residual_quantiles"]
        self.residual_quantiles_ = None if quantiles is None else np.asarray(quantiles, dtype=np.float64)
        self.validation_ = metadata["validation"]
        self.value_dependent_columns_ = metadata["value_dependent_columns"]
        threshold = metadata["level_set_threshold"]
        self.level_set_threshold_ = float("inf") if threshold is None else threshold
        self.history_ = TrainHistory(**metadata["history"])
        self.model_ = self._build_model()
