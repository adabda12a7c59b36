"""ImageInpainter: fill missing pixels of small images with a diffusion model, and say how sure it is.

The same recipe and engine as the series and table imputers (``tasks.refiner``), with an image as
one window ``(channels, height * width)`` (``data.images``):

1. A first guess of every missing pixel from the given ones: the average of the most similar
   training images (``nn.neighbours``, KNN imputation), a harmonic fill (``nn.harmonic``, each
   pixel the average of its neighbours, given pixels fixed), whichever of the two is better on
   held-out pixels (``guess="auto"``, the default), or none.
2. A diffusion model over the residual from the guess: a small 2-D UNet (``nn.unet``) that sees
   the given pixels (clean, CSDI-style conditioning) or, with ``conditioning="repaint"``, sees
   them only forward-noised to each step (RePaint's conditioning, without its resampling loop).
3. Model selection by MAE on pixels held out from training, and split-conformal calibration of
   the draws' spread on them, so the 90 % interval covers about 90 % of held-out pixels. A model
   that does not beat its guess returns the guess, with draws scaled by the guess's own local
   error (``tasks.image_intervals``): wide on busy texture, narrow on flat, on any image set, and
   fitted on fresh scattered and rectangular holes in the held-out images, so that they hold for both.

Training targets hide scattered pixels or one rectangle per image (``masking.image``).
"""

from __future__ import annotations

import time
from typing import Literal, get_args

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from diffimpute._validation import check_choice, check_positive_int
from diffimpute.data.batch import Windows
from diffimpute.data.images import ImageLayout, check_images, from_windows, to_windows
from diffimpute.data.scaling import FeatureScaler
from diffimpute.diffusion.parameterisation import Prediction
from diffimpute.diffusion.samplers import SamplerKind
from diffimpute.diffusion.schedules import ScheduleKind
from diffimpute.engine.trainer import TrainHistory
from diffimpute.masking.image import image_targets
from diffimpute.nn.harmonic import HarmonicGuess
from diffimpute.nn.neighbours import NeighbourGuess
from diffimpute.nn.unet import UNetDenoiser
from diffimpute.tasks.estimator import _PREFIX, CheckpointArg, DeviceName, resolve_device
from diffimpute.tasks.held_out import HeldOut
from diffimpute.tasks.image_intervals import GuessIntervals
from diffimpute.tasks.refiner import GuessRefiner
from diffimpute.tasks.result import ImageInpaintingResult

Conditioning = Literal["conditional", "repaint"]
ImageGuessKind = Literal["auto", "harmonic", "neighbours", "none"]
_MIN_HELD_IMAGES = 8  # held-out images for selection and calibration, when there are that many
_MAX_DONOR_CELLS = 2**22  # values in the neighbour guess's bank (16 MB): all 8 x 8 digits, 340 RGB 64 x 64 images
_NEIGHBOURS = (1, 3, 5, 10, 20)  # candidates for the neighbour guess's k
# Held-out holes are typical ones: 10-60 % of scattered pixels or a rectangle up to half the sides
# (training's full range, up to nearly empty images, chose a k for the neighbour guess too large).
_HELD_OUT_RATES, _HELD_OUT_LARGEST = (0.1, 0.6), 0.5


