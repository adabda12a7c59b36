"""The first guess of a table's cells, fitted and chosen column by column (``TabularImputer``).

The Gaussian guess (``nn.guess.GaussianGuess``) is fitted by EM with its covariance shrinkage
picked on held-out cells; with ``guess="auto"`` the cross-fitted trees (``nn.tree_guess``) are
fitted too, and each column keeps the Gaussian guess, the trees or their mean, whichever has the
lower error on its held-out cells by a clear margin. Kept apart from the estimator because it is
one question, which guess the diffusion model starts from, with settings of its own.
"""

from __future__ import annotations

import numpy as np
import torch

from diffimpute.data.batch import Windows
from diffimpute.engine.calibration import gap_bins
from diffimpute.nn.tree_guess import ColumnChoiceGuess
from diffimpute.tasks.held_out import HeldOut, UnseenResiduals

_GUESS_ROWS = 2048  # rows the Gaussian guess is fitted on (its cost grows as rows x channels^3)
_TREE_ROWS = 4096  # rows the tree guess is fitted on (twice, unless wide: as they are and thinned)
_TREE_WEIGHTS = (0.0, 0.5, 1.0)  # a column's guess: Gaussian, the mean of both, or trees
_CHOICE_MARGIN = 2.0  # standard errors a column's own best guess must gain to leave the table-wide one
_TREE_FOLDS = 5  # cross-fitting folds of the tree guess: each training row is guessed by trees that never saw it
# A wide table's trees cost rows x channels to fit and every guess runs all of them: fewer folds
# and no thinned copy keep its fit near MissForest's time.
_WIDE_CHANNELS, _WIDE_FOLDS = 24, 3
_SHRINKAGES = (0.001, 0.01, 0.03, 0.1, 0.3)  # candidates for the guess's covariance shrinkage
# The guess's intervals are calibrated on each of up to this many training rows with one of its numeric
# cells hidden, this many times over (``_unseen_residuals``).
_UNSEEN_ROWS, _UNSEEN_PASSES = 2048, 4
_IN_SAMPLE_ROWS = 20  # rows per channel from which the Gaussian guess's in-sample errors are honest enough


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


