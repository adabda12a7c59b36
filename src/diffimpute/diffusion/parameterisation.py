"""What the network predicts: the clean signal (``x0``), the noise (``epsilon``) or the velocity (``v``).

The three are linear in one another given ``x_t`` and the step, so the samplers work with one of
them (the noise) and the prediction type is a setting, not a new sampler. ``x0`` prediction with a
zero-initialised output layer makes an untrained model predict a zero residual at every step, so
its samples start exactly at the first guess; CSDI predicts the noise.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from diffimpute._validation import check_choice

Prediction = Literal["x0", "epsilon", "v"]


def check_prediction(prediction: str) -> None:
    check_choice(prediction, get_args(Prediction), "prediction")


def training_target(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor, prediction: Prediction) -> torch.Tensor:
    """What the network should output for ``x_t = sqrt(abar) x0 + sqrt(1 - abar) noise``.

    ``alpha_bar`` broadcasts against ``x0`` (one value per row).
    """
    if prediction == "x0":
        return x0
    if prediction == "epsilon":
        return noise
    return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0


def to_epsilon(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, prediction: Prediction) -> torch.Tensor:
    """The noise implied by the network's ``output`` at state ``x_t`` (what the samplers step on)."""
    if prediction == "epsilon":
        return output
    if prediction == "x0":
        return (x_t - alpha_bar.sqrt() * output) / (1 - alpha_bar).sqrt()
    return (1 - alpha_bar).sqrt() * x_t + alpha_bar.sqrt() * output
