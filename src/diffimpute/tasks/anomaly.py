"""ImDiffusionDetector: anomaly detection by imputation with complementary masks (Chen et al., VLDB 2024).

Each window is imputed once per complementary mask, so every cell is predicted from its
surroundings exactly once per mask family; how far the observation lies from its imputed distribution is the
anomaly evidence. The task is a client of the engine: ``engine.train`` fits the CSDI denoiser on
mask targets with ``engine.denoising_loss``, and ``engine.sample`` imputes windows x masks x draws
in batched passes, keeping the denoiser's ``x_0`` estimates at the steps that vote.

Pipeline, each stage a named option (raw evidence -> calibration -> threshold): ``fit`` trains
on the first ``1 - calibration_fraction`` of the (mostly normal) rows and keeps the rest as
calibration rows it never trains on; ``tasks.anomaly_scoring`` turns the imputations of new rows
into cell scores, standardises them on the calibration rows' and thresholds them without labels.

The default first guess, ``"cross-feature"`` (``nn.guess.CrossFeatureGuess``), corrects the
interpolation of a hidden cell by what the other features say at the same step, under a Gaussian
of the training rows; a level shift or broken link in one feature then leaves a large residual
even when the model was trained for a minute. With ``pretrained=`` the shipped patch denoiser of
the imputer scores without training (``max_steps=0``) or fine-tunes, refining interpolation.

``tasks.anomaly_presets.IMDIFFUSION`` holds the released ImDiffusion settings (grating masks, random training masks,
unconditional model, min-max x 20 scaling, vote over DDPM steps) for comparison; the defaults are
what measured best on SKAB, NAB and a synthetic multivariate suite (``bench/bench_anomaly.py``). Where this departs from the
released code: thresholds and vote statistics are calibrated on held-out normal data rather than
on the test set, and the vote uses the ``x_0`` estimates rather than the noisy states.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import pandas as pd
import torch

from diffimpute._validation import check_choice, check_positive_int, check_random_state
from diffimpute.data.batch import Windows, windows_from_panel
from diffimpute.data.scaling import FeatureScaler
from diffimpute.data.schema import Schema, column_names, time_positions, to_panel
from diffimpute.diffusion.parameterisation import Prediction, check_prediction
from diffimpute.diffusion.samplers import SamplerKind
from diffimpute.diffusion.schedules import ScheduleKind
from diffimpute.engine.denoising import denoising_loss, guess_residual_scale
from diffimpute.engine.distributed import WHOLE, Shard
from diffimpute.engine.trainer import TrainConfig, TrainHistory, train
from diffimpute.masking.grating import (
    MaskKind,
    TrainMasks,
    mask_targets,
    random_point_targets,
    scoring_masks,
)
from diffimpute.nn.csdi import CSDIDenoiser
from diffimpute.nn.guess import CrossFeatureGuess, InterpolationGuess
from diffimpute.nn.patch import PatchDenoiser
from diffimpute.nn.pretrained import load_pretrained
from diffimpute.postprocess.anomaly_scores import (
    CellScore,
    Ensemble,
    FeatureReduction,
)
from diffimpute.postprocess.thresholds import (
    ScoreThreshold,
)
from diffimpute.tasks.anomaly_presets import IMDIFFUSION  # noqa: F401  (its import path before it moved)
from diffimpute.tasks.anomaly_scoring import THRESHOLDS, CalibratedScoring, as_tuple
from diffimpute.tasks.estimator import CheckpointArg, DeviceName, DiffusionEstimator, resolve_device

DetectorGuess = Literal["cross-feature", "interpolate", "none"]
ScalerKind = Literal["standard", "minmax"]
ThresholdKind = Literal["percentile", "pot", "spot"]
_MAX_WINDOW = 64  # default window cap: longer windows cost more per step than they add on CPU
_MAX_SEGMENTS = 10


# ---------------------------------------------------------------------------- estimator


class ImDiffusionDetector(CalibratedScoring, DiffusionEstimator):
    """Unsupervised anomaly detector for multivariate time series: imputed diffusion with complementary masks.

    Fit on (mostly) normal data; ``anomaly_score`` gives one score per time step (higher = more
    anomalous) and ``predict`` 0/1 flags with a label-free threshold.

    Parameters
    ----------
    window: time steps per window; default ``min(64, calibration rows, training rows / 2)``, so a
        history of a few hundred rows still runs.
    stride: step between scored windows (default ``window // 2``: each time step is scored in the
        window where it is most central). train_stride: between training windows (``window // 8``).
    masks: ``"checkerboard"`` (segment x feature, so a cell is predicted from the time around it
        and from the other features) or ``"grating"`` (whole time segments, ImDiffusion's); see
        ``masking.grating``. n_segments: segments per window, one count or several (one mask
        family each; default ``(2, min(10, window // 2))``). n_masks: complementary masks per family.
    train_masks: ``"same"`` trains on the scoring masks; ``"random"`` hides ``random_mask_ratio``
        of the cells at random (the released ImDiffusion code).
    unconditional: ImDiffusion's unconditional model (visible cells reach the network only noised
        to the current step); ``False`` is CSDI's conditional model.
    guess: (conditional only) what the diffusion refines: ``"cross-feature"`` (interpolation
        corrected by the other features at the same step, ``nn.guess.CrossFeatureGuess``),
        ``"interpolate"`` (linear interpolation of the visible cells) or ``"none"``.
    prediction: the network's target, ``"epsilon"``, ``"x0"`` or ``"v"``.
    score: per-cell evidence, ``"error"``, ``"zscore"`` or ``"crps"`` (the last two need
        ``n_samples >= 2``); standardise: z-score it per step and feature on the calibration rows.
    feature_reduction, top_k: ``"max"``, ``"sum"`` or ``"topk"`` over features.
    ensemble, vote_steps, vote_fraction: combine the ``x_0`` estimates at ``vote_steps`` (mapped to
        the nearest visited steps) by ``"mean"`` or ImDiffusion's ``"vote"``.
    smoothing: widths of centred moving averages along time, one or several, each a candidate
        score (default ``(1, 4, 16, window)``, none wider than an eighth of the calibration rows;
        ``fit`` warns when a width given leaves too few calibration rows).
    trim_percentile: ``predict`` keeps a flag only where the step's unsmoothed evidence exceeds
        this percentile of the calibration's (None: no trimming).
    scaler, value_scale: per-feature ``"standard"`` or ``"minmax"``, times ``value_scale``.
    x0_clip: clip each ``x_0`` estimate to ``x0_clip`` times the largest absolute scaled training
        value per feature (None: no clipping), so an under-trained step cannot derail a trajectory.
    channels, n_layers, n_heads, dropout, d_mask: denoiser size; ``d_mask`` embeds the mask index.
    diffusion_steps, schedule, beta_start, beta_end: the noise schedule.
    max_epochs, batch_size, learning_rate, weight_decay, patience: training (the engine's trainer,
        model selection on the denoising loss of the calibration windows).
    pretrained: None (a CSDI denoiser trained from scratch) or the name or path of pretrained
        patch-denoiser weights (``"default"`` ships with the package); needs ``guess="interpolate"``.
    max_steps: optimiser steps of training, the reproducible budget (0: use the weights as they
        are; None: epochs decide). time_budget: a cap in seconds that warns when it cuts training.
    sampler, sampling_steps, ddim_eta, n_samples: reverse diffusion while scoring.
    calibration_fraction: trailing share of the fitting rows held out for calibration.
    threshold: ``"percentile"``, ``"pot"``, ``"spot"`` or a ``ScoreThreshold``, fitted on the
        calibration scores; it never sees labels. threshold_percentile, threshold_risk,
        threshold_init_quantile: their settings.
    max_cells_per_pass: windows x masks x draws x cells per network pass while scoring; small
        passes stay in the CPU's cache (2**15 scored 3.5x faster than 2**21 on 25 features).
    device, random_state, verbose: as for ``DiffusionImputer``.
    """

    def __init__(
        self,
        *,
        window: int | None = None,
        stride: int | None = None,
        train_stride: int | None = None,
        masks: MaskKind = "checkerboard",
        n_segments: int | Sequence[int] | None = None,
        n_masks: int = 2,
        train_masks: TrainMasks = "same",
        random_mask_ratio: float = 0.7,
        unconditional: bool = False,
        guess: DetectorGuess = "cross-feature",
        prediction: Prediction = "v",
        score: CellScore = "error",
        standardise: bool = True,
        feature_reduction: FeatureReduction = "max",
        top_k: int = 3,
        ensemble: Ensemble = "mean",
        vote_steps: Sequence[int] = (0,),
        vote_fraction: float = 0.02,
        smoothing: int | Sequence[int] | None = None,
        scaler: ScalerKind = "standard",
        value_scale: float = 1.0,
        x0_clip: float | None = 1.5,
        channels: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.0,
        d_mask: int = 16,
        diffusion_steps: int = 50,
        schedule: ScheduleKind = "quad",
        beta_start: float = 1e-4,
        beta_end: float = 0.5,
        max_epochs: int = 100,
        batch_size: int = 16,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-6,
        patience: int = 10,
        pretrained: str | None = None,
        max_steps: int | None = 100,
        time_budget: float | None = 45.0,
        sampler: SamplerKind = "ddim",
        sampling_steps: int | None = 1,
        ddim_eta: float = 1.0,
        n_samples: int = 1,
        calibration_fraction: float = 0.2,
        threshold: ThresholdKind | ScoreThreshold = "percentile",
        threshold_percentile: float = 99.0,
        threshold_risk: float = 1e-3,
        threshold_init_quantile: float = 0.95,
        trim_percentile: float | None = 95.0,
        max_cells_per_pass: int = 2**15,
        device: DeviceName = "auto",
        random_state: int = 0,
        verbose: bool = True,
    ) -> None:
        self.window = window
        self.stride = stride
        self.train_stride = train_stride
        self.masks = masks
        self.n_segments = n_segments
        self.n_masks = n_masks
        self.train_masks = train_masks
        self.random_mask_ratio = random_mask_ratio
        self.unconditional = unconditional
        self.guess = guess
        self.prediction = prediction
        self.score = score
        self.standardise = standardise
        self.feature_reduction = feature_reduction
        self.top_k = top_k
        self.ensemble = ensemble
        self.vote_steps = vote_steps
        self.vote_fraction = vote_fraction
        self.smoothing = smoothing
        self.scaler = scaler
        self.value_scale = value_scale
        self.x0_clip = x0_clip
        self.channels = channels
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.d_mask = d_mask
        self.diffusion_steps = diffusion_steps
        self.schedule = schedule
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.pretrained = pretrained
        self.max_steps = max_steps
        self.time_budget = time_budget
        self.sampler = sampler
        self.sampling_steps = sampling_steps
        self.ddim_eta = ddim_eta
        self.n_samples = n_samples
        self.calibration_fraction = calibration_fraction
        self.threshold = threshold
        self.threshold_percentile = threshold_percentile
        self.threshold_risk = threshold_risk
        self.threshold_init_quantile = threshold_init_quantile
        self.trim_percentile = trim_percentile
        self.max_cells_per_pass = max_cells_per_pass
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        check_random_state(self.random_state)
        for name in ("n_masks", "top_k", "n_samples", "max_epochs", "batch_size", "patience"):
            check_positive_int(getattr(self, name), name)
        for name in ("window", "stride", "train_stride"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        for name in ("n_segments", "smoothing"):
            for value in as_tuple(getattr(self, name)) or ():
                check_positive_int(value, name)
        check_choice(self.masks, get_args(MaskKind), "masks")
        check_choice(self.train_masks, get_args(TrainMasks), "train_masks")
        check_choice(self.guess, get_args(DetectorGuess), "guess")
        check_prediction(self.prediction)
        check_choice(self.score, get_args(CellScore), "score")
        check_choice(self.feature_reduction, get_args(FeatureReduction), "feature_reduction")
        check_choice(self.ensemble, get_args(Ensemble), "ensemble")
        check_choice(self.scaler, get_args(ScalerKind), "scaler")
        if not isinstance(self.threshold, ScoreThreshold):
            check_choice(self.threshold, get_args(ThresholdKind), "threshold")
        if self.unconditional and self.guess != "none":
            raise ValueError("an unconditional model sees no clean value to guess from; pass guess='none'")
        if self.score != "error" and self.n_samples < 2:
            raise ValueError(f"score={self.score!r} needs the spread of several draws; pass n_samples >= 2")
        steps = list(self.vote_steps)
        if not steps or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in steps):
            raise ValueError(f"vote_steps must be a non-empty sequence of integers, got {self.vote_steps!r}")
        if min(steps) < 0 or max(steps) >= self.diffusion_steps:
            raise ValueError(f"vote_steps must lie in [0, diffusion_steps={self.diffusion_steps}), got {steps}")
        if not 0 < self.vote_fraction < 1:
            raise ValueError(f"vote_fraction must be between 0 and 1 (exclusive), got {self.vote_fraction!r}")
        if self.trim_percentile is not None and not 0 <= self.trim_percentile < 100:
            raise ValueError(f"trim_percentile must be in [0, 100) or None, got {self.trim_percentile!r}")
        if not 0 <= self.calibration_fraction < 1:
            raise ValueError(f"calibration_fraction must be in [0, 1), got {self.calibration_fraction!r}")
        if not self.value_scale > 0:
            raise ValueError(f"value_scale must be > 0, got {self.value_scale!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int | np.integer) or self.max_steps < 0):
            raise ValueError(f"max_steps must be a whole number >= 0 or None, got {self.max_steps!r}")
        if self.pretrained is not None:
            self._check_pretrained()
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget must be > 0 seconds or None, got {self.time_budget!r}")

    def _check_pretrained(self) -> None:
        """The pretrained denoiser is conditional, refines interpolation, and fixes the diffusion."""
        if self.unconditional or self.guess != "interpolate" or self.train_masks != "same":
            raise ValueError("the pretrained denoiser is conditional, refines interpolation and trains on the scoring "
                             "masks; pass unconditional=False, guess='interpolate', train_masks='same' or pretrained=None")
        load_pretrained(self.pretrained).check_fits(self)

    def _panel(self, X: pd.DataFrame | np.ndarray, name: str = "X") -> np.ndarray:
        panel = to_panel(X, name)
        if np.isnan(panel).any():
            bad = np.isnan(panel).reshape(-1, panel.shape[-1]).any(axis=0)
            columns = [c for c, flag in zip(column_names(X), bad) if flag]
            raise ValueError(
                f"{name} has missing values in columns {columns}; the detector scores complete data, "
                "so fill them first (e.g. with DiffusionImputer or df.interpolate())"
            )
        return panel

    def _sizes(self, n_time: int) -> tuple[int, int]:
        """``(window, calibration rows)`` for ``n_time`` fitting rows, with a clear error when too short."""
        n_cal = int(round(n_time * self.calibration_fraction))
        fit_rows = n_time - n_cal
        window = self.window or min(_MAX_WINDOW, n_cal or fit_rows, fit_rows // 2)
        smallest = 2 * self.n_masks
        if window < smallest or (n_cal and n_cal < window) or fit_rows < window:
            raise ValueError(
                f"with {n_time} rows, calibration_fraction={self.calibration_fraction} leaves {fit_rows} rows to "
                f"train on and {n_cal} to calibrate on; a window of {max(window, smallest)} needs at least that "
                "many in each: pass more rows, a smaller window or calibration_fraction=0"
            )
        return window, n_cal

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame | np.ndarray, y: None = None, *, checkpoint: CheckpointArg = None,
            resume: bool = False) -> ImDiffusionDetector:
        """Train on ``X`` (rows are time, columns features; mostly normal data) and calibrate.

        The last ``calibration_fraction`` of the rows are not trained on; their scores fix the
        standardisation, the step statistics and the threshold. ``y`` is ignored (unsupervised).
        ``checkpoint``, ``resume``: save training progress to a file and continue an interrupted
        fit from it, as in ``DiffusionImputer.fit``.
        """
        self._check_params()
        self._start_fit(X)
        plan = self._checkpointing(checkpoint, resume)
        panel = self._panel(X)
        n_time = panel.shape[1]
        self.window_, n_cal = self._sizes(n_time)
        self.stride_ = min(self.stride or max(1, self.window_ // 2), self.window_)
        short = max(self.n_masks, min(_MAX_SEGMENTS, self.window_ // 2))
        self.n_segments_ = as_tuple(self.n_segments) or tuple(sorted({self.n_masks, short}))
        self._masks()  # validates the segment counts against the window
        device = resolve_device(self.device)
        self.schema_ = Schema.of(X)
        positions = time_positions(X)
        train_panel, cal_panel = (panel[:, : n_time - n_cal], panel[:, n_time - n_cal :]) if n_cal else (panel, panel)
        self.scaler_ = (FeatureScaler().fit if self.scaler == "standard" else FeatureScaler.fit_min_max)(train_panel)
        self.value_bound_ = np.abs(self._scale(train_panel)).reshape(-1, panel.shape[-1]).max(axis=0)
        train_stride = self.train_stride or max(1, self.window_ // 8)
        train_windows, _ = windows_from_panel(self._scale(train_panel), positions[: train_panel.shape[1]],
                                              self.window_, train_stride)
        self.calibration_panel_ = self._scale(cal_panel)
        self.calibration_positions_ = positions[n_time - n_cal :] if n_cal else positions
        check_windows, _ = windows_from_panel(self.calibration_panel_, self.calibration_positions_,
                                              self.window_, self.stride_)
        with self._seeded(device):
            self.model_ = self._build_model()
            if self.guess != "none":
                generator = torch.Generator().manual_seed(self.seed_)
                batch = train_windows[torch.randperm(len(train_windows), generator=generator)[:512]]
                target, _ = mask_targets(self._masks(), len(batch), generator)
                if self.guess == "cross-feature":
                    self.model_.guess.fit(batch.values, target, batch.positions)
                self.model_.residual_scale.copy_(guess_residual_scale(self.model_, batch, target))
            self.history_ = train(
                self.model_, self._loss_fn(), train_windows, self._train_config(),
                validate=lambda model: self._check_loss(model, check_windows, device),
                seed=self.seed_, device=device, progress=self.verbose, desc="training detector",
                checkpoint=plan, resume=resume,
            )
        self.model_.eval()
        self._calibrate()
        width = max(self._widths())
        if width > 1 and self.calibration_panel_.shape[1] < 2 * width:
            warnings.warn(
                f"only {self.calibration_panel_.shape[1]} calibration rows for a smoothing width of {width}: "
                "the threshold rests on about one independent smoothed score; pass smaller smoothing widths "
                "or fit on more rows",
                stacklevel=2,
            )
        return self

    def _scale(self, panel: np.ndarray) -> np.ndarray:
        return self.scaler_.transform(panel) * self.value_scale

    def _masks(self) -> torch.Tensor:
        """Every family's complementary masks, stacked ``(families x n_masks, features, window)``."""
        return torch.cat([scoring_masks(self.masks, self.n_features_in_, self.window_, n, self.n_masks)
                          for n in self.n_segments_])

    def _build_model(self) -> CSDIDenoiser | PatchDenoiser:
        if self.pretrained is not None:
            return load_pretrained(self.pretrained).build(self.n_features_in_)
        guesses = {"cross-feature": lambda: CrossFeatureGuess(self.n_features_in_, self.window_),
                   "interpolate": InterpolationGuess, "none": lambda: None}
        return CSDIDenoiser(
            self.n_features_in_, channels=self.channels, n_layers=self.n_layers, n_heads=self.n_heads,
            dropout=self.dropout, guess=guesses[self.guess](),
            n_mask_ids=len(self.n_segments_) * self.n_masks + 1,  # scoring masks, plus one for random masks
            d_mask=self.d_mask,
        )

    def _train_config(self) -> TrainConfig:
        return TrainConfig(max_epochs=self.max_epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           weight_decay=self.weight_decay, patience=self.patience, time_budget=self.time_budget,
                           max_steps=self.max_steps)

    def _mask_index(self, index: torch.Tensor) -> torch.Tensor | None:
        """Which mask hides each window, for a denoiser that embeds it (the pretrained one does not)."""
        return None if self.pretrained is not None else index

    def _loss_fn(self):
        """Denoising loss on the scoring masks, or on random cells (the last mask index)."""
        schedule, masks = self._noise_schedule(), self._masks()

        def loss_fn(model: CSDIDenoiser, batch: Windows, generator: torch.Generator, shard: Shard = WHOLE) -> torch.Tensor:
            if self.train_masks == "same":
                target, index = mask_targets(masks, len(batch), generator)
            else:
                target = random_point_targets(tuple(batch.values.shape), self.random_mask_ratio, generator)
                index = torch.full((len(batch),), len(masks), dtype=torch.long, device=target.device)
            batch = dataclasses.replace(batch, mask_index=self._mask_index(index))
            return denoising_loss(model, schedule, batch, ~target, target, generator, self.prediction,
                                  unconditional=self.unconditional, shard=shard)

        return loss_fn

    def _check_loss(self, model: CSDIDenoiser, windows: Windows, device: torch.device) -> float:
        """Denoising loss on the calibration windows with fixed noise: the model-selection score."""
        generator = torch.Generator(device=device).manual_seed(self.seed_)
        loss_fn, total = self._loss_fn(), 0.0
        for start in range(0, len(windows), 256):
            chunk = windows[slice(start, start + 256)].to(device)
            total += float(loss_fn(model, chunk, generator)) * len(chunk)
        return total / len(windows)

    # ------------------------------------------------------------------ persistence
    def _json_params(self) -> dict:
        params = super()._json_params()
        params["vote_steps"] = [int(s) for s in self.vote_steps]
        if isinstance(self.threshold, ScoreThreshold):
            kind = {cls: name for name, cls in THRESHOLDS.items()}.get(type(self.threshold))
            if kind is None:
                raise ValueError(
                    f"cannot save a custom threshold {type(self.threshold).__name__}; use one of {sorted(THRESHOLDS)}"
                )
            params["threshold"] = {"kind": kind, "params": self.threshold.get_params()}
        return params

    @classmethod
    def _params_from_json(cls, params: dict) -> dict:
        params["vote_steps"] = tuple(params["vote_steps"])
        for name in ("n_segments", "smoothing"):  # JSON turns tuples into lists
            if isinstance(params[name], list):
                params[name] = tuple(params[name])
        if isinstance(params["threshold"], dict):
            params["threshold"] = THRESHOLDS[params["threshold"]["kind"]](**params["threshold"]["params"])
        return params

    def _state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        state = {
            "schema": self.schema_.to_dict(),
            "scaler": self.scaler_.to_dict(),
            "n_features": self.n_features_in_,
            "sizes": {"window": self.window_, "stride": self.stride_, "n_segments": list(self.n_segments_)},
            "cells_key": list(self.cells_key_),
            "history": self.history_.to_dict(),
        }
        tensors = {
            "calibration.panel": torch.from_numpy(self.calibration_panel_),
            "calibration.positions": torch.from_numpy(np.asarray(self.calibration_positions_, dtype=np.float64)),
            "cells": torch.from_numpy(self.calibration_cells_),
            "value_bound": torch.from_numpy(np.asarray(self.value_bound_, dtype=np.float64)),
        }
        return state, tensors

    def _user_data(self) -> dict[str, str]:
        return {"calibration.": f"the last {self.calibration_cells_.shape[3]} rows of the training data (the calibration rows, scaled) and "
                                "their time positions; without them the scores' settings cannot be changed after loading"}

    def _restore(self, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.schema_ = Schema.from_dict(metadata["schema"])
        self.scaler_ = FeatureScaler.from_dict(metadata["scaler"])
        self.n_features_in_ = int(metadata["n_features"])
        sizes = metadata["sizes"]
        self.window_, self.stride_, self.n_segments_ = sizes["window"], sizes["stride"], tuple(sizes["n_segments"])
        self.history_ = TrainHistory(**metadata["history"])
        stored = "calibration.panel" in tensors  # not when saved with include_data=False
        self.calibration_panel_ = tensors["calibration.panel"].numpy() if stored else None
        self.calibration_positions_ = tensors["calibration.positions"].numpy() if stored else None
        self.calibration_cells_ = tensors["cells"].numpy()
        self.value_bound_ = tensors["value_bound"].numpy()
        key = metadata["cells_key"]
        self.cells_key_ = tuple(key[:-1]) + (tuple(key[-1]),)
        self.model_ = self._build_model()