class ImageInpainter(TransformerMixin, GuessIntervals, GuessRefiner, auto_wrap_output_keys=None):
    """Fill the missing pixels (NaN) of small grey or colour images and give per-pixel uncertainty.

    Images are a NumPy array ``(n, height, width)`` or ``(n, height, width, channels)`` (channels
    last, at most 4), at least 4 x 4; up to about 64 x 64 trains in minutes on a laptop CPU. All
    images share one size. ``transform`` returns the median of the draws in the same shape, with
    observed pixels bit-identical; ``impute`` returns the draws (``ImageInpaintingResult``).

    Parameters
    ----------
    conditioning: ``"conditional"`` (default: the network sees the given pixels clean, as CSDI)
        or ``"repaint"`` (only forward-noised to the current step, as RePaint without its
        resampling loop; needs ``guess="none"``: a guess of the given pixels would be clean).
    guess: the first estimate the diffusion refines: ``"neighbours"`` (the average of the ``k``
        training images nearest on the given pixels, ``k`` chosen on held-out pixels; up
        to 4 million values of training images travel in the model file), ``"harmonic"`` (each
        missing pixel the average of its four neighbours: a smooth interpolation, 0.84-0.86 x the
        MSE of linear interpolation at 50 % hidden on digits and photo patches), ``"auto"``
        (whichever of the two has the lower MSE on the held-out pixels, measured inside ``fit``:
        neighbours where images repeat a few shapes, the harmonic fill on photos; the harmonic
        fill when ``validation_fraction`` is 0; the default: on test images at 50 % hidden it gave
        0.85 x linear interpolation's MSE on photo patches, where the neighbour guess alone gave
        6 x on validation patches, and 0.21 x on digits) or ``"none"``. ``guess_`` is the one in use and
        ``guess_scores_`` the candidates' held-out MSE in standardised units.
    channels, n_levels, n_layers, attention, n_heads, dropout: the UNet (``nn.unet``): width of
        its first level, resolutions, residual blocks per level, self-attention with ``n_heads``
        heads at the lowest resolution.
    prediction, diffusion_steps, schedule, beta_start, beta_end, sampler, sampling_steps,
        ddim_eta: as for ``DiffusionImputer``.
    max_steps: optimiser steps of training, the budget that makes a seed reproduce its model.
        validate_every: steps between held-out checks (None: ``max_steps // 12``).
    max_epochs, batch_size, learning_rate, weight_decay, patience, ema_decay, time_budget:
        training on the engine's loop; ``time_budget`` caps training seconds (None: no cap); a fit
        it cuts short depends on the machine's speed and warns so.
    validation_fraction: share of the images (at least 8, when there are) on which pixels are held
        out from training for model selection, calibration and ``validation_`` (0 turns all three
        off): per image 10-60 % of its pixels at random, or a rectangle up to half its height and width.
    n_samples: draws per missing pixel for ``transform`` (and ``impute`` unless given).
    calibrate: scale the draws' spread so that the 90 % interval covers 90 % of held-out pixels.
    clip_margin: draws (and each sampling step's clean estimate) stay within each channel's
        observed range widened by this share of it on both sides (0: the observed range, where
        pixel values of real images lie); None: no limit.
    max_cells_per_pass, device, random_state, verbose: as for ``DiffusionImputer``.

    An image with no observed pixel at ``fit`` teaches nothing and is skipped; at ``transform``
    it is drawn from the learned distribution of images alone. After ``fit``: ``history_``,
    ``validation_`` (held-out MAE, CRPS and 90 % coverage in standardised units, and the MAE of
    the guess alone), ``refines_`` (False when the model did not beat its guess, which is then
    returned with calibrated draws around it, scaled by the guess's local error; ``spread_floor_``
    is the least such scale).
    """

    check_draws_against_guess = True  # the median of the draws is what users get; keep the guess if it is better

    def __init__(
        self,
        *,
        conditioning: Conditioning = "conditional",
        guess: ImageGuessKind = "auto",
        channels: int = 32,
        n_levels: int = 2,
        n_layers: int = 1,
        attention: bool = False,
        n_heads: int = 4,
        dropout: float = 0.0,
        prediction: Prediction = "v",
        diffusion_steps: int = 50,
        schedule: ScheduleKind = "quad",
        beta_start: float = 1e-4,
        beta_end: float = 0.5,
        max_steps: int = 1000,
        validate_every: int | None = None,
        max_epochs: int = 1000,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-6,
        patience: int = 10,
        ema_decay: float | None = None,
        time_budget: float | None = 240.0,
        validation_fraction: float = 0.1,
        n_samples: int = 30,
        sampler: SamplerKind = "ddim",
        sampling_steps: int | None = None,
        ddim_eta: float = 1.0,
        calibrate: bool = True,
        clip_margin: float | None = 0.0,
        max_cells_per_pass: int = 2**15,
        device: DeviceName = "auto",
        random_state: int = 0,
        verbose: bool = True,
    ) -> None:
        self.conditioning = conditioning
        self.guess = guess
        self.channels = channels
        self.n_levels = n_levels
        self.n_layers = n_layers
        self.attention = attention
        self.n_heads = n_heads
        self.dropout = dropout
        self.prediction = prediction
        self.diffusion_steps = diffusion_steps
        self.schedule = schedule
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.max_steps = max_steps
        self.validate_every = validate_every
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
        self.clip_margin = clip_margin
        self.max_cells_per_pass = max_cells_per_pass
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameter checks
    def _check_params(self) -> None:
        self._check_refiner_params()
        check_choice(self.conditioning, get_args(Conditioning), "conditioning")
        check_choice(self.guess, get_args(ImageGuessKind), "guess")
        check_positive_int(self.n_levels, "n_levels")
        check_positive_int(self.max_steps, "max_steps")
        if self.validate_every is not None:
            check_positive_int(self.validate_every, "validate_every")
        if self.conditioning == "repaint" and self.guess != "none":
            raise ValueError("conditioning='repaint' shows the network no clean pixel, so there is nothing to "
                             "guess from; pass guess='none' with it")

    # ------------------------------------------------------------------ what the refiner needs
    def _n_channels(self) -> int:
        return self.layout_.channels

    def _window_length(self) -> int:
        return self.layout_.pixels

    def _unconditional(self) -> bool:
        return self.conditioning == "repaint"

    def _step_budget(self) -> tuple[int, int]:
        return self.max_steps, self.validate_every or max(1, self.max_steps // 12)

    def _training_targets(self, observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return image_targets(observed, self.layout_.height, self.layout_.width, generator)

    def _random_targets(self, observed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self._training_targets(observed, generator)

    def _build_model(self, prior: NeighbourGuess | None = None) -> UNetDenoiser:
        """The UNet around its guess; ``prior`` is the neighbour guess with its bank filled (empty
        when rebuilding a saved model, whose bank is then loaded with the weights)."""
        layout = self.layout_
        guess = None
        if self.guess_ == "harmonic":
            guess = HarmonicGuess(layout.height, layout.width)
        elif self.guess_ == "neighbours":
            guess = prior if prior is not None else NeighbourGuess(self.n_donors_, layout.channels, layout.height,
                                                                   layout.width)
        return UNetDenoiser(layout.channels, layout.height, layout.width, channels=self.channels,
                            n_levels=self.n_levels, n_blocks=self.n_layers, attention=self.attention,
                            n_heads=self.n_heads, dropout=self.dropout, guess=guess)

    def set_output(self, *, transform: str | None = None) -> ImageInpainter:
        """Images stay arrays: ``transform="pandas"`` is refused rather than failing at ``transform``."""
        if transform not in (None, "default"):
            raise ValueError(f"ImageInpainter returns images as NumPy arrays; set_output(transform={transform!r}) "
                             "is not supported (only 'default')")
        return self

    # ------------------------------------------------------------------ fitting
    def fit(self, X: np.ndarray, y: None = None, *, checkpoint: CheckpointArg = None,
            resume: bool = False) -> ImageInpainter:
        """Learn to inpaint from the observed pixels of the images ``X``; returns ``self``.

        ``checkpoint``, ``resume``: save training progress to a file and continue an interrupted
        fit from it, as in ``DiffusionImputer.fit``."""
        started = time.perf_counter()
        self._check_params()
        images = check_images(X)
        _, height, width, channels = images.shape
        self._start_fit(X, n_features=height * width * channels)
        plan = self._checkpointing(checkpoint, resume)
        flat = images.reshape(-1, channels)
        empty = np.isnan(flat).all(axis=0)
        if empty.any():
            which = "every value is" if empty.all() else f"channel(s) {np.flatnonzero(empty).tolist()} are"
            raise ValueError(f"X has no observed pixel to learn from: {which} NaN; pass images with observed pixels")
        self.layout_ = ImageLayout(height, width, channels)
        self.scaler_ = FeatureScaler().fit(flat)
        scaled = self.scaler_.transform(images)
        self.observed_range_ = (np.nanmin(scaled.reshape(-1, channels), axis=0),
                                np.nanmax(scaled.reshape(-1, channels), axis=0))
        train_windows, held, donors = self._split(to_windows(scaled))
        self.guess_ = "neighbours" if self.guess == "auto" and held is not None else self.guess
        if self.guess_ == "auto":  # nothing held out to measure the candidates on: the one that keeps no images
            self.guess_ = "harmonic"
        bank = self._bank(donors) if self.guess_ == "neighbours" else None
        self.spread_floor_ = None  # set where the guess's draws are calibrated
        self._train_refiner(train_windows, held, resolve_device(self.device), start=bank, checkpoint=plan,
                            resume=resume)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _split(self, windows: Windows) -> tuple[Windows, HeldOut | None, Windows]:
        """Training windows, held-out pixels (typical holes, see ``validation_fraction``) on some of
        the images, and the other images (donors for the neighbour guess, which would otherwise
        find a held-out image's own copy). Images with no observed pixel are dropped."""
        has_pixels = torch.from_numpy(np.flatnonzero(windows.observed.flatten(1).any(dim=1).numpy()))
        windows = windows[has_pixels]
        if not self.validation_fraction:
            return windows, None, windows
        generator = torch.Generator().manual_seed(self.seed_)
        n_held = min(len(windows), max(_MIN_HELD_IMAGES, round(self.validation_fraction * len(windows))))
        rows = torch.randperm(len(windows), generator=generator)[:n_held]
        target = image_targets(windows.observed[rows], self.layout_.height, self.layout_.width, generator,
                               rates=_HELD_OUT_RATES, largest=_HELD_OUT_LARGEST)
        keep = rows[target.flatten(1).any(dim=1)]
        target = target[target.flatten(1).any(dim=1)]
        if len(keep) == 0:
            return windows, None, windows
        observed = windows.observed.clone()
        observed[keep] &= ~target
        train = Windows(values=torch.where(observed, windows.values, 0.0), observed=observed,
                        positions=windows.positions)
        others = torch.ones(len(windows), dtype=torch.bool)
        others[keep] = False
        return train, HeldOut(windows[keep], target), windows[others]

    def _bank(self, donors: Windows) -> NeighbourGuess:
        """The neighbour guess with a random sample of ``donors`` (at most 4 million values) as its bank."""
        layout = self.layout_
        self.n_donors_ = min(len(donors), max(1, _MAX_DONOR_CELLS // (layout.channels * layout.pixels)))
        order = torch.randperm(len(donors), generator=torch.Generator().manual_seed(self.seed_))
        chosen = donors[order[: self.n_donors_]]
        bank = NeighbourGuess(self.n_donors_, layout.channels, layout.height, layout.width)
        return bank.fit(chosen.values, chosen.observed)

    def _fit_guess(self, train_windows: Windows, held: HeldOut | None) -> None:
        """Choose by squared error on the picked held-out pixels the neighbour guess's ``k`` and, with
        ``guess="auto"``, the neighbour guess or the harmonic fill (``guess_scores_``: their MSE)."""
        guess = self.model_.guess
        self.guess_scores_ = {}
        if not isinstance(guess, NeighbourGuess) or held is None:
            return
        guess.eval()
        errors = {}
        for k in _NEIGHBOURS:
            guess.k.fill_(k)
            errors[k] = self._guess_error(held)
        guess.k.fill_(min(errors, key=errors.get))
        guess.train()
        self.guess_scores_ = {"neighbours": min(errors.values())}
        if self.guess != "auto":
            return
        self.model_.guess = HarmonicGuess(self.layout_.height, self.layout_.width)
        self.guess_scores_["harmonic"] = self._guess_error(held)
        if self.guess_scores_["harmonic"] <= self.guess_scores_["neighbours"]:
            self.guess_, self.n_donors_ = "harmonic", 0
        else:
            self.model_.guess = guess

    def _guess_error(self, held: HeldOut) -> float:
        """Mean squared error of the model's current guess at the picked held-out pixels."""
        estimate = self._guess_of(held.windows, held.cond_mask, torch.device("cpu"))
        return float(((estimate - held.windows.values)[held.picked] ** 2).mean())

    # ------------------------------------------------------------------ imputing
    def transform(self, X: np.ndarray) -> np.ndarray:
        """The median of ``n_samples`` draws in the shape of ``X``, observed pixels unchanged."""
        return self.impute(X).median()

    def impute(self, X: np.ndarray, n_samples: int | None = None, *, seed: int | None = None) -> ImageInpaintingResult:
        """Draw ``n_samples`` completions of every image; observed pixels are kept exactly in every draw."""
        check_is_fitted(self, "model_")
        n_samples = check_positive_int(self.n_samples if n_samples is None else n_samples, "n_samples")
        images = check_images(X)
        self.layout_.check_matches(images)
        missing = np.isnan(images)
        samples = np.broadcast_to(images, (n_samples, *images.shape)).copy()
        guess = None
        if missing.any():
            draws, guesses = self._draw_windows(to_windows(self.scaler_.transform(images)), n_samples, seed,
                                                unit="image")
            values = self._clip(self.scaler_.inverse_transform(from_windows(draws, self.layout_)))
            samples[:, missing] = values[:, missing]
            if guesses is not None:
                filled = self._clip(self.scaler_.inverse_transform(from_windows(guesses, self.layout_)))
                guess = np.where(missing, filled, images).reshape(np.shape(X))
        elif self.guess != "none":
            guess = images.reshape(np.shape(X))
        data = np.asarray(X)
        if guess is not None and np.issubdtype(data.dtype, np.floating):
            guess = guess.astype(data.dtype)
        return ImageInpaintingResult(samples=samples.reshape(n_samples, *data.shape), missing=missing.reshape(data.shape),
                                     data=data, guess=guess)

    def _clip(self, images: np.ndarray) -> np.ndarray:
        """Keep values ``(..., channels)`` in each channel's observed range widened by ``clip_margin``."""
        if self.clip_margin is None:
            return images
        low, high = (self.scaler_.inverse_transform(bound) for bound in self.observed_range_)
        margin = self.clip_margin * (high - low)
        return np.clip(images, low - margin, high + margin)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {
            "layout": self.layout_.to_dict(),
            "guess": self.guess_,
            "guess_scores": self.guess_scores_,
            "n_donors": getattr(self, "n_donors_", 0),
            "scaler": self.scaler_.to_dict(),
            "observed_range": [r.tolist() for r in self.observed_range_],
            "interval_scale": self.interval_scale_.tolist(),
            "refines": self.refines_,
            "guess_channels": self.guess_channels_.tolist(),
            "residual_quantiles": None if self.residual_quantiles_ is None else self.residual_quantiles_.tolist(),
            "spread_floor": self.spread_floor_,
            "hole_bins": True,
            "validation": self.validation_,
            "history": self.history_.to_dict(),
        }, {}

    def _user_data(self) -> dict[str, str]:
        if self.guess_ != "neighbours":
            return {}
        return {f"{_PREFIX}guess.donor": f"the observed pixels of {self.n_donors_} training images (the donors)"}

    def _without_user_data(self) -> None:
        raise ValueError("the neighbour guess imputes from its donor images, so this model cannot be saved without "
                         "them; fit with guess='harmonic' or 'none' for a model that holds no training images")

    def _restore(self, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.layout_ = ImageLayout.from_dict(metadata["layout"])
        self.guess_ = metadata.get("guess", self.guess)  # files saved before guess="auto" existed
        self.guess_scores_ = metadata.get("guess_scores", {})
        if self.guess_ == "neighbours":
            self.n_donors_ = int(metadata["n_donors"])
        self.scaler_ = FeatureScaler.from_dict(metadata["scaler"])
        self.observed_range_ = tuple(np.asarray(r, dtype=np.float64) for r in metadata["observed_range"])
        self.interval_scale_ = np.asarray(metadata["interval_scale"], dtype=np.float64)
        self.refines_ = bool(metadata["refines"])
        self.guess_channels_ = np.asarray(metadata["guess_channels"], dtype=bool)
        quantiles = metadata["residual_quantiles"]
        self.residual_quantiles_ = None if quantiles is None else np.asarray(quantiles, dtype=np.float64)
        self.spread_floor_ = metadata.get("spread_floor")
        if self.spread_floor_ is not None and not metadata.get("hole_bins"):  # rows were distances 1, 2, 3-4, farther
            self.residual_quantiles_ = self.residual_quantiles_[:, [0, 0, 1, 2, 3]]
        self.validation_ = metadata["validation"]
        self.history_ = TrainHistory(**metadata["history"])
        self.model_ = self._build_model()
