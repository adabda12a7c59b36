"""DiffusionAugmenter: new realistic samples, and variations of real ones, for data augmentation.

Generation is imputation with every cell a target, so the augmenter is one more client of the
engine, with other masks: ``engine.train`` fits a denoiser whose conditioning mask is empty and
whose targets are all observed cells (a missing training cell is simply no target), and
``engine.sample`` draws with an all-False conditioning mask. Nothing is refined: there is no first
guess, because with nothing to condition on a guess could only be a constant.

Three forms of data, one recipe:

* tables (a DataFrame of numeric and categorical columns, or a 2-D array): the table encoder's
  one-hot channels (``data.table``) through the residual MLP (``nn.tabular``), a row being a
  window of length 1; categorical cells decode to the level with the largest channel;
* time-series windows, a 3-D array ``(n, time, features)``: CSDI's time and feature attention
  (``nn.csdi``), one sample a window;
* small images ``(n, height, width)`` or ``(n, height, width, colours)``: the 2-D UNet
  (``nn.unet``), pixels flattened to a window ``(colours, height * width)``.

Every value is standardised per channel (NaN-aware) before the network sees it and mapped back
after; numeric values stay inside their column's observed range and whole-number columns come
back whole.

Class labels (``fit(X, y)``) make it class-conditional: the label is embedded by the denoiser and
dropped to a null class for ``label_dropout`` of training rows, so that ``generate(n, y)`` can use
classifier-free guidance (Ho & Salimans 2022; ``engine.sampling``). ``vary(X, strength)``
forward-noises real samples part of the way and denoises them again (SDEdit, Meng et al. 2022),
the mechanism DA-Fusion (Trabucco et al. 2024) uses to augment images.

Settings that defaults tuned elsewhere get wrong are measured on each data set instead: the
samples held out at ``fit`` choose the guidance scale and set the copy guard that keeps generated
samples from copying training ones (``tasks.augment_selection``). Conversions between the user's
data and the network's samples live in ``tasks.augment_forms``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal, get_args

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from diffimpute._progress import logger, progress
from diffimpute._validation import check_choice, check_positive_int
from diffimpute.data.batch import Windows
from diffimpute.data.domain import FeatureDomain
from diffimpute.data.scaling import FeatureScaler
from diffimpute.data.table import TableEncoder
from diffimpute.diffusion.parameterisation import Prediction
from diffimpute.diffusion.samplers import SamplerKind, make_sampler
from diffimpute.diffusion.schedules import ScheduleKind
from diffimpute.engine.denoising import denoising_loss
from diffimpute.engine.distributed import WHOLE, Shard
from diffimpute.engine.sampling import sample
from diffimpute.engine.trainer import TrainConfig, TrainHistory, train
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.tabular import TabularDenoiser
from diffimpute.nn.unet import UNetDenoiser
from diffimpute.tasks.augment_forms import SampleForms, check_guidance, check_strength, plain
from diffimpute.tasks.augment_selection import (
    AUTO_GUIDANCE,
    FitMeasurement,
    as_points,
    complete_samples,
    held_out_loss,
    measure,
    redraw_copies,
)
from diffimpute.tasks.estimator import CheckpointArg, DeviceName, DiffusionEstimator, resolve_device

AugmentKind = Literal["auto", "table", "series", "image"]
_MIN_ROWS = 8  # fewer samples than this are too few to learn a distribution from


# ------------------------------------------------------------------------- estimator


class DiffusionAugmenter(SampleForms, DiffusionEstimator):
    """Generate new samples like the training data (optionally of a given class), or vary real ones.

    Defaults are sized for a laptop CPU: 2,000 training steps (capped at 60 s), a 3-block MLP of
    width 256 for tables, a 3-layer 32-channel CSDI network for series, a 32-channel UNet for
    images, 50 diffusion steps sampled by DDPM (compared by train-on-synthetic, test-on-real
    accuracy on validation rows, ``bench/tune_augmenter.py``).

    Parameters
    ----------
    kind: ``"auto"`` (DataFrames and 2-D arrays are tables, 3-D arrays time-series windows
        ``(n, time, features)``, 4-D arrays images ``(n, height, width, colours)``), or ``"table"``,
        ``"series"``, ``"image"`` (needed for grey images ``(n, height, width)``).
    hidden, n_layers: width and depth of the tabular MLP; ``n_layers``, ``channels``, ``n_heads``
        size the series network.
    dropout: dropout inside the denoiser.
    prediction: what the network outputs: ``"epsilon"`` (the noise), ``"v"`` or ``"x0"``.
    diffusion_steps, schedule, beta_start, beta_end: the noise schedule.
    label_dropout: share of training rows whose label is replaced by the null class, so that the
        model also learns the unconditional distribution that guidance contrasts with.
    guidance_scale: classifier-free guidance for ``generate(n, y)`` and ``vary(X, s, y)``: 1 is the
        plain class-conditional model, larger values push samples towards their class, 0 ignores it.
        ``"auto"``: with labels, the scale whose samples score best on the held-out samples
        (``tasks.augment_selection``); without labels, 1.
    reject_copies: ``generate`` redraws samples closer to a training sample than the copy
        distance set at ``fit`` (see ``copy_distance_``), so that synthetic samples are no nearer
        to the training samples than unseen real ones are. The saved model then holds the
        training samples (``save(include_data=False)`` leaves them out and the guard with them).
    max_steps: optimiser steps of training, the budget that makes a seed reproduce its model (the
        learning rate drops at 75 % and 90 % of it). validate_every: optimiser steps between
        held-out checks (None: ``max_steps // 20``).
    max_epochs, batch_size, learning_rate, weight_decay, ema_decay: training on the engine's loop.
    validation_fraction: share of the samples held out from training; the weights kept are those
        with the lowest denoising loss on them (training stops after ``patience`` checks without
        a gain: past that point a model of small data reproduces its training samples). They also
        choose ``guidance_scale="auto"``, set the copy guard and give ``selection_``. 0: none, the
        last weights are kept, guidance is 1 and there is no guard.
    time_budget: a cap on training seconds; when it stops training before ``max_steps`` the model
        depends on the machine's speed, and ``fit`` warns so (None: no cap).
    sampler, sampling_steps, ddim_eta: the reverse process (``"ddpm"`` visits every step;
        ``"ddim"`` takes ``sampling_steps``, None: all of them).
    clip_margin: each step's clean estimate is clamped to the observed range of every channel
        widened by this share of the range (None: no clamp); outputs are always clipped to the
        observed range of each numeric column or feature.
    keep_integers: columns or features whose observed values are all whole numbers give whole numbers.
    max_cells_per_pass: samples x cells per network pass while sampling.
    device, random_state, verbose: as for the imputers.

    After ``fit``: ``input_kind_`` (``"frame"``, ``"array"``, ``"series"`` or ``"image"``),
    ``classes_`` and ``class_prior_`` (with ``y``), ``history_`` (training loss per epoch),
    ``guidance_scale_`` (the scale used), ``selection_`` (a ``FitMeasurement``: TSTR and
    real-vs-synthetic AUC per scale tried, the DCR share with and without the copy guard; None
    without held-out samples), ``dcr_share_``, ``copy_distance_``, ``held_out_`` (positions of
    the held-out samples in ``X``), ``fit_seconds_``.
    """

    def __init__(
        self,
        *,
        kind: AugmentKind = "auto",
        hidden: int = 256,
        n_layers: int = 3,
        channels: int = 32,
        n_heads: int = 4,
        dropout: float = 0.0,
        prediction: Prediction = "epsilon",
        diffusion_steps: int = 50,
        schedule: ScheduleKind = "quad",
        beta_start: float = 1e-4,
        beta_end: float = 0.5,
        label_dropout: float = 0.1,
        guidance_scale: float | Literal["auto"] = "auto",
        reject_copies: bool = True,
        max_steps: int = 2000,
        validate_every: int | None = None,
        max_epochs: int = 2000,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-6,
        ema_decay: float | None = None,
        validation_fraction: float = 0.2,
        patience: int = 10,
        time_budget: float | None = 60.0,
        sampler: SamplerKind = "ddpm",
        sampling_steps: int | None = None,
        ddim_eta: float = 1.0,
        clip_margin: float | None = 0.0,
        keep_integers: bool = True,
        max_cells_per_pass: int = 2**16,
        device: DeviceName = "auto",
        random_state: int = 0,
        verbose: bool = True,
    ) -> None:
        self.kind = kind
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
        self.label_dropout = label_dropout
        self.guidance_scale = guidance_scale
        self.reject_copies = reject_copies
        self.max_steps = max_steps
        self.validate_every = validate_every
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.time_budget = time_budget
        self.sampler = sampler
        self.sampling_steps = sampling_steps
        self.ddim_eta = ddim_eta
        self.clip_margin = clip_margin
        self.keep_integers = keep_integers
        self.max_cells_per_pass = max_cells_per_pass
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameter checks
    def _check_params(self) -> None:
        self._check_diffusion_params(("hidden", "n_layers", "channels", "n_heads", "diffusion_steps", "max_epochs",
                                      "batch_size", "patience", "max_cells_per_pass", "max_steps"))
        if self.validate_every is not None:
            check_positive_int(self.validate_every, "validate_every")
        check_choice(self.kind, get_args(AugmentKind), "kind")
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.guidance_scale != "auto":
            check_guidance(self.guidance_scale)
        if not isinstance(self.reject_copies, bool):
            raise TypeError(f"reject_copies must be True or False, got {self.reject_copies!r}")

    def _sampler(self):
        return make_sampler(self._noise_schedule(), self.sampler, self.sampling_steps, self.ddim_eta)

    # ------------------------------------------------------------------ model
    def _build_model(self) -> torch.nn.Module:
        n_classes = 0 if self.classes_ is None else len(self.classes_)
        n_channels = len(self.scaler_.mean_)
        if self.input_kind_ in ("frame", "array"):
            return TabularDenoiser(n_channels, hidden=self.hidden, n_layers=self.n_layers, dropout=self.dropout,
                                   n_classes=n_classes)
        if self.input_kind_ == "series":
            return CSDIDenoiser(n_features=n_channels, channels=self.channels, n_layers=self.n_layers,
                                n_heads=self.n_heads, dropout=self.dropout, n_classes=n_classes)
        height, width = self.sample_shape_[:2]
        return UNetDenoiser(n_channels, height, width, channels=self.channels, dropout=self.dropout,
                            n_classes=n_classes)

    def _loss_fn(self):
        """Every observed cell a target, nothing given; labels dropped to the null class at random."""
        schedule, prediction, dropout = self._noise_schedule(), self.prediction, self.label_dropout

        def loss_fn(model, batch: Windows, generator: torch.Generator, shard: Shard = WHOLE) -> torch.Tensor:
            if batch.label is not None and dropout > 0:
                drop = torch.rand(len(batch), generator=generator, device=batch.label.device) < dropout
                batch = dataclasses.replace(batch, label=torch.where(drop, model.n_classes, batch.label))
            nothing = torch.zeros_like(batch.observed)
            return denoising_loss(model, schedule, batch, nothing, batch.observed, generator, prediction,
                                  shard=shard)

        return loss_fn

    def _windows(self, scaled: np.ndarray, label: torch.Tensor | None = None) -> Windows:
        """Scaled samples ``(n, channels, length)`` with NaN -> ``Windows``."""
        observed = ~np.isnan(scaled)
        return Windows(values=torch.from_numpy(np.where(observed, scaled, 0.0).astype(np.float32)),
                       observed=torch.from_numpy(observed),
                       positions=torch.arange(scaled.shape[2], dtype=torch.float32).expand(len(scaled), -1),
                       label=label)

    def _value_range(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self._clip_bounds(*self.channel_range_)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame | np.ndarray, y=None, *, checkpoint: CheckpointArg = None,
            resume: bool = False) -> DiffusionAugmenter:
        """Learn the distribution of the samples of ``X`` (of each class in ``y``, if given); returns ``self``.

        Missing cells (NaN, None, pd.NA) are allowed: they are not learned from. ``checkpoint``,
        ``resume``: save training progress to a file and continue an interrupted fit from it, as in
        ``DiffusionImputer.fit``.
        """
        started = time.perf_counter()
        self._check_params()
        self._start_fit(X)
        plan = self._checkpointing(checkpoint, resume)
        self.input_kind_ = self._kind_of(X)
        encoded = self._encode(X, fitting=True)
        n = len(encoded.values)
        if n < _MIN_ROWS:
            raise ValueError(f"X has {n} sample(s); the augmenter needs at least {_MIN_ROWS} to learn from")
        empty = np.isnan(encoded.flat).all(axis=0)
        if empty.any():
            raise ValueError(f"X has {int(empty.sum())} entirely missing column(s) or feature(s) "
                             f"(at {np.flatnonzero(empty)[:5].tolist()}); drop them")
        label = self._fit_labels(y, n)
        if self.input_kind_ == "frame":
            self.column_index_ = X.columns.copy()
        else:
            self.dtype_ = np.dtype(np.float64 if X.dtype == object else X.dtype)
        self.scaler_ = FeatureScaler().fit(encoded.flat)
        scaled = self._scaled(encoded)
        self.channel_range_ = (np.nanmin(scaled, axis=(0, 2)), np.nanmax(scaled, axis=(0, 2)))
        self._fit_domain(encoded)
        windows = self._windows(scaled, label)
        kept = np.flatnonzero(windows.observed.flatten(1).any(1).numpy())  # samples with a cell to learn
        train_windows, held, held_rows = self._split(windows[torch.from_numpy(kept)])
        self.held_out_ = np.sort(kept[held_rows])
        device = resolve_device(self.device)
        with self._seeded(device):
            self.model_ = self._build_model()
            config = TrainConfig(max_epochs=self.max_epochs, batch_size=self.batch_size,
                                 learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                                 patience=self.patience, ema_decay=self.ema_decay, time_budget=self.time_budget,
                                 max_steps=self.max_steps,
                                 check_every_steps=self.validate_every or max(1, self.max_steps // 20))
            validate = None if held is None else held_out_loss(held, self._noise_schedule(), self.prediction,
                                                               self.seed_, self.max_cells_per_pass, device)
            self.history_ = train(self.model_, self._loss_fn(), train_windows, config, validate=validate,
                                  seed=self.seed_, device=device, progress=self.verbose,
                                  checkpoint=plan, resume=resume)
            self._measure(train_windows, held)
        self.fit_seconds_ = time.perf_counter() - started
        if self.verbose:
            logger.info("%s", self.fit_summary())
        return self

    def _split(self, windows: Windows) -> tuple[Windows, Windows | None, np.ndarray]:
        """Training samples, held-out ones (``validation_fraction`` of them, at random; None if
        none) and the held-out positions in ``windows``."""
        n_held = int(self.validation_fraction * len(windows))
        if n_held < 1:
            return windows, None, np.zeros(0, dtype=np.int64)
        order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(self.seed_))
        return windows[order[n_held:]], windows[order[:n_held]], order[:n_held].numpy()

    def _measure(self, train_windows: Windows, held: Windows | None) -> None:
        """Choose the guidance scale and set the copy guard on the held-out samples (see
        ``tasks.augment_selection``); without held-out samples, the given scale (1 for "auto") and no guard."""
        fixed = 1.0 if self.guidance_scale == "auto" else float(self.guidance_scale)
        self.selection_, self.guidance_scale_, self.copy_distance_, self.copy_rows_ = None, fixed, 0.0, None
        if held is None:
            return
        scales = AUTO_GUIDANCE if self.guidance_scale == "auto" and self.classes_ is not None else (fixed,)
        shape = (len(self.scaler_.mean_), self._length())

        def draw(n: int, labels: np.ndarray | None, scale: float, seed: int) -> np.ndarray:
            label = None if labels is None else torch.from_numpy(labels)
            return as_points(self._as_given(self._draw(self._windows(np.full((n, *shape), np.nan), label), None,
                                                       scale, seed)))

        def labels_of(windows: Windows) -> np.ndarray | None:
            return None if windows.label is None else windows.label.numpy()

        train_windows, held = complete_samples(train_windows), complete_samples(held)
        train_points = as_points(train_windows.values.numpy())
        self.selection_ = measure(draw, train_points, labels_of(train_windows), as_points(held.values.numpy()),
                                  labels_of(held), scales, self.reject_copies, self.seed_)
        self.guidance_scale_ = self.selection_.guidance_scale
        self.copy_distance_ = self.selection_.copy_distance
        if self.copy_distance_ > 0:
            self.copy_rows_ = torch.from_numpy(train_points.astype(np.float32))

    @property
    def dcr_share_(self) -> float | None:
        """Share of synthetic samples nearer to a training sample than to a held-out one, measured
        at ``fit`` with the copy guard (ideal 0.5; None without held-out samples)."""
        check_is_fitted(self, "model_")
        return None if self.selection_ is None else self.selection_.dcr_share

    def fit_summary(self) -> str:
        """What ``fit`` did and measured, as the verbose log shows it."""
        check_is_fitted(self, "model_")
        lines = [f"augmenter fitted in {self.fit_seconds_:.1f} s ({len(self.history_.train_loss)} epochs)"]
        if self.selection_ is None:
            lines.append("no held-out samples (validation_fraction=0): guidance and copy guard not measured")
        else:
            lines.append(self.selection_.summary())
        return "\n".join(lines)

    # ------------------------------------------------------------------ drawing
    def _draw(self, windows: Windows, strength: float | None, guidance_scale: float | None, seed: int | None,
              row_offset: int = 0, bar=None) -> np.ndarray:
        """Samples ``(n, channels, length)`` in scaled units from the engine's sampler."""
        device = resolve_device(self.device)
        self.model_.to(device)
        scale = self.guidance_scale_ if guidance_scale is None else check_guidance(guidance_scale)
        generator = torch.Generator(device=device).manual_seed(self.seed_ if seed is None else seed)
        cells = windows.values.shape[1] * windows.values.shape[2]
        out = sample(self.model_, self._sampler(), windows, torch.zeros_like(windows.observed), 1,
                     prediction=self.prediction, rows_per_pass=max(1, self.max_cells_per_pass // cells),
                     generator=generator, value_range=self._value_range(), device=device,
                     on_chunk=None if bar is None else bar.update,
                     row_ids=torch.arange(row_offset, row_offset + len(windows)),
                     guidance_scale=scale, strength=strength)
        return out.samples[:, 0].numpy().astype(np.float64)

    def generate(self, n: int, y=None, *, guidance_scale: float | None = None, seed: int | None = None):
        """``n`` new samples in the fitted form (a DataFrame with the fitted columns and dtypes, or an
        array ``(n, *sample shape)``).

        y: None (unconditional, also for a model fitted with labels), one label for every sample, or
        ``n`` labels. guidance_scale: overrides the fitted one. seed: overrides ``random_state``.
        """
        check_is_fitted(self, "model_")
        n = check_positive_int(n, "n")
        label = self._label_indices(y, n)
        empty = np.full((n, len(self.scaler_.mean_), self._length()), np.nan)
        with progress(total=n, desc="generating", unit="samples", enabled=self.verbose) as bar:
            windows = self._windows(empty, label)
            draws = self._without_copies(windows, self._draw(windows, None, guidance_scale, seed, bar=bar),
                                         guidance_scale, seed)
        return self._output(self._codes(draws))

    def _without_copies(self, windows: Windows, draws: np.ndarray, guidance_scale: float | None,
                        seed: int | None) -> np.ndarray:
        """``draws`` with the copy guard's redraws (``tasks.augment_selection.redraw_copies``)."""
        if not self.reject_copies or self.copy_rows_ is None:
            return draws
        base = self.seed_ if seed is None else seed

        def redraw(rows: np.ndarray, attempt: int) -> np.ndarray:
            return self._draw(windows[torch.from_numpy(rows)], None, guidance_scale, base + attempt)

        return redraw_copies(draws, self.copy_rows_.numpy().astype(np.float64), self.copy_distance_, redraw,
                             lambda scaled: as_points(self._as_given(scaled)))

    def vary(self, X: pd.DataFrame | np.ndarray, strength: float = 0.5, y=None, *,
             guidance_scale: float | None = None, seed: int | None = None):
        """A variation of each sample of ``X``, in ``X``'s form (a DataFrame keeps its index).

        strength: 0 returns ``X`` unchanged, 1 a fresh sample per row, in between the sample is
        forward-noised that share of the sampler's steps and denoised again (SDEdit). Missing cells
        of ``X`` are generated to fit the observed ones (at strength 0 they are the only cells that
        change). y: labels to steer the denoising with (None: unconditional).
        """
        check_is_fitted(self, "model_")
        strength = check_strength(strength)
        encoded = self._encode(X)
        n = len(encoded.values)
        label = self._label_indices(y, n)
        scaled = self._scaled(encoded)
        windows = self._windows(scaled, label)
        gaps = (~windows.observed).flatten(1).any(1).numpy()
        draws = np.empty_like(scaled)
        with progress(total=n, desc="varying", unit="samples", enabled=self.verbose) as bar:
            # Samples with gaps run every step (their gaps are generated), so they are drawn apart.
            for rows, offset in ((np.flatnonzero(~gaps), 0), (np.flatnonzero(gaps), n)):
                if len(rows):
                    draws[rows] = self._draw(windows[torch.from_numpy(rows)], strength, guidance_scale, seed,
                                             offset, bar)
        codes = self._codes(draws)
        if strength == 0:  # observed cells exactly as given
            return self._fill(X, codes)
        return self._output(codes, index=X.index if isinstance(X, pd.DataFrame) else None)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        table = self.input_kind_ in ("frame", "array")
        return {
            "input_kind": self.input_kind_,
            "encoder": self.encoder_.to_dict() if table else None,
            "dtypes": self.dtypes_ if self.input_kind_ == "frame" else None,
            "columns": [plain(c) for c in self.column_index_] if self.input_kind_ == "frame" else None,
            "dtype": None if self.input_kind_ == "frame" else self.dtype_.str,
            "sample_shape": None if table else list(self.sample_shape_),
            "scaler": self.scaler_.to_dict(),
            "channel_range": [r.tolist() for r in self.channel_range_],
            "value_range": [np.where(np.isnan(r), None, r).tolist() for r in self.value_range_],
            "domain": self.domain_.to_dict(),
            "classes": None if self.classes_ is None else [plain(c) for c in self.classes_],
            "class_prior": None if self.class_prior_ is None else self.class_prior_.tolist(),
            "history": self.history_.to_dict(),
            "fit_seconds": self.fit_seconds_,
            "held_out": self.held_out_.tolist(),
            "guidance_scale": self.guidance_scale_,
            "selection": None if self.selection_ is None else self.selection_.to_dict(),
            "copy_distance": self.copy_distance_,
        }, ({} if self.copy_rows_ is None else {"copy_rows": self.copy_rows_})

    def _user_data(self) -> dict[str, str]:
        return {} if self.copy_rows_ is None else {"copy_rows": "training samples the copy guard compares with"}

    def _restore(self, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.input_kind_ = metadata["input_kind"]
        if metadata["encoder"] is not None:
            self.encoder_ = TableEncoder.from_dict(metadata["encoder"])
        if self.input_kind_ == "frame":
            self.dtypes_ = metadata["dtypes"]
            self.column_index_ = pd.Index(metadata["columns"])
        else:
            self.dtype_ = np.dtype(metadata["dtype"])
        if metadata["sample_shape"] is not None:
            self.sample_shape_ = tuple(metadata["sample_shape"])
        self.scaler_ = FeatureScaler.from_dict(metadata["scaler"])
        self.channel_range_ = tuple(np.asarray(r, dtype=np.float64) for r in metadata["channel_range"])
        self.value_range_ = tuple(np.asarray(r, dtype=np.float64) for r in metadata["value_range"])
        self.domain_ = FeatureDomain.from_dict(metadata["domain"])
        classes = metadata["classes"]
        self.classes_ = None if classes is None else np.asarray(classes)
        self.class_prior_ = None if metadata["class_prior"] is None else np.asarray(metadata["class_prior"])
        self.history_ = TrainHistory(**metadata["history"])
        self.fit_seconds_ = metadata["fit_seconds"]
        self.held_out_ = np.asarray(metadata["held_out"], dtype=np.int64)
        self.guidance_scale_ = metadata["guidance_scale"]
        self.selection_ = None if metadata["selection"] is None else FitMeasurement.from_dict(metadata["selection"])
        self.copy_distance_ = metadata["copy_distance"]
        self.copy_rows_ = tensors.get("copy_rows")
        self.model_ = self._build_model()
