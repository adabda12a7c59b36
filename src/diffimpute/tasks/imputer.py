"""DiffusionImputer: probabilistic imputation of multivariate time series (CSDI family).

Public methods validate and window the user's data; the engine does the computing. The model
learns from observed values alone: observed cells are split into conditioning and target cells
at random (self-supervision), so no complete ground truth is ever needed.

The design, in the order ``fit`` runs it:

0. By default the diffusion model starts from weights pretrained once on broad synthetic and real
   series and shipped in the package (``nn.pretrained``, ``weights/MODEL_CARD.md``): a
   feature-agnostic denoiser that scales each window by its own cells, so it imputes data it has
   never seen with no training (``from_pretrained``) and ``fit`` only fine-tunes it.
1. A first guess of every cell from the conditioning cells only (``guess``: time-aware linear
   interpolation by default, the LSSDM latent prior, or none as in CSDI).
2. A diffusion model over the residual from that guess, its output layer initialised at zero, so
   an untrained model's median *is* the guess and training can only refine it.
3. Model selection on held-out observed cells (never trained on) by imputation MAE.
4. Split-conformal calibration of the draws' spread on those cells, so the 90 % interval covers
   about 90 % of them (``engine.calibration``), and each feature's domain (non-negative,
   whole numbers) applied to every draw (``data.domain``).

This module holds the parameters, ``fit`` and the network; the rest of ``DiffusionImputer`` comes
from mixins, one concept each: the latent prior of ``guess="latent"`` (``tasks.imputer_prior``),
drawing completions of a series or of one span of it (``tasks.imputer_span``) and the fitted state
a saved file holds (``tasks.imputer_state``).
"""

from __future__ import annotations

import inspect
import time
from typing import get_args

import numpy as np
import pandas as pd
import torch
from sklearn.base import TransformerMixin

from diffimpute._validation import (
    check_all_columns_observed,
    check_choice,
    check_positive_int,
)
from diffimpute.data.batch import windows_from_panel
from diffimpute.data.domain import FeatureDomain
from diffimpute.data.scaling import FeatureScaler
from diffimpute.data.schema import (
    Schema,
    column_names,
    time_positions,
    to_panel,
)
from diffimpute.diffusion.parameterisation import Prediction
from diffimpute.diffusion.samplers import SamplerKind
from diffimpute.diffusion.schedules import ScheduleKind
from diffimpute.engine.row_gaussian import RowGaussian
from diffimpute.masking.simulate import block, mcar
from diffimpute.masking.targets import TargetStrategy, make_targets
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.guess import (
    GuessKind,
    InterpolationGuess,
    LatentGuess,
    check_guess,
)
from diffimpute.nn.latent_prior import LatentPrior
from diffimpute.nn.patch import PatchDenoiser
from diffimpute.nn.pretrained import PretrainedWeights
from diffimpute.tasks.estimator import CheckpointArg, DeviceName, resolve_device
from diffimpute.tasks.held_out import HeldOut
from diffimpute.tasks.imputer_prior import LatentPriorStage
from diffimpute.tasks.imputer_span import SpanImputation
from diffimpute.tasks.imputer_state import ImputerState
from diffimpute.tasks.warm_start import WarmStartRefiner

_DEFAULT_WINDOW = 48
_PRETRAINED_WINDOW = 256  # the pretrained denoiser reads long windows cheaply (patches of 8 steps)
_MIN_TIME_STEPS = 4  # fewer gives windows with no time to attend over and a meaningless guess
_MAX_VALIDATION_WINDOWS = 64


# ------------------------------------------------------------------------- helpers


