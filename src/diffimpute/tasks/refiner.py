"""What every imputer that refines a first guess shares: train, select, calibrate, draw.

The time-series imputer (windows of ``length`` steps) and the tabular imputer (one row as a
window of length 1) differ in how they turn data into ``Windows`` and which cells they hold out;
from there on the recipe is the same, and it lives here once:

1. A diffusion model over the residual from the guess, its output layer initialised at zero, so
   an untrained model's median *is* the guess and training can only refine it.
2. Model selection on held-out observed cells (never trained on) by imputation MAE; a model that
   does not beat its guess is replaced by the guess with draws from the guess's own errors.
3. Split-conformal calibration of the draws' spread on those cells, so the 90 % interval covers
   about 90 % of them (``engine.calibration``).

A subclass supplies the shape of its windows (``_n_channels``, ``_window_length``), its training
targets, ``_build_model``, and the parameters the docstrings of the estimators list.
"""

from __future__ import annotations

import numpy as np
import torch

from diffimpute._progress import progress
from diffimpute._warnings import warn
from diffimpute.data.batch import Windows
from diffimpute.diffusion.noise import RowUniform
from diffimpute.diffusion.samplers import make_sampler
from diffimpute.engine.calibration import (
    N_GAP_BINS,
    cell_scales,
    quantile_draws,
    rescale,
    residual_quantiles,
    spread_table,
)
from diffimpute.engine.checkpoint import Checkpointing
from diffimpute.engine.denoising import denoising_loss, guess_residual_scale
from diffimpute.engine.distributed import WHOLE
from diffimpute.engine.sampling import SampleOutput, sample
from diffimpute.engine.trainer import TrainConfig, train
from diffimpute.metrics.imputation import summarize
from diffimpute.tasks.estimator import DiffusionEstimator, resolve_device
from diffimpute.tasks.held_out import HeldCells, HeldOut, UnseenResiduals, reported_cells

DEFAULT_DDIM_STEPS = 10
_VALIDATION_CELL_PASSES = 150_000  # cells x network passes per model-selection check
_CALIBRATION_CELL_PASSES = 3_000_000  # cells x samples x network passes for calibration
_INTERVAL_LEVEL = 0.9
CHANCE_MARGIN = 0.5  # standard errors a model's held-out gain over its guess must exceed
_COVERAGE_RANGE = (0.8, 0.97)  # held-out 90 % coverage outside this range gets a warning
_COVERAGE_CHECK_CELLS = 50  # fewer reported cells are too few to judge coverage by
TRAINING_MEMORY_BYTES = 2 * 2**30  # activations a training batch may take; wider data get smaller batches
_BYTES_PER_CELL_CHANNEL = 240


