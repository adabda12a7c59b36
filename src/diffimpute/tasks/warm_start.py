"""Where a series imputer's network starts: the shipped pretrained weights, or random ones.

``DiffusionImputer`` inherits this from ``WarmStartRefiner``: what ``pretrained``, ``max_steps``
and ``validate_every`` mean, the checks that the diffusion settings fit the weights, the budgets
and learning rates of fine-tuning and of training from scratch, and how the model is judged
against its guess when it was pretrained elsewhere.
"""

from __future__ import annotations

import numpy as np
import torch

from diffimpute._validation import check_positive_int
from diffimpute.nn.pretrained import PretrainedWeights, load_pretrained
from diffimpute.tasks.held_out import HeldOut
from diffimpute.tasks.refiner import GuessRefiner

FINE_TUNE_STEPS = 300
SCRATCH_STEPS = 1000
FINE_TUNE_LEARNING_RATE = 3e-4
SCRATCH_LEARNING_RATE = 3e-3
ZERO_SHOT_VALIDATION_FRACTION = 0.2


class WarmStartRefiner(GuessRefiner):
    """A guess refiner whose network may start from pretrained weights (``pretrained``) and
    trains for a budget of steps (``max_steps``, ``validate_every``); fitted ``pretrained_``."""

    @classmethod
    def from_pretrained(cls, name: str = "default", **params) -> WarmStartRefiner:
        """An imputer that imputes with the pretrained weights ``name`` and no training at all.

        ``transform`` and ``impute`` work without ``fit``: each call first adapts to the data it
        is given, without changing a weight: it learns the columns, a per-column scaler and each
        feature's domain, then hides ``validation_fraction`` of the observed cells (scattered
        points, runs in one feature and outages across features, as ``fit`` does), imputes them
        from the rest, keeps linear interpolation in the features where the model's median does
        not beat it on those cells, and fits the draws' spread so that 90 % intervals cover 90 %
        of them. ``fit(X)`` does the same once, for imputing other data like ``X`` later. Other
        keyword arguments are the constructor's (``max_steps`` is 0; ``validation_fraction``
        defaults to 0.2: with no training to spare cells for, calibration takes more of them,
        which on the demo's data brought 90 % coverage from 0.79 to 0.87).
        """
        params.setdefault("validation_fraction", ZERO_SHOT_VALIDATION_FRACTION)
        return cls(pretrained=name, max_steps=0, **params)

    def _check_start_params(self) -> None:
        """Budgets, learning rate, and that the diffusion settings and window fit the weights."""
        if self.max_steps is not None and (not isinstance(self.max_steps, int | np.integer) or self.max_steps < 0):
            raise ValueError(f"max_steps must be a whole number >= 0 or None, got {self.max_steps!r}")
        if self.validate_every is not None:
            check_positive_int(self.validate_every, "validate_every")
        if self.learning_rate is not None and not self.learning_rate >= 0:
            raise ValueError(f"learning_rate must be >= 0 or None, got {self.learning_rate!r}")
        weights = self._weights()
        if weights is not None:
            weights.check_fits(self)

    def _weights(self) -> PretrainedWeights | None:
        """The pretrained weights this imputer starts from; None from scratch (``pretrained=None``,
        or ``"default"`` with a guess other than interpolation, which those weights refine)."""
        if self.pretrained is None or (self.pretrained == "default" and self.guess != "interpolate"):
            return None
        if self.guess != "interpolate":
            raise ValueError(f"pretrained weights refine linear interpolation; guess={self.guess!r} needs "
                             "pretrained=None (training from scratch)")
        return load_pretrained(self.pretrained)

    @property
    def check_draws_against_guess(self) -> bool:
        """With pretrained weights, model or guess is chosen per feature on the median of draws
        (``GuessRefiner._choose_channels``): a model pretrained on other data may help some
        features and not others, and one deterministic draw (``_beats_guess``) would judge it
        by its spread rather than by what ``transform`` returns."""
        return bool(getattr(self, "pretrained_", False))

    def _beats_guess(self, held: HeldOut | None, device: torch.device) -> bool:
        if self.check_draws_against_guess:
            return True  # judged feature by feature on the median of draws instead
        return super()._beats_guess(held, device)

    def _learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return FINE_TUNE_LEARNING_RATE if self.pretrained_ else SCRATCH_LEARNING_RATE

    def _step_budget(self) -> tuple[int, int]:
        steps = self.max_steps
        if steps is None:
            steps = FINE_TUNE_STEPS if self.pretrained_ else SCRATCH_STEPS
        return steps, self.validate_every or max(1, steps // 12)

