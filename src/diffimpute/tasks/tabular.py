"""TabularImputer: probabilistic imputation of tables whose rows are independent records.

The same recipe as the time-series imputer (``tasks.refiner``), with a row as a window of
length 1: a first guess of every cell from the given cells of its row (the conditional mean
under a multivariate normal fitted by EM, ``nn.guess.GaussianGuess``, or per column, where they do
better on held-out cells, gradient-boosted trees, ``nn.tree_guess``), a diffusion model over the
residual from it (a residual MLP, ``nn.tabular``, or a transformer over columns), model selection
and split-conformal calibration on held-out observed cells. Categorical columns are one-hot
channels (``data.table``); a categorical cell's draws are levels, so the result gives the most
likely level and, on request, each level's share of the draws.

Training targets are whole columns of a row, never single channels of a one-hot block: hiding
one level's channel while showing the others would give the answer away.
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
from diffimpute.data.table import TableEncoder, most_frequent
from diffimpute.diffusion.noise import RowUniform
from diffimpute.diffusion.parameterisation import Prediction
from diffimpute.diffusion.samplers import SamplerKind
from diffimpute.diffusion.schedules import ScheduleKind
from diffimpute.engine.sampling import SampleOutput
from diffimpute.engine.trainer import TrainHistory
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.guess import GaussianGuess
from diffimpute.nn.tabular import TabularDenoiser
from diffimpute.nn.tree_guess import ColumnChoiceGuess, TreeGuess
from diffimpute.tasks.estimator import CheckpointArg, DeviceName, resolve_device
from diffimpute.tasks.held_out import HeldOut
from diffimpute.tasks.level_sets import draw_levels, in_set, set_threshold
from diffimpute.tasks.refiner import GuessRefiner
from diffimpute.tasks.result import TableImputationResult
from diffimpute.tasks.value_dependence import dependence_warning, value_dependent

DenoiserKind = Literal["mlp", "transformer"]
TabularGuessKind = Literal["gaussian", "auto", "none"]
_MIN_ROWS = 8  # fewer rows cannot both train a model and hold out cells to check it
_GUESS_ROWS = 2048  # rows the Gaussian guess is fitted on (its cost grows as rows x channels^3)
_TREE_ROWS = 4096  # rows the tree guess is fitted on (twice: as they are and thinned)
_TREE_WEIGHTS = (0.0, 0.5, 1.0)  # a column's guess: Gaussian, the mean of both, or trees
_CHOICE_MARGIN = 2.0  # standard errors a column's own best guess must gain to leave the table-wide one
_TREE_FOLDS = 5  # cross-fitting folds of the tree guess: each training row is guessed by trees that never saw it
_HELD_OUT_CELLS, _MIN_AUTO_HELD_OUT, _MAX_AUTO_HELD_OUT = 400, 0.1, 0.2  # the automatic validation_fraction
_SHRINKAGES = (0.001, 0.01, 0.03, 0.1, 0.3)  # candidates for the guess's covariance shrinkage
_STEPS_PER_ROW, _MIN_STEPS, _MAX_STEPS = 2, 400, 4000  # training steps per training row, and their bounds
_CHECKS = 12  # model-selection checks over the training steps; patience counts them
_LEVEL_STREAM = 7  # appended to a row's key: its level draws' random stream, apart from its residuals'


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


def _paired_choice(errors: np.ndarray, default: int) -> float:
    """A column's tree weight: the table-wide choice ``default`` unless another candidate beats it on
    this column's cells by more than ``_CHOICE_MARGIN`` standard errors of the paired gains; with
    tens of held-out cells per column, the best of three on a column alone is mostly noise.
    ``errors``: ``(weights, rows)``, NaN where the column's cell was not picked."""
    cells = ~np.isnan(errors[0])
    best = default
    if cells.sum() > 1:
        gains = errors[default, cells][None] - errors[:, cells]  # (weights, cells)
        margin = _CHOICE_MARGIN * gains.std(axis=1, ddof=1) / np.sqrt(cells.sum())
        better = np.flatnonzero(gains.mean(axis=1) > np.maximum(margin, 0) + 1e-12)
        if better.size:
            best = int(better[np.argmax(gains.mean(axis=1)[better])])
    return _TREE_WEIGHTS[best]