def _held_out_cells(scaled: np.ndarray, fraction: float, window: int, rng: np.random.Generator) -> np.ndarray:
    """Observed cells to hold out from training: a third scattered points, a third runs in one
    feature, a third outages across up to three features at once (the default ``block`` mask's
    width), so model selection and calibration see isolated gaps, sensor drop-outs and outages."""
    length = max(2, window // 4)
    points = mcar(scaled, fraction / 3, rng)
    runs = block(scaled, fraction / 3, rng, block_len=length, block_width=1)
    outages = block(scaled, fraction / 3, rng, block_len=length, block_width=3)
    return points | runs | outages


# ------------------------------------------------------------------------- estimator


class DiffusionImputer(LatentPriorStage, SpanImputation, ImputerState, TransformerMixin, WarmStartRefiner):
    """Fill missing values with a conditional diffusion model that refines a first guess, and
    say how sure it is (samples, median, quantiles, calibrated intervals).

    By default ``fit`` fine-tunes the shipped pretrained denoiser for 300 steps at learning rate
    3e-4 (about a minute on a laptop CPU); ``DiffusionImputer.from_pretrained()`` imputes with no
    training at all. ``pretrained=None`` trains a CSDI denoiser from scratch, sized for a laptop
    CPU by measurement (``bench/tune_imputer.py``): 2 layers, 32 channels, batches of 16 at
    learning rate 3e-3, 1000 steps. Sampling: 10-step DDIM.

    Parameters
    ----------
    pretrained: ``"default"`` (the weights shipped in the package, see ``weights/MODEL_CARD.md``),
        the path of a weights file exported by ``pretrain/pretrain.py``, or None (train from
        scratch). The pretrained denoiser refines linear interpolation, so with ``guess="latent"``
        or ``"none"`` the ``"default"`` weights do not apply and the model trains from scratch;
        its size is the weights' own (``channels``, ``n_layers``, ``n_heads`` and ``dropout``
        size a model trained from scratch), and the diffusion parameters must match the ones
        it was trained for (the defaults do). ``pretrained_`` says whether a fit used them.
    max_steps: optimiser steps of training (None: 300 from pretrained weights, 1000 from scratch;
        0: no training, as ``from_pretrained``). The same data, parameters and ``random_state``
        give the same model on one machine.
    validate_every: optimiser steps between model-selection checks (None: ``max_steps // 12``).
    window: time steps per window the model sees; default ``min(256, series length)`` with
        pretrained weights (at most 512), ``min(48, series length)`` from scratch.
    stride: step between training windows; default ``window // 4``. Imputation always uses
        half-overlapping windows and takes each timestamp from the window it is most central in.
    guess: the first estimate the diffusion model refines, computed from conditioning cells only:
        ``"interpolate"`` (time-aware linear interpolation, default), ``"latent"`` (the LSSDM
        latent prior, trained first; see the ``prior_*`` parameters) or ``"none"`` (plain CSDI).
    prediction: what the network outputs: ``"v"`` (velocity, default: the lowest validation MAE
        at the default budget in ``bench/tune_imputer.py``), ``"x0"`` (the clean residual; with the
        zero-initialised output layer an untrained model's draws are exactly the guess) or
        ``"epsilon"`` (the noise, as CSDI). Whatever the choice, a model that does not beat its
        guess on held-out cells is replaced by the guess (``refines_`` is then False).
    channels, n_layers, n_heads, dropout: size of the CSDI denoiser (CSDI's paper: 64, 4, 8).
    diffusion_steps, schedule, beta_start, beta_end: the noise schedule (CSDI: 50, quad, 1e-4, 0.5).
    target_strategy: how observed cells are split into conditioning and training targets:
        ``"random"`` (CSDI's default), ``"historical"`` (other windows' missing patterns), ``"mix"``
        or ``"gaps"`` (points, 8-step patches, blocks, a feature out, as in pretraining). None:
        ``"gaps"`` fine-tuning pretrained weights, ``"random"`` from scratch (each chosen on
        validation data: ``bench/tune_pretrained.py``, ``bench/tune_imputer.py``).
    max_epochs, batch_size, learning_rate, weight_decay, patience, ema_decay: training (AdamW with
        gradient clipping; the learning rate drops 10x at 75 % and 90 % of the steps).
        ``learning_rate`` None: 3e-4 from pretrained weights, 3e-3 from scratch. ``patience``
        counts validation checks without improvement before stopping.
    time_budget: a cap in seconds: if training reaches it before ``max_steps``, ``fit`` stops
        cleanly, keeps the best model and warns that the result then depends on the machine's
        speed (None: no cap).
    validation_fraction: share of observed cells held out from training for model selection,
        calibration and ``validation_`` (0 turns all three off).
    n_samples: draws per missing cell for ``transform`` (and ``impute`` unless given).
    sampler, sampling_steps: ``"ddim"`` with ``sampling_steps`` steps (None: 10) or ``"ddpm"``
        over every schedule step (``sampling_steps`` must then be None or ``diffusion_steps``). ``ddim_eta``: DDIM's noise level (0: deterministic given the
        first noise; 1: as much fresh noise per step as DDPM).
    calibrate: scale the draws' spread so that the 90 % interval covers 90 % of held-out cells.
    keep_nonnegative: features never negative in training get non-negative draws.
    keep_integers: features whose observed values are all whole numbers get whole-number draws.
    clip_margin: clamp each step's clean estimate to each feature's observed range widened by
        this fraction of the range on both sides (None: no clamp).
    latent_dim, prior_hidden, prior_layers, prior_kernel, prior_epochs, prior_learning_rate,
        kl_weight, adjacency, graph_weight: the LSSDM latent prior, used when ``guess="latent"``
        (see ``nn.latent_prior``); ``adjacency`` is None, ``"correlation"`` or a
        ``(features, features)`` non-negative array for a graph Laplacian penalty.
    max_cells_per_pass: windows x samples x features x length per network pass while sampling;
        small passes stay in the CPU's cache (2**15 imputed 3.5x faster than 2**21).
    device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``.
    random_state: seed for initialisation, training and sampling; the same seed gives the same result.
    verbose: show progress bars.

    After ``fit``: ``history_`` (loss, validation MAE per epoch, why training stopped),
    ``validation_`` (MAE, CRPS and 90 % coverage of the model and MAE of the guess alone on
    held-out cells, in standardised units), ``interval_scale_`` (the calibration factors).
    """

    def __init__(
        self,
        *,
        pretrained: str | None = "default",
        max_steps: int | None = None,
        validate_every: int | None = None,
        window: int | None = None,
        stride: int | None = None,
        guess: GuessKind = "interpolate",
        prediction: Prediction = "v",
        channels: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.0,
        diffusion_steps: int = 50,
        schedule: ScheduleKind = "quad",
        beta_start: float = 1e-4,
        beta_end: float = 0.5,
        target_strategy: TargetStrategy | None = None,
        max_epochs: int = 200,
        batch_size: int = 16,
        learning_rate: float | None = None,
        weight_decay: float = 1e-6,
        patience: int = 10,
        ema_decay: float | None = None,
        time_budget: float | None = 120.0,
        validation_fraction: float = 0.1,
        n_samples: int = 50,
        sampler: SamplerKind = "ddim",
        sampling_steps: int | None = None,
        ddim_eta: float = 1.0,
        calibrate: bool = True,
        keep_nonnegative: bool = True,
        keep_integers: bool = True,
        clip_margin: float | None = 1.0,
        latent_dim: int | None = None,
        prior_hidden: int = 64,
        prior_layers: int = 2,
        prior_kernel: int = 5,
        prior_epochs: int = 50,
        prior_learning_rate: float = 1e-3,
        kl_weight: float = 1e-3,
        adjacency: list | str | None = None,
        graph_weight: float = 0.1,
        max_cells_per_pass: int = 2**15,
        device: DeviceName = "auto",
        random_state: int = 0,
        verbose: bool = True,
    ) -> None:
        self.pretrained = pretrained
        self.max_steps = max_steps
        self.validate_every = validate_every
        self.window = window
        self.stride = stride
        self.guess = guess
        self.prediction = prediction
        self.channels = channels
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.diffusion_steps = diffusion_steps
        self.schedule = schedule
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.target_strategy = target_strategy
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
        self.latent_dim = latent_dim
        self.prior_hidden = prior_hidden
        self.prior_layers = prior_layers
        self.prior_kernel = prior_kernel
        self.prior_epochs = prior_epochs
        self.prior_learning_rate = prior_learning_rate
        self.kl_weight = kl_weight
        self.adjacency = adjacency
        self.graph_weight = graph_weight
        self.max_cells_per_pass = max_cells_per_pass
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameter checks
    def _check_params(self) -> None:
        """Every parameter is checked before any training starts."""
        self._check_refiner_params()
        check_guess(self.guess)
        if self.target_strategy is not None:
            check_choice(self.target_strategy, get_args(TargetStrategy), "target_strategy")
        for name in ("prior_hidden", "prior_layers", "prior_kernel", "prior_epochs"):
            check_positive_int(getattr(self, name), name)
        if self.kl_weight < 0 or self.graph_weight < 0:
            raise ValueError("kl_weight and graph_weight must be >= 0")
        if self.prior_kernel % 2 == 0:
            raise ValueError(f"prior_kernel must be odd so windows keep their length, got {self.prior_kernel}")
        self._check_start_params()

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame | np.ndarray, y: None = None, *, checkpoint: CheckpointArg = None,
            resume: bool = False) -> DiffusionImputer:
        """Learn to refine the first guess from the observed cells of ``X``; returns ``self``.

        ``checkpoint``: a file to save training progress to (every 60 s of training and at the end;
        a ``Checkpointing`` sets other intervals); the latent prior's goes beside it, with
        ``.prior`` appended. ``resume=True`` continues an interrupted fit from there: with the same
        ``X``, parameters and seed the model equals that of an uninterrupted fit (without a time
        budget; with one, the seconds already trained count towards it).
        """
        started = time.perf_counter()
        self._check_params()
        self._start_fit(X)
        plan = self._checkpointing(checkpoint, resume)
        panel = to_panel(X)
        columns = column_names(X)
        check_all_columns_observed(panel, columns)
        weights = self._weights()
        window = self._window_for(panel.shape[1], weights)
        stride = check_positive_int(self.stride, "stride") if self.stride is not None else max(1, window // 4)
        device = resolve_device(self.device)

        self.schema_ = Schema.of(X)
        self.pretrained_ = weights is not None
        self.patch_model_ = None if weights is None else dict(weights.model)
        self.adapts_on_call_ = False
        self.window_ = window
        self.scaler_ = FeatureScaler().fit(panel)
        self.domain_ = FeatureDomain.of(panel, nonnegative=self.keep_nonnegative, integer=self.keep_integers)
        scaled = self.scaler_.transform(panel)
        self.row_gaussian_ = RowGaussian.fit(scaled)
        flat = scaled.reshape(-1, scaled.shape[-1])
        self.observed_range_ = (np.nanmin(flat, axis=0), np.nanmax(flat, axis=0))
        positions = time_positions(X)

        rng = np.random.default_rng(self.seed_)
        held_out = _held_out_cells(scaled, self.validation_fraction, window, rng) if self.validation_fraction > 0 else None
        train_panel = np.where(held_out, np.nan, scaled) if held_out is not None else scaled
        train_windows, _ = windows_from_panel(train_panel, positions, window, stride)
        held = self._held_out_windows(scaled, held_out, positions, window, rng)

        with self._seeded(device):
            prior = None
            if self.guess == "latent":
                prior = self._fit_prior(train_windows, device, None if plan is None else plan.beside(".prior"), resume)
        self._train_refiner(train_windows, held, device, weights if prior is None else prior, plan, resume,
                            trained_seconds=0.0 if prior is None else self.prior_history_.seconds)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _n_channels(self) -> int:
        return self.n_features_in_

    def _window_length(self) -> int:
        return self.window_

    def _training_targets(self, observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        strategy = self.target_strategy or ("gaps" if self.pretrained_ else "random")
        return make_targets(observed, strategy, generator)

    def _random_targets(self, observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return make_targets(observed, "random", generator)

    def _window_for(self, n_time: int, weights: PretrainedWeights | None) -> int:
        if n_time < _MIN_TIME_STEPS:
            raise ValueError(
                f"X has {n_time} time step(s); a time-series imputer learns from how values move in time and "
                f"needs at least {_MIN_TIME_STEPS} (for independent rows, wait for the tabular imputer)"
            )
        if self.window is None:
            return min(_DEFAULT_WINDOW if weights is None else _PRETRAINED_WINDOW, n_time)
        window = check_positive_int(self.window, "window")
        if window > n_time:
            raise ValueError(f"window ({window}) is longer than the series ({n_time} time steps); pass window<={n_time}")
        return window

    def _held_out_windows(self, scaled, held_out, positions, window, rng) -> HeldOut | None:
        if held_out is None or not held_out.any():
            return None
        windows, _ = windows_from_panel(scaled, positions, window, window)
        target, _ = windows_from_panel(np.where(held_out, 1.0, np.nan), positions, window, window)
        rows = np.flatnonzero(target.observed.flatten(1).any(dim=1).numpy())
        if len(rows) > _MAX_VALIDATION_WINDOWS:
            rows = rng.choice(rows, _MAX_VALIDATION_WINDOWS, replace=False)  # random order: prefixes stay random
        rows_t = torch.from_numpy(rows)
        return HeldOut(windows[rows_t], target.observed[rows_t])

    def _build_model(self, start: LatentPrior | PretrainedWeights | None = None) -> CSDIDenoiser | PatchDenoiser:
        if isinstance(start, PretrainedWeights):
            return start.build(self.n_features_in_)
        if self.patch_model_ is not None:
            return PatchDenoiser(self.n_features_in_, **self.patch_model_)  # ``load`` puts the weights in
        prior = start
        guess = {"interpolate": InterpolationGuess, "none": lambda: None}.get(self.guess)
        module = LatentGuess(prior if prior is not None else self._build_prior()) if guess is None else guess()
        return CSDIDenoiser(
            n_features=self.n_features_in_,
            channels=self.channels,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            dropout=self.dropout,
            guess=module,
        )

    # ------------------------------------------------------------------ imputing
    def transform(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        """The median of ``n_samples`` draws: a point estimate, so Pipelines work."""
        return self.impute(X).median()


class LatentDiffusionImputer(DiffusionImputer):
    """The LSSDM setting (arXiv 2409.08917): a ``DiffusionImputer`` whose first guess is a latent-space
    prior's coarse reconstruction. Same parameters as ``DiffusionImputer``; ``guess`` defaults to
    ``"latent"`` and ``pretrained`` to None (the prior and its refiner train on each data set)."""

    def __init__(self, **params) -> None:
        super().__init__(**{**_LATENT_DEFAULTS, **params})


_LATENT_DEFAULTS = {"guess": "latent", "pretrained": None}
# scikit-learn reads an estimator's parameters from its constructor's signature: the parent's, with
# the LSSDM defaults, so that get_params, clone and repr see every parameter.
LatentDiffusionImputer.__init__.__signature__ = inspect.signature(DiffusionImputer.__init__).replace(parameters=[
    parameter.replace(default=_LATENT_DEFAULTS.get(name, parameter.default))
    for name, parameter in inspect.signature(DiffusionImputer.__init__).parameters.items()
])