class GuessRefiner(DiffusionEstimator):
    """Base of the imputers: a diffusion model that refines a first guess, selected and calibrated
    on held-out observed cells. Fitted state: ``model_``, ``history_``, ``refines_``,
    ``interval_scale_``, ``residual_quantiles_``, ``validation_``, ``observed_range_``.

    ``selection_steps``: deterministic DDIM steps of the one draw that model selection scores.
    ``calibration_samples``: draws per held-out cell that the spread factors are fitted on.
    ``disjoint_calibration``: choose (checkpoint, guess settings, channels) on half of the held-out
    windows and calibrate on the other half; for small data, where choosing biases the errors.
    ``check_draws_against_guess``: after selection, also compare the median of the calibration
    draws (what ``transform`` returns) with the guess, and fall back to the guess if it is not better.
    """

    selection_steps = 3
    check_draws_against_guess = False
    calibration_samples = 8
    disjoint_calibration = False

    # ------------------------------------------------------------------ parameter checks
    def _check_refiner_params(self) -> None:
        """Checks of the parameters every refining imputer has (diffusion, training, sampling)."""
        self._check_diffusion_params(("n_layers", "channels", "n_heads", "diffusion_steps", "max_epochs", "batch_size",
                                      "patience", "n_samples", "max_cells_per_pass"))

    # ------------------------------------------------------------------ what a subclass supplies
    def _n_channels(self) -> int:
        """Values per window step the network sees (features, or encoded table columns)."""
        raise NotImplementedError

    def _window_length(self) -> int:
        raise NotImplementedError

    def _training_targets(self, observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Which observed cells of a training batch are hidden as targets."""
        raise NotImplementedError

    def _random_targets(self, observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random targets for measuring the guess's error (``_residual_scale``)."""
        raise NotImplementedError

    def _build_model(self, start=None) -> torch.nn.Module:
        """The network; ``start`` is what ``fit`` hands it to start from (a trained latent prior,
        the neighbours of a guess, pretrained weights), None when ``load`` rebuilds it."""
        raise NotImplementedError

    def _fit_guess(self, train_windows: Windows, held: HeldOut | None) -> None:
        """Fit the guess module on the training windows, if it learns from data (before its errors
        set the residual scale), choosing any setting of its own on ``held``; most guesses need nothing."""

    def _unseen_residuals(self, train_windows: Windows, device: torch.device) -> UnseenResiduals | None:
        """The guess's errors at training cells it never saw, calibrating its intervals beside the
        held-out cells; None (default): a guess fitted on the training windows has seen them all."""
        return None

    def _unconditional(self) -> bool:
        """Whether given cells reach the network only forward-noised to each step (RePaint,
        ImDiffusion's imputed diffusion) rather than clean; see ``engine.sampling``."""
        return False

    def _interval_channels(self) -> np.ndarray:
        """``(channels,)`` True for the channels whose intervals are calibrated and scored (all of them
        by default; a one-hot channel of a category has no interval to calibrate)."""
        return np.ones(self._n_channels(), dtype=bool)

    def _cells_per_window(self) -> int:
        return self._n_channels() * self._window_length()

    # ------------------------------------------------------------------ training
    def _train_refiner(self, train_windows: Windows, held: HeldOut | None, device: torch.device,
                       start=None, checkpoint: Checkpointing | None = None, resume: bool = False,
                       trained_seconds: float = 0.0) -> None:
        """Build the model, set its residual scale, train it on the engine's loop (saving to and
        resuming from ``checkpoint``), then decide whether it beats its guess and calibrate its spread.

        ``time_budget`` caps training time, as in every estimator: ``trained_seconds`` already spent
        on an earlier stage (the latent prior) count towards it; preparing data and calibrating do not."""
        held = None if held is None else held.split_report(self.seed_ + 2)
        selection, calibration = self._split_held(held)
        with self._seeded(device):
            self.model_ = self._build_model(start)
            self.guess_channels_ = np.zeros(self._n_channels(), dtype=bool)
            self._fit_guess(train_windows, selection)
            self.model_.residual_scale.copy_(self._residual_scale(train_windows))
            self.refines_ = True
            self.history_ = train(
                self.model_,
                self._loss_fn(),
                train_windows,
                self._train_config(None if self.time_budget is None
                                   else max(1.0, self.time_budget - trained_seconds)),
                validate=None if held is None else (lambda model: self._validation_mae(model, selection, device)),
                seed=self.seed_,
                device=device,
                progress=self.verbose,
                checkpoint=checkpoint,
                resume=resume,
            )
        self.refines_ = self._beats_guess(selection, device)
        if self.refines_ and self.check_draws_against_guess and self.guess != "none" and selection is not None:
            self._choose_channels(selection, device)
        unseen = None if calibration is None else self._unseen_residuals(train_windows, device)
        self._calibrate(calibration, device, unseen)

    def _split_held(self, held: HeldOut | None) -> tuple[HeldOut | None, HeldOut | None]:
        """Cells for selection and for calibration: the same cells, or with ``disjoint_calibration``
        even and odd held-out windows, so that intervals are not fitted where choices were made."""
        if held is None or not self.disjoint_calibration or len(held) < 4:
            return held, held
        rows = torch.arange(len(held))
        return held[rows[0::2]], held[rows[1::2]]

    def _choose_channels(self, selection: HeldOut, device: torch.device) -> None:
        """``check_draws_against_guess``: keep the guess in the channels where the median of the
        model's draws does not beat it on the selection cells (in every channel: the guess alone)."""
        generator = torch.Generator(device=device).manual_seed(self.seed_ + 1)
        out = self._draw(self.model_, selection.windows, selection.cond_mask, self.calibration_samples, None,
                         generator, device)
        arrays = selection.cells()
        draws = out.samples.permute(1, 0, 2, 3).numpy().astype(np.float64)
        guess = out.guess.numpy() if out.guess is not None else np.zeros_like(arrays.truth)
        wins = self._guess_wins(draws, guess, arrays.truth, arrays.target & ~arrays.reported)
        if wins[self._interval_channels()].all():
            warn("the median of the diffusion model's draws did not beat its own guess on held-out cells of any "
                 "column, so it imputes the guess with calibrated intervals; give it more training steps "
                 "or more data")
            self.refines_ = False
        else:
            self.guess_channels_ = wins

    def _residual_scale(self, train_windows: Windows) -> torch.Tensor:
        """The guess's per-feature RMS error at random targets of up to 512 training windows."""
        if self.guess == "none":
            return torch.ones(self._n_channels(), 1)
        generator = torch.Generator().manual_seed(self.seed_)
        rows = torch.randperm(len(train_windows), generator=generator)[:512]
        batch = train_windows[rows]
        return guess_residual_scale(self.model_, batch, self._random_targets(batch.observed, generator))

    def _sampler(self):
        steps = self.sampling_steps
        if steps is None and self.sampler == "ddim":
            steps = min(DEFAULT_DDIM_STEPS, self.diffusion_steps)
        return make_sampler(self._noise_schedule(), self.sampler, steps, self.ddim_eta)

    def _loss_fn(self):
        schedule, prediction, targets = self._noise_schedule(), self.prediction, self._training_targets
        unconditional = self._unconditional()

        def loss_fn(model, batch, generator, shard=WHOLE):
            target = targets(batch.observed, generator)
            return denoising_loss(model, schedule, batch, batch.observed & ~target, target, generator, prediction,
                                  shard=shard, unconditional=unconditional)

        return loss_fn

    def _training_batch(self) -> int:
        """``batch_size``, lowered where a batch of such wide windows would need more than
        ``TRAINING_MEMORY_BYTES`` of activations (measured: about 240 bytes per cell, channel and
        pair of layers, forward and backward, on the CPU), with a warning that says so."""
        per_window = _BYTES_PER_CELL_CHANNEL * self._cells_per_window() * self.channels * max(1.0, self.n_layers / 2)
        fits = max(1, int(TRAINING_MEMORY_BYTES // per_window))
        if fits < self.batch_size:
            warn(
                f"a batch of {self.batch_size} windows of {self._cells_per_window()} cells would need about "
                f"{self.batch_size * per_window / 2**30:.1f} GiB to train, so batches of {fits} are used (about "
                f"{TRAINING_MEMORY_BYTES / 2**30:.0f} GiB); a shorter window or fewer channels allows larger ones"
            )
        return min(self.batch_size, fits)

    def _train_config(self, time_budget: float | None) -> TrainConfig:
        max_steps, check_every = self._step_budget()
        return TrainConfig(
            max_epochs=self.max_epochs,
            batch_size=self._training_batch(),
            learning_rate=self._learning_rate(),
            weight_decay=self.weight_decay,
            patience=self.patience,
            ema_decay=self.ema_decay,
            time_budget=time_budget,
            max_steps=max_steps,
            check_every_steps=check_every,
        )

    def _learning_rate(self) -> float:
        return self.learning_rate

    def _step_budget(self) -> tuple[int, int]:
        """(optimiser steps to train, steps between validation checks): a budget in steps, so that
        a seed reproduces its model whatever the machine's speed (time is only a cap)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ validation and calibration
    def _draw(self, model, windows: Windows, cond_mask, n_samples, steps, generator, device, on_chunk=None,
              row_ids: torch.Tensor | None = None):
        """Draws ``(windows, samples, features, length)`` and the guess, in scaled units; window ``i``'s
        randomness is keyed by ``row_ids[i]`` (default ``i``, see ``engine.sampling.sample``)."""
        row_ids = torch.arange(len(windows)) if row_ids is None else row_ids
        if not self.refines_:
            return self._guess_draws(windows, cond_mask, n_samples, generator, device, on_chunk, row_ids)
        sampler = self._sampler() if steps is None else make_sampler(self._noise_schedule(), "ddim", steps, eta=0.0)
        cells = self._cells_per_window()
        out = sample(model, sampler, windows, cond_mask, n_samples, prediction=self.prediction,
                     rows_per_pass=max(1, self.max_cells_per_pass // cells), generator=generator,
                     value_range=self._value_range(), unconditional=self._unconditional(), device=device,
                     on_chunk=on_chunk, row_ids=row_ids)
        if self.guess_channels_.any() and steps is None:
            fallback = self._guess_draws(windows, cond_mask, n_samples, generator, device, None, row_ids)
            channels = torch.from_numpy(self.guess_channels_)
            out.samples[:, :, channels] = fallback.samples[:, :, channels]
        return out

    def _selection_cells(self, held: HeldOut) -> HeldOut:
        cells = self._cells_per_window()
        return held[: max(8, _VALIDATION_CELL_PASSES // (cells * self.selection_steps))]

    @torch.no_grad()
    def _guess_of(self, windows: Windows, cond_mask: torch.Tensor, device, on_chunk=None) -> torch.Tensor:
        """The first guess ``(windows, features, length)`` from the cells where ``cond_mask``, on the CPU."""
        guesses = []
        for rows in torch.arange(len(windows)).split(256):
            chunk = windows[rows].to(device)
            guesses.append(self.model_.guess(chunk.values, cond_mask[rows].to(device), chunk.positions).cpu())
            if on_chunk is not None:
                on_chunk(len(rows))
        return torch.cat(guesses) if guesses else windows.values.clone()

    def _guess_draws(self, windows: Windows, cond_mask, n_samples, generator, device, on_chunk,
                     row_ids: torch.Tensor) -> SampleOutput:
        """Draws around the guess when the model did not beat it (see ``_beats_guess``): the guess
        plus residuals drawn from its own held-out errors (``residual_quantiles_``, per feature and
        gap length); channels outside ``_interval_channels`` keep the guess in every draw. The
        residuals of window ``i`` are keyed by ``row_ids[i]``, as the network's noise is, so they
        are drawn ``max_cells_per_pass`` at a time as the network's are: ``quantile_draws`` holds
        a quantile table per cell, 99 values, which for all windows at once took more memory than
        the network path."""
        guess = self._guess_of(windows, cond_mask, device, on_chunk)
        draws = guess.unsqueeze(1).repeat(1, n_samples, 1, 1)  # (windows, samples, channels, length)
        if self.residual_quantiles_ is None:
            return SampleOutput(samples=draws, guess=guess)
        scale = self.model_.residual_scale.detach().cpu().numpy() * self._interval_channels()[:, None]
        per_pass = max(1, self.max_cells_per_pass // (self._cells_per_window() * n_samples))
        for rows in torch.arange(len(windows)).split(per_pass):
            rng = RowUniform(generator.initial_seed(), row_ids[rows])
            noise = quantile_draws(self.residual_quantiles_, cond_mask[rows].numpy(), n_samples, rng) * scale
            draws[rows] = guess[rows].unsqueeze(1) + torch.from_numpy(noise.transpose(1, 0, 2, 3)).to(guess.dtype)
        return SampleOutput(samples=draws, guess=guess)

    def _selection_errors(self, model, held: HeldOut, device) -> torch.Tensor:
        """Absolute errors at the picked held-out cells of one short deterministic draw (fixed seed)."""
        generator = torch.Generator(device=device).manual_seed(self.seed_)
        held = self._selection_cells(held)
        out = self._draw(model, held.windows, held.cond_mask, 1, self.selection_steps, generator, device)
        return (out.samples[:, 0] - held.windows.values).abs()[held.picked]

    def _validation_mae(self, model, held: HeldOut, device) -> float:
        """Model selection: the mean of ``_selection_errors``."""
        return float(self._selection_errors(model, held, device).mean())

    def _beats_guess(self, held: HeldOut | None, device) -> bool:
        """Whether the selected model beats the guess alone on the picked held-out cells by more
        than chance: its mean gain per cell must exceed ``CHANCE_MARGIN`` standard errors of the
        paired gains, as the best of many checkpoints beats the guess by a little on noise alone.

        If not, the imputer returns its guess as the median (``_guess_draws``), so that fitting
        never leaves a user worse off than interpolation.
        """
        if held is None or self.guess == "none":
            return True
        model_errors = self._selection_errors(self.model_, held, device).double()
        chosen = self._selection_cells(held)
        guess = self._guess_of(chosen.windows, chosen.cond_mask, device)
        guess_errors = (guess - chosen.windows.values).abs()[chosen.picked].double()
        gains = guess_errors - model_errors
        error = float(gains.std() / len(gains) ** 0.5) if len(gains) > 1 else float("inf")
        margin = CHANCE_MARGIN * error
        if float(gains.mean()) > margin:
            return True
        warn(f"the diffusion model did not beat its own guess on held-out cells by more than chance (model MAE "
             f"{float(model_errors.mean()):.4f} vs guess {float(guess_errors.mean()):.4f}, standardised units, "
             f"gain {float(gains.mean()):.4f}, standard error {error:.4f}), so it imputes the guess "
             "with calibrated intervals; give it more training steps or more data")
        return False

    def _calibrate(self, held: HeldOut | None, device: torch.device, unseen: UnseenResiduals | None = None) -> None:
        """Fit the spread factors (``engine.calibration``) and measure ``validation_`` on the held-out cells.

        The coverage reported in ``validation_`` is honest: cells of odd windows are scored with
        factors fitted on even windows and vice versa; the factors kept are fitted on all of them.
        Where the guess is imputed, its residual quantiles also take the ``unseen`` training cells.
        """
        self.interval_scale_ = np.ones((self._n_channels(), N_GAP_BINS))
        self.residual_quantiles_ = None
        self.validation_ = {}
        if held is None:
            return
        if not self.refines_:
            self._calibrate_guess(held, device, unseen)
            return
        cells = self._cells_per_window()
        n_windows = max(16, _CALIBRATION_CELL_PASSES // (cells * self.calibration_samples * len(self._sampler().timesteps)))
        held = held[: min(len(held), n_windows)]
        generator = torch.Generator(device=device).manual_seed(self.seed_ + 1)
        out = self._draw(self.model_, held.windows, held.cond_mask, self.calibration_samples, None, generator, device)
        draws = out.samples.permute(1, 0, 2, 3).numpy().astype(np.float64)  # (samples, windows, F, L)
        arrays = held.cells()
        truth, target, given, feature, gap, even = (arrays.truth, arrays.target, arrays.given, arrays.feature,
                                                    arrays.gap, arrays.even)
        channels = self._interval_channels()
        target = target & channels[None, :, None]
        if not target.any():
            return

        def table_from(cells: np.ndarray) -> np.ndarray:
            return spread_table(draws[:, cells], truth[cells], feature[cells], gap[cells],
                                self._n_channels(), _INTERVAL_LEVEL)

        guess = out.guess.numpy() if out.guess is not None else np.zeros_like(truth)
        if self.guess_channels_.any():  # they take the guess, drawn from its errors at cells validation_ skips
            picked = arrays.target & ~arrays.reported
            self.residual_quantiles_ = self._guess_residual_table(guess, arrays, unseen, picked)
            generator = torch.Generator(device=device).manual_seed(self.seed_ + 1)
            out = self._draw(self.model_, held.windows, held.cond_mask, self.calibration_samples, None, generator,
                             device)
            draws = out.samples.permute(1, 0, 2, 3).numpy().astype(np.float64)
        reported = reported_cells(target, arrays)
        raw = summarize(draws, truth, reported)
        calibrated = raw
        if self.calibrate and (target & even).any() and (target & ~even).any():
            crossed = np.where(even, cell_scales(table_from(target & ~even), given),
                               cell_scales(table_from(target & even), given))
            crossed = np.where(self.guess_channels_[None, :, None], 1.0, crossed)  # as imputing scales them
            calibrated = summarize(rescale(draws, crossed), truth, reported)
            self.interval_scale_ = np.where((channels & ~self.guess_channels_)[:, None], table_from(target), 1.0)
        self._report(reported, raw["mae"], calibrated, raw["coverage"], np.abs(guess - truth))
        if self.guess_channels_.any():  # what imputing draws from: every held-out cell
            self.residual_quantiles_ = self._guess_residual_table(guess, arrays, unseen)

    def _calibrate_guess(self, held: HeldOut, device: torch.device, unseen: UnseenResiduals | None) -> None:
        """The guess's predictive distribution from its held-out (and ``unseen``) errors, and an honest
        ``validation_`` (even windows scored with quantiles from odd windows and vice versa)."""
        scale = self.model_.residual_scale.detach().cpu().numpy().astype(np.float64)
        guess = self._guess_of(held.windows, held.cond_mask, device).numpy().astype(np.float64)
        arrays = held.cells()
        truth, target, given, feature, gap, even = (arrays.truth, arrays.target, arrays.given, arrays.feature,
                                                    arrays.gap, arrays.even)
        target = target & self._interval_channels()[None, :, None]
        if not target.any():
            return
        residual = (truth - guess) / scale

        def table_from(cells: np.ndarray) -> np.ndarray:
            return self._residual_table(residual[cells], feature[cells], gap[cells], unseen)

        rng = np.random.default_rng(self.seed_ + 1)
        draws = np.broadcast_to(guess, (self.calibration_samples * 4, *guess.shape)).copy()
        if (target & even).any() and (target & ~even).any():
            for scored, fitted in ((even, ~even), (~even, even)):
                noise = quantile_draws(table_from(target & fitted), given, len(draws), rng) * scale
                draws = np.where(scored[None], guess + noise, draws)
        reported = reported_cells(target, arrays)
        report = summarize(draws, truth, reported)
        self.residual_quantiles_ = table_from(target)
        guess_error = np.abs(guess - truth)
        self._report(reported, float(guess_error[reported].mean()), report, np.nan, guess_error)

    def _report(self, reported: np.ndarray, mae: float, calibrated: dict, uncalibrated_coverage: float,
                guess_error: np.ndarray) -> None:
        """``validation_`` from the reported cells (never used to choose the model), and a warning
        when their calibrated 90 % intervals cover too few or too many of them."""
        self.validation_ = {
            "cells": int(reported.sum()),
            "mae": mae,
            "crps": calibrated["crps_sample"],
            "coverage90": calibrated["coverage"],
            "coverage90_uncalibrated": uncalibrated_coverage,
            "guess_mae": float(guess_error[reported].mean()) if reported.any() else np.nan,
            "refines_guess": self.refines_,
        }
        coverage = calibrated["coverage"]
        if reported.sum() >= _COVERAGE_CHECK_CELLS and not _COVERAGE_RANGE[0] <= coverage <= _COVERAGE_RANGE[1]:
            side = "narrow" if coverage < _COVERAGE_RANGE[0] else "wide"
            warn(f"the 90 % intervals covered {coverage:.0%} of {int(reported.sum())} held-out cells, outside "
                 f"{_COVERAGE_RANGE[0]:.0%}-{_COVERAGE_RANGE[1]:.0%}: expect intervals that are too {side}; "
                 "more data (or a shorter window, so more windows are held out) calibrates them better")

    def _guess_wins(self, draws: np.ndarray, guess: np.ndarray, truth: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``(channels,)`` True where the median of the draws does not beat the guess on the held-out
        cells by more than chance (its mean gain per cell within ``CHANCE_MARGIN`` standard errors,
        as for the whole model in ``_beats_guess``); draws ``(samples, windows, channels, length)``."""
        gains = np.abs(guess - truth) - np.abs(np.median(draws, axis=0) - truth)
        wins = np.zeros(gains.shape[1], dtype=bool)
        for channel in range(gains.shape[1]):
            cells = gains[:, channel][target[:, channel]]
            if len(cells) > 1:
                wins[channel] = cells.mean() <= CHANCE_MARGIN * cells.std(ddof=1) / np.sqrt(len(cells))
        return wins

    def _guess_residual_table(self, guess: np.ndarray, arrays: HeldCells, unseen: UnseenResiduals | None,
                              target: np.ndarray | None = None) -> np.ndarray:
        """``residual_quantiles`` of the guess's errors at held-out ``target`` cells (default all) and
        at the ``unseen`` ones."""
        scale = self.model_.residual_scale.detach().cpu().numpy().astype(np.float64)
        residual = (arrays.truth - guess) / scale
        target = arrays.target if target is None else target
        return self._residual_table(residual[target], arrays.feature[target], arrays.gap[target], unseen)

    def _residual_table(self, residual: np.ndarray, feature: np.ndarray, gap: np.ndarray,
                        unseen: UnseenResiduals | None) -> np.ndarray:
        """``residual_quantiles`` of held-out cells' ``residual``, ``feature`` and ``gap`` bins ``(cells,)``,
        joined by the ``unseen`` training cells' in the channels that have them. A channel without
        unseen cells keeps the held-out table: a sparse channel's quantiles are pooled over channels,
        and the hundreds of unseen cells of the channels the trees guess well would set them."""
        table = residual_quantiles(residual, feature, gap, self._n_channels())
        if unseen is None:
            return table
        joined = residual_quantiles(*unseen.after(residual, feature, gap), self._n_channels())
        covered = np.isin(np.arange(self._n_channels()), unseen.feature)
        return np.where(covered[:, None, None], joined, table)

    def _value_range(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self._clip_bounds(*self.observed_range_)

    # ------------------------------------------------------------------ drawing
    def _draw_windows(self, windows: Windows, n_samples: int, seed: int | None, unit: str = "window",
                      row_ids: torch.Tensor | None = None):
        """Calibrated draws ``(n_samples, n_windows, channels, length)`` float64 and guesses
        ``(n_windows, channels, length)`` (None without a guess), in scaled units, observed cells
        exact. Windows without a missing cell are not sampled: their draws are their values.

        ``row_ids``: each window's key, ``(n_windows,)`` or ``(n_windows, k)`` int64 (default its
        number): a window's draws depend on the seed, its key and its cells alone, so a process
        that sees only part of the data draws the windows it shares exactly as one that sees all."""
        row_ids = torch.arange(len(windows)) if row_ids is None else row_ids
        needed = torch.from_numpy(np.flatnonzero((~windows.observed).flatten(1).any(dim=1).numpy()))
        device = resolve_device(self.device)
        self.model_.to(device)
        generator = torch.Generator(device=device).manual_seed(self.seed_ if seed is None else seed)
        out = windows.values.unsqueeze(1).repeat(1, n_samples, 1, 1)
        with progress(total=len(needed), desc="imputing", unit=f"{unit}s", enabled=self.verbose) as bar:
            result = self._draw(self.model_, windows[needed], windows.observed[needed], n_samples, None,
                                generator, device, on_chunk=bar.update, row_ids=row_ids[needed])
        out[needed] = result.samples
        draws = out.permute(1, 0, 2, 3).numpy().astype(np.float64)
        draws = rescale(draws, cell_scales(self.interval_scale_, windows.observed.numpy())[None])
        draws = np.where(windows.observed.numpy()[None], windows.values.numpy()[None], draws)
        guesses = None
        if result.guess is not None:
            guesses = windows.values.numpy().astype(np.float64)
            guesses[needed.numpy()] = result.guess.numpy()
        return draws, guesses
