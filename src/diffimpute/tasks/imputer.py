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
"""

from __future__ import annotations

import inspect
import time
from typing import get_args

import numpy as np
import pandas as pd
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from diffimpute._validation import (
    check_all_columns_observed,
    check_choice,
    check_positive_int,
)
from diffimpute._warnings import warn
from diffimpute.data.batch import Windows, windows_from_panel
from diffimpute.data.domain import FeatureDomain
from diffimpute.data.scaling import FeatureScaler
from diffimpute.data.schema import (
    Clock,
    Schema,
    column_names,
    from_panel,
    time_positions,
    time_ticks,
    to_panel,
)
from diffimpute.data.windowing import owning_starts, stitch
from diffimpute.diffusion.parameterisation import Prediction
from diffimpute.diffusion.samplers import SamplerKind
from diffimpute.diffusion.schedules import ScheduleKind
from diffimpute.engine.checkpoint import Checkpointing
from diffimpute.engine.row_gaussian import RowGaussian
from diffimpute.engine.trainer import TrainConfig, TrainHistory, train
from diffimpute.masking.simulate import block, mcar
from diffimpute.masking.targets import TargetStrategy, make_targets
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.guess import (
    GuessKind,
    InterpolationGuess,
    LatentGuess,
    check_guess,
)
from diffimpute.nn.latent_prior import LatentPrior, default_latent_dim, graph_laplacian, prior_loss
from diffimpute.nn.patch import PatchDenoiser
from diffimpute.nn.pretrained import PretrainedWeights
from diffimpute.tasks.estimator import CheckpointArg, DeviceName, resolve_device
from diffimpute.tasks.held_out import HeldOut
from diffimpute.tasks.result import ImputationResult
from diffimpute.tasks.warm_start import WarmStartRefiner

_DEFAULT_WINDOW = 48
_PRETRAINED_WINDOW = 256  # the pretrained denoiser reads long windows cheaply (patches of 8 steps)
_MIN_TIME_STEPS = 4  # fewer gives windows with no time to attend over and a meaningless guess
_MAX_VALIDATION_WINDOWS = 64
_PRIOR_BUDGET_SHARE = 0.25


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


def _correlation_graph(windows: Windows) -> torch.Tensor:
    """Positive Pearson correlations between features over cells observed in both (scaled units)."""
    values = windows.values.permute(1, 0, 2).reshape(windows.values.shape[1], -1).double()
    mask = windows.observed.permute(1, 0, 2).reshape(values.shape).double()
    both = mask @ mask.T
    products = (values * mask) @ (values * mask).T
    return (products / both.clamp(min=1.0)).clamp(min=0.0, max=1.0).float()


def _laplacian(adjacency, windows: Windows, n_features: int) -> torch.Tensor | None:
    """The prior's graph penalty from ``adjacency``: None, ``"correlation"`` or a matrix."""
    if adjacency is None:
        return None
    if isinstance(adjacency, str):
        if adjacency != "correlation":
            raise ValueError(f"adjacency must be None, 'correlation' or a (features, features) array, got {adjacency!r}")
        return graph_laplacian(_correlation_graph(windows))
    matrix = np.asarray(adjacency, dtype=np.float64)
    if matrix.shape != (n_features, n_features):
        raise ValueError(f"adjacency must have shape ({n_features}, {n_features}) to match the features, got {matrix.shape}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("adjacency must hold finite non-negative weights (0 = not connected)")
    return graph_laplacian(torch.from_numpy(matrix).float())


# ------------------------------------------------------------------------- estimator


class DiffusionImputer(TransformerMixin, WarmStartRefiner):
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

    def _fit_prior(self, train_windows: Windows, device: torch.device, checkpoint: Checkpointing | None,
                   resume: bool) -> LatentPrior:
        """Stage one of ``guess="latent"``: the LSSDM prior, by masked reconstruction, on the engine's trainer."""
        prior = self._build_prior()
        laplacian = _laplacian(self.adjacency, train_windows, self.n_features_in_)
        laplacian = None if laplacian is None else laplacian.to(device)

        def loss_fn(model, batch, generator, shard):
            return prior_loss(model, batch, generator, kl_weight=self.kl_weight,
                              graph_weight=self.graph_weight, laplacian=laplacian, shard=shard)

        budget = None if self.time_budget is None else _PRIOR_BUDGET_SHARE * self.time_budget
        config = TrainConfig(max_epochs=self.prior_epochs, batch_size=self.batch_size,
                             learning_rate=self.prior_learning_rate, weight_decay=0.0, time_budget=budget)
        self.prior_history_ = train(prior, loss_fn, train_windows, config, seed=self.seed_,
                                    device=device, progress=self.verbose, desc="training prior",
                                    checkpoint=checkpoint, resume=resume)
        return prior.requires_grad_(False)

    def _build_prior(self) -> LatentPrior:
        latent = default_latent_dim(self.n_features_in_) if self.latent_dim is None else self.latent_dim
        return LatentPrior(self.n_features_in_, check_positive_int(latent, "latent_dim"),
                           self.prior_hidden, self.prior_layers, self.prior_kernel)

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

    def encode(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        """Posterior mean of the LSSDM latent at every time step of ``X`` (``guess="latent"`` only).

        A DataFrame gives a DataFrame with the same index and columns ``z0, z1, ...``; an array
        ``(time, features)`` gives ``(time, latent)``; a panel gives ``(series, time, latent)``.
        """
        check_is_fitted(self, "model_")
        if self.guess != "latent":
            raise ValueError(f"encode needs guess='latent' (this imputer's guess is {self.guess!r})")
        panel = self._check_data(X)
        windows, index = windows_from_panel(self.scaler_.transform(panel), time_positions(X), self.window_,
                                            self._imputation_stride())
        prior = self.model_.guess.prior
        device = next(prior.parameters()).device
        with torch.no_grad():
            parts = [prior.encode(w.values, w.observed, w.positions)[0].cpu()
                     for w in (windows[rows].to(device) for rows in torch.arange(len(windows)).split(256))]
        codes = stitch(torch.cat(parts).numpy().astype(np.float64), index, panel.shape[0], panel.shape[1])
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(codes[0], index=X.index.copy(), columns=[f"z{i}" for i in range(codes.shape[-1])])
        return codes if np.ndim(X) == 3 else codes[0]

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        state = {
            "schema": self.schema_.to_dict(),
            "scaler": self.scaler_.to_dict(),
            "domain": self.domain_.to_dict(),
            "row_gaussian": self.row_gaussian_.to_dict(),
            "observed_range": [r.tolist() for r in self.observed_range_],
            "window": self.window_,
            "n_features": self.n_features_in_,
            "interval_scale": self.interval_scale_.tolist(),
            "refines": self.refines_,
            "guess_channels": self.guess_channels_.tolist(),
            "residual_quantiles": None if self.residual_quantiles_ is None else self.residual_quantiles_.tolist(),
            "validation": self.validation_,
            "history": self.history_.to_dict(),
            "patch_model": self.patch_model_,
            "adapts_on_call": self.adapts_on_call_,
        }
        if self.guess == "latent":
            state["prior_history"] = self.prior_history_.to_dict()
        return state, {}

    def _restore(self, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.schema_ = Schema.from_dict(metadata["schema"])
        self.scaler_ = FeatureScaler.from_dict(metadata["scaler"])
        self.domain_ = FeatureDomain.from_dict(metadata["domain"])
        n_features = int(metadata["n_features"])  # files written before the row Gaussian: the marginal alone
        marginal = {"mean": [0.0] * n_features, "covariance": np.eye(n_features).tolist()}
        self.row_gaussian_ = RowGaussian.from_dict(metadata.get("row_gaussian", marginal))
        self.observed_range_ = tuple(np.asarray(r, dtype=np.float64) for r in metadata["observed_range"])
        self.window_ = int(metadata["window"])
        self.n_features_in_ = int(metadata["n_features"])
        self.patch_model_ = metadata.get("patch_model")
        self.pretrained_ = self.patch_model_ is not None
        self.adapts_on_call_ = bool(metadata.get("adapts_on_call", False))
        self.interval_scale_ = np.asarray(metadata["interval_scale"], dtype=np.float64)
        self.refines_ = bool(metadata["refines"])
        self.guess_channels_ = np.asarray(metadata.get("guess_channels", [False] * self.n_features_in_), dtype=bool)
        quantiles = metadata["residual_quantiles"]
        self.residual_quantiles_ = None if quantiles is None else np.asarray(quantiles, dtype=np.float64)
        self.validation_ = metadata["validation"]
        self.history_ = TrainHistory(**metadata["history"])
        if "prior_history" in metadata:
            self.prior_history_ = TrainHistory(**metadata["prior_history"])
        self.model_ = self._build_model()

    def save(self, path) -> None:
        """Write weights (safetensors) and config, scaler, schema, calibration and version (JSON) to one file."""
        adjacency = self.adjacency
        if adjacency is not None and not isinstance(adjacency, str):
            self.adjacency = np.asarray(adjacency, dtype=np.float64).tolist()  # JSON holds lists, not arrays
        try:
            super().save(path)
        finally:
            self.adjacency = adjacency


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