class TableGuessFitting:
    """The guess-fitting part of ``TabularImputer`` (a mixin): it reads the estimator's
    ``guess``, ``guess_ridge``, ``denoiser``, ``seed_``, ``encoder_``, ``missing_rate_``,
    ``model_`` and ``_training_targets``, and sets the guess module's fitted state."""

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
        """Fit the cross-fitted trees on the training rows twice over (once if wide): as they are and with a further
        uniform share (up to twice the table's missing rate) of each row's given columns hidden, as
        the diffusion model's targets hide them; ``ColumnChoiceGuess.fit_rounds`` fills the hidden cells."""
        folds = self._tree_folds(len(train_windows))
        rows = train_windows[torch.from_numpy(np.flatnonzero(folds))]
        given = [rows.observed]
        if not self._wide():
            generator = torch.Generator().manual_seed(self.seed_ + 4)
            rate = torch.rand(len(rows), 1, generator=generator) * min(1.0, 2 * self.missing_rate_)
            given.append(rows.observed & ~self._training_targets(rows.observed, generator, rate))
        copies = len(given)
        labels = torch.where(rows.observed[..., 0], rows.values[..., 0], torch.nan).double().numpy()
        choice.fit_rounds(torch.cat([rows.values] * copies)[..., 0], torch.cat(given)[..., 0],
                          np.vstack([labels] * copies), self.encoder_.channel_column, self.seed_,
                          np.tile(folds[folds > 0], copies), ~self.encoder_.numeric_channels)

    def _refit_trees(self, windows: Windows) -> None:
        """Refit the chosen trees on every observed cell of the table's ``windows`` (rows with one), held-out ones
        included, once those cells have chosen the guesses, calibrated the intervals and selected
        the model: MissForest learns from every cell too, and on tables of a few hundred rows the
        sixth held out is a loss the guess feels. The figures in ``validation_`` were measured
        before, on the trees that had not seen those cells."""
        choice = self.model_.guess
        if isinstance(choice, ColumnChoiceGuess) and bool(choice.tree_weight.any()):
            device = choice.tree_weight.device  # trained on it; the trees are fitted on the CPU
            self._fit_trees(choice.cpu(), windows)
            choice.to(device)

    def _unseen_residuals(self, train_windows: Windows, device: torch.device) -> UnseenResiduals | None:
        """The guess's errors at training cells it never saw, for calibrating its intervals: a row's
        trees are those of the folds without it, so a numeric cell of a training row, hidden and
        guessed from the rest of the row as a real gap is, gives an honest error. These are hundreds
        of cells where the held-out ones are tens, which left 90 % coverage anywhere in 0.75-0.96
        (seed to seed, table to table). Pass ``k`` hides each row's ``k``-th cell of a random order,
        so no cell counts twice. The trees are one fold's, weaker than the all-fold average that
        imputes: the errors, if anything, err wide. The Gaussian guess is fitted on these very rows,
        so a channel that leans on it (``tree_weight`` below 1) takes them only where rows number
        ``_IN_SAMPLE_ROWS`` per channel: with fewer, its in-sample errors run narrow."""
        if not self._cross_fits() or not len(train_windows):
            return None
        generator = torch.Generator().manual_seed(self.seed_ + 5)
        rows = train_windows[torch.randperm(len(train_windows), generator=generator)[:_UNSEEN_ROWS]]
        trusted = self.model_.guess.tree_weight.detach().cpu().numpy() == 1.0
        if len(train_windows) >= _IN_SAMPLE_ROWS * self._n_channels():
            trusted[:] = True
        hideable = rows.observed & torch.from_numpy(self._interval_channels() & trusted)[None, :, None]
        order = torch.argsort(torch.rand(hideable.shape, generator=generator) + hideable, dim=1, descending=True)
        scale = self.model_.residual_scale.detach().cpu().numpy().astype(np.float64)
        residuals, features, gaps = [], [], []
        for k in range(min(_UNSEEN_PASSES, hideable.shape[1])):
            target = torch.zeros_like(hideable).scatter_(1, order[:, k:k + 1], True) & hideable
            cond = rows.observed & ~target
            with torch.no_grad():
                guess = self._guess_of(rows, cond, device)
            cells = target.numpy()
            residuals.append(((rows.values - guess).double().numpy() / scale)[cells])
            features.append(np.nonzero(cells)[1])  # each hidden cell's channel, in the order cells[...] gives
            gaps.append(gap_bins(cond.numpy())[cells])
        return UnseenResiduals(np.concatenate(residuals), np.concatenate(features), np.concatenate(gaps))

    def _cross_fits(self) -> bool:
        """Whether training rows carry their tree fold as their key (``positions``): the MLP ignores
        positions, but the transformer embeds them as times, so it keeps key 0 (all folds)."""
        return self.guess == "auto" and self.denoiser == "mlp"

    def _tree_folds(self, n_rows: int) -> np.ndarray:
        """``(n_rows,)`` each training row's tree fold, 1..``_TREE_FOLDS`` (``_WIDE_FOLDS`` if wide), for a
        seeded ``_TREE_ROWS`` of them (the rows the trees are fitted on) and 0 (trees that never saw it) for the rest."""
        order = np.random.default_rng(self.seed_ + 3).permutation(n_rows)[:_TREE_ROWS]
        folds = np.zeros(n_rows, dtype=np.int64)
        folds[order] = np.arange(len(order)) % (_WIDE_FOLDS if self._wide() else _TREE_FOLDS) + 1
        return folds

    def _wide(self) -> bool:
        """Whether the table has more than ``_WIDE_CHANNELS`` channels (its trees' cheaper settings)."""
        return self._n_channels() > _WIDE_CHANNELS

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
