"""Categorical columns of ``TabularImputer``: levels from draws, the guess's level draws, and
calibrated prediction sets.

A categorical column is one-hot channels; a draw's level is its largest channel. Where the guess
stands in for the model its level probabilities (the classifier's, ``nn.tree_guess``) are drawn
from, so that prediction sets (``tasks.level_sets``), calibrated on held-out cells, hold the true
level about 90 % of the time. The model or the guess is chosen per column by the accuracy of
the most drawn level. Kept apart from the estimator because it is all about levels, none of it
about numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from diffimpute.data.batch import Windows
from diffimpute.data.table import most_frequent
from diffimpute.diffusion.noise import RowUniform
from diffimpute.engine.sampling import SampleOutput
from diffimpute.tasks.held_out import HeldOut
from diffimpute.tasks.level_sets import draw_levels, in_set, set_threshold
from diffimpute.tasks.refiner import CHANCE_MARGIN

_LEVEL_STREAM = 7  # appended to a row's key: its level draws' random stream, apart from its residuals'


class CategoricalLevels:
    """The categorical part of ``TabularImputer`` (a mixin, before ``GuessRefiner`` in the MRO,
    whose ``_guess_wins`` and ``_guess_draws`` it extends): it reads ``encoder_``, ``scaler_``,
    ``seed_``, ``model_``, ``validation_`` and sets ``level_set_threshold_``."""

    def _guess_wins(self, draws, guess, truth, target) -> np.ndarray:
        """Numeric channels by MAE (the refiner's rule); a categorical column's channels together, by
        the accuracy of the most frequent level among the draws against the guess's level: the model
        must gain more than chance, as for numbers (the mode of a few dozen draws is noisy, the
        guess's most likely level is not)."""
        wins = super()._guess_wins(draws, guess, truth, target)
        categorical = np.flatnonzero(~self.encoder_.numeric)  # only levels have a most frequent one
        model_level = most_frequent(self._levels(draws)[..., categorical])
        guess_level = self._levels(guess)[..., categorical]
        true_level = self._levels(truth)[..., categorical]
        hidden = target[:, self.encoder_.first_channel[categorical], 0]
        for k, j in enumerate(categorical):
            rows = hidden[:, k]
            if rows.sum() > 1:
                gains = ((model_level[rows, k] == true_level[rows, k]).astype(np.float64)
                         - (guess_level[rows, k] == true_level[rows, k]))
                margin = CHANCE_MARGIN * gains.std(ddof=1) / np.sqrt(len(gains))
                wins[self.encoder_.channel_column == j] = gains.mean() <= margin
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

    def _score_categories(self, held: HeldOut | None, device: torch.device) -> None:
        """Accuracy of the most likely level at the reported held-out categorical cells, into ``validation_``
        (a table of categories alone has no numeric figures there, but still these)."""
        categorical = ~self.encoder_.numeric
        self.level_set_threshold_ = float("inf")  # uncalibrated: every level in every set
        if held is None or not categorical.any():
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