class TabularImputer(TransformerMixin, GuessRefiner):
    """Fill missing cells of a table (numeric, integer, boolean and categorical columns) with a
    diffusion model that refines a first guess, and say how sure it is.

    Rows are independent records (patients, survey answers, accounts); for series use
    ``DiffusionImputer``. A DataFrame comes back with the same index, columns and dtypes; numeric
    arrays ``(rows, columns)`` are accepted too.

    Parameters
    ----------
    guess: ``"gaussian"`` (each cell's conditional mean given the other cells of its row under a
        multivariate normal fitted by EM), ``"auto"`` (default: per column, that, gradient-boosted
        trees on the row filled by it, ``nn.tree_guess``, or their mean, whichever has the lower
        MAE on held-out cells; needs ``validation_fraction`` > 0; the trees are cross-fitted, so
        each training row is guessed by trees that never saw it, as rows are at imputation)
        or ``"none"`` (the model learns from the column means up, as TabCSDI).
    guess_ridge: shrinkage of the Gaussian guess's covariance towards its diagonal (0-1); None
        (default) picks it from a few values by MAE on the held-out cells.
    denoiser: ``"mlp"`` (a residual MLP over the whole row, default) or ``"transformer"`` (CSDI's
        feature attention over the columns, TabCSDI's feature tokens).
    hidden, n_layers: size of the MLP (``channels``, ``n_heads`` size the transformer).
    prediction, diffusion_steps, schedule, beta_start, beta_end, sampler, sampling_steps,
        ddim_eta: as for ``DiffusionImputer``.
    max_epochs, batch_size, learning_rate, weight_decay, patience, ema_decay, time_budget:
        training on the engine's loop, for ``_STEPS_PER_ROW`` optimiser steps per training row
        (within ``_MIN_STEPS``-``_MAX_STEPS``), so that a seed gives the same model on any
        machine; ``time_budget`` caps training seconds and warns when it cuts training short
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

    After ``fit``: ``history_``, ``validation_`` (on held-out cells: numeric MAE, CRPS and 90 %
    coverage in standardised units, MAE of the guess alone, categorical accuracy),
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
        if self.guess_ridge is not None and not 0 <= self.guess_ridge <= 1:
            raise ValueError(f"guess_ridge must be in [0, 1], got {self.guess_ridge}")

    # ------------------------------------------------------------------ what the refiner needs
    def _n_channels(self) -> int:
        return self.encoder_.n_channels

    def _window_length(self) -> int:
        return 1

    def _interval_channels(self) -> np.ndarray:
        return self.encoder_.numeric_channels

    def _guess_wins(self, draws, guess, truth, target) -> np.ndarray:
        """Numeric channels by MAE (the refiner's rule); a categorical column's channels together, by
        the accuracy of the most frequent level among the draws against the guess's level."""
        wins = super()._guess_wins(draws, guess, truth, target)
        categorical = np.flatnonzero(~self.encoder_.numeric)  # only levels have a most frequent one
        model_level = most_frequent(self._levels(draws)[..., categorical])
        guess_level = self._levels(guess)[..., categorical]
        true_level = self._levels(truth)[..., categorical]
        hidden = target[:, self.encoder_.first_channel[categorical], 0]
        for k, j in enumerate(categorical):
            rows = hidden[:, k]
            if rows.any():
                model_right = (model_level[rows, k] == true_level[rows, k]).mean()
                guess_right = (guess_level[rows, k] == true_level[rows, k]).mean()
                # a tie on few cells keeps the model
                wins[self.encoder_.channel_column == j] = guess_right > model_right
        return wins

    def _guess_draws(self, windows: Windows, cond_mask, n_samples, generator, device, on_chunk,
                     row_ids: torch.Tensor) -> SampleOutput:
        """The refiner's draws around the guess, with each categorical cell's levels drawn in
        proportion to the guess's level probabilities (the classifier's, ``nn.tree_guess``): the
        same level in every draw gave prediction sets of one level or of all."""
        out = super()._guess_draws(windows, cond_mask, n_samples, generator, device, on_chunk, row_ids)
        categorical = np.flatnonzero(~self.encoder_.numeric)
        if not categorical.size or not len(windows):
            return out
        hot = self.scaler_.inverse_transform(out.guess[..., 0].double().numpy())  # (windows, channels)
        ends = self.scaler_.transform(np.array([[0.0], [1.0]]) * np.ones(self._n_channels()))
        keys = torch.cat([row_ids.reshape(len(row_ids), -1), torch.full((len(row_ids), 1), _LEVEL_STREAM)], 1)
        uniform = RowUniform(generator.initial_seed(), keys).random((n_samples + 1, len(windows), categorical.size))
        for k, j in enumerate(categorical):
            channels = np.flatnonzero(self.encoder_.channel_column == j)
            chances = np.clip(hot[:, channels], 0.0, None)
            total = chances.sum(axis=1, keepdims=True)
            sure = np.eye(len(channels))[np.argmax(hot[:, channels], axis=1)]  # a guess with no positive share
            chances = np.where(total > 0, chances / np.where(total > 0, total, 1.0), sure)
            drawn = draw_levels(chances, uniform[:, :, k]).T  # (windows, samples)
            low, high = ends[:, channels]
            values = np.where(drawn[..., None] == np.arange(len(channels)), high, low)
            out.samples[:, :, channels, 0] = torch.from_numpy(values).to(out.samples.dtype)
        return out

    def _levels(self, scaled: np.ndarray) -> np.ndarray:
        """Windows ``(..., channels, 1)`` in scaled units -> column codes ``(..., columns)``."""
        return self.encoder_.decode(self.scaler_.inverse_transform(scaled[..., 0]))

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
            guess = ColumnChoiceGuess(guess, TreeGuess(self._n_channels()))
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
        train_windows = train_windows[torch.from_numpy(np.flatnonzero(train_windows.observed.flatten(1).any(1).numpy()))]
        held = None
        if held_columns.any():
            rows = torch.from_numpy(np.flatnonzero(held_columns.any(axis=1)))
            all_rows = self._windows(scaled)
            held = HeldOut(all_rows[rows], torch.from_numpy(held_channels)[rows].unsqueeze(-1))
        if self._cross_fits():
            keys = torch.from_numpy(self._tree_folds(len(train_windows))).float().unsqueeze(-1)
            train_windows = Windows(train_windows.values, train_windows.observed, keys)
        self.train_steps_ = int(np.clip(_STEPS_PER_ROW * len(train_windows), _MIN_STEPS, _MAX_STEPS))
        self._train_refiner(train_windows, held, device, checkpoint=plan, resume=resume)
        self._score_categories(held, device)
        self._check_value_dependence(scaled)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _fit_guess(self, train_windows: Windows, held: HeldOut | None) -> None:
        """Fit the Gaussian guess by EM on training cells and take the shrinkage with the lowest MAE
        on the held-out cells (or ``guess_ridge`` when given); with ``guess="auto"`` also fit the tree
        guess and keep it in the columns where it beats the Gaussian one on those cells."""
        if self.model_.guess is None:
            return
        choice = self.model_.guess if self.guess == "auto" else None
        gaussian = self.model_.guess if choice is None else choice.gaussian
        order = torch.randperm(len(train_windows), generator=torch.Generator().manual_seed(self.seed_))
        rows = train_windows[order[:_GUESS_ROWS]]
        gaussian.fit(rows.values[..., 0], rows.observed[..., 0])
        if self.guess_ridge is not None or held is None:
            gaussian.shrinkage.fill_(0.1 if self.guess_ridge is None else self.guess_ridge)
        else:
            errors = {}
            for amount in _SHRINKAGES:
                gaussian.shrinkage.fill_(amount)
                with torch.no_grad():
                    estimate = gaussian(held.windows.values, held.cond_mask, held.windows.positions)
                errors[amount] = self._held_error(estimate, held).sum()
            gaussian.shrinkage.fill_(min(errors, key=errors.get))
        if choice is None or held is None:
            return  # nothing to choose the trees by: the Gaussian guess everywhere
        self._fit_trees(choice, train_windows)
        with torch.no_grad():
            gaussian_guess, tree_guess = choice.candidates(held.windows.values, held.cond_mask,
                                                           held.windows.positions)
        cell_errors = np.stack([self._column_errors(gaussian_guess + w * (tree_guess - gaussian_guess), held)
                                for w in _TREE_WEIGHTS])  # (weights, rows, columns), NaN: not picked
        weights = np.full(cell_errors.shape[2], _TREE_WEIGHTS[np.nanargmin(np.nansum(cell_errors, axis=(1, 2)))])
        for column in range(cell_errors.shape[2]):
            weights[column] = _paired_choice(cell_errors[:, :, column], _TREE_WEIGHTS.index(weights[column]))
        choice.tree_weight.copy_(torch.from_numpy(weights[self.encoder_.channel_column]).float())

    def _fit_trees(self, choice: ColumnChoiceGuess, train_windows: Windows) -> None:
        """Fit the cross-fitted trees on the training rows twice over: as they are and with a further
        uniform share (up to twice the table's missing rate) of each row's given columns hidden, as
        the diffusion model's targets hide them; the trees see the Gaussian guess in hidden cells."""
        folds = self._tree_folds(len(train_windows))
        rows = train_windows[torch.from_numpy(np.flatnonzero(folds))]
        generator = torch.Generator().manual_seed(self.seed_ + 4)
        rate = torch.rand(len(rows), 1, generator=generator) * min(1.0, 2 * self.missing_rate_)
        thinned = rows.observed & ~self._training_targets(rows.observed, generator, rate)
        with torch.no_grad():
            filled = [choice.gaussian(rows.values, given, rows.positions)[..., 0] for given in (rows.observed, thinned)]
        labels = torch.where(rows.observed[..., 0], rows.values[..., 0], torch.nan).double().numpy()
        choice.trees.fit(torch.cat(filled).double().numpy(), np.vstack([labels, labels]), self.encoder_.channel_column,
                         self.seed_, np.tile(folds[folds > 0], 2), categorical=~self.encoder_.numeric_channels)

    def _cross_fits(self) -> bool:
        """Whether training rows carry their tree fold as their key (``positions``): the MLP ignores
        positions, but the transformer embeds them as times, so it keeps key 0 (all folds)."""
        return self.guess == "auto" and self.denoiser == "mlp"

    def _tree_folds(self, n_rows: int) -> np.ndarray:
        """``(n_rows,)`` each training row's tree fold, 1..``_TREE_FOLDS``, for a seeded ``_TREE_ROWS``
        of them (the rows the trees are fitted on) and 0 (trees that never saw it) for the rest."""
        order = np.random.default_rng(self.seed_ + 3).permutation(n_rows)[:_TREE_ROWS]
        folds = np.zeros(n_rows, dtype=np.int64)
        folds[order] = np.arange(len(order)) % _TREE_FOLDS + 1
        return folds

    def _column_errors(self, guess: torch.Tensor, held: HeldOut) -> np.ndarray:
        """``(rows, columns)`` absolute error of a ``guess`` of the held-out windows, summed over a
        column's channels, at its ``picked`` cells; NaN elsewhere."""
        error = ((guess - held.windows.values).abs() * held.picked)[..., 0].double().numpy()
        by_column = np.zeros((len(error), len(self.encoder_.columns)))
        np.add.at(by_column.T, self.encoder_.channel_column, error.T)
        picked = held.picked[:, self.encoder_.first_channel, 0].numpy()
        return np.where(picked, by_column, np.nan)

    @staticmethod
    def _held_error(guess: torch.Tensor, held: HeldOut) -> np.ndarray:
        """``(channels,)`` summed absolute error of a ``guess`` of the held-out windows at the cells
        that choices may use (``picked``: not the ones ``validation_`` reports)."""
        error = (guess - held.windows.values).abs()
        return (error * held.picked).sum(dim=(0, 2)).double().numpy()

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

    def _score_categories(self, held: HeldOut | None, device: torch.device) -> None:
        """Accuracy of the most likely level at the reported held-out categorical cells, into ``validation_``."""
        categorical = ~self.encoder_.numeric
        self.level_set_threshold_ = float("inf")  # uncalibrated: every level in every set
        if held is None or not categorical.any() or not self.validation_:
            return
        generator = torch.Generator(device=device).manual_seed(self.seed_ + 2)
        out = self._draw(self.model_, held.windows, held.cond_mask, self.calibration_samples, None, generator,
                         device)
        draws = self._levels(out.samples.numpy().astype(np.float64))  # (rows, samples, columns)
        truth = self._levels(held.windows.values.numpy()).astype(np.int64)
        first = self.encoder_.first_channel
        target = held.scored[:, first, 0].numpy() & categorical[None]
        if target.any():
            mode = most_frequent(draws.transpose(1, 0, 2)[..., categorical])
            self.validation_["accuracy"] = float((mode == truth[:, categorical])[target[:, categorical]].mean())
        self._calibrate_level_sets(draws, truth, held.picked[:, first, 0].numpy(), target)

    def _calibrate_level_sets(self, draws: np.ndarray, truth: np.ndarray, picked: np.ndarray,
                              scored: np.ndarray) -> None:
        """``level_set_threshold_`` (``tasks.level_sets``) from the ``picked`` held-out categorical
        cells of all columns pooled, and the share of ``scored`` cells whose 90 % set holds the
        truth into ``validation_["set_coverage90"]``; draws ``(rows, samples, columns)`` codes."""
        shares, truths, is_picked, is_scored = [], [], [], []
        n_levels = max(len(spec.levels) for spec in self.encoder_.columns if spec.kind == "categorical")
        for j in np.flatnonzero(~self.encoder_.numeric):
            rows = picked[:, j] | scored[:, j]
            counts = (draws[rows, :, j, None] == np.arange(n_levels)).mean(axis=1)  # (cells, levels)
            shares.append(counts)
            truths.append(truth[rows, j])
            is_picked.append(picked[rows, j])
            is_scored.append(scored[rows, j])
        shares, truths = np.concatenate(shares), np.concatenate(truths)
        is_picked, is_scored = np.concatenate(is_picked), np.concatenate(is_scored)
        if is_picked.any():
            self.level_set_threshold_ = set_threshold(shares[is_picked], truths[is_picked])
        if is_scored.any():
            held = in_set(shares[is_scored], self.level_set_threshold_)[np.arange(is_scored.sum()), truths[is_scored]]
            self.validation_["set_coverage90"] = float(held.mean())

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
