"""A tree-based first guess for table rows, and the per-column choice between it and the Gaussian one.

The Gaussian guess (``nn.guess.GaussianGuess``) is linear in the given cells; a column that
depends on the others through thresholds, interactions or curves is guessed better by trees, as
MissForest shows. ``TreeGuess`` fits one scikit-learn forest of extremely randomised trees per
column on the training rows (half the features tried at each split, on random thresholds), with
each tree capped (a model holds at most about 2 MB per channel): an ``ExtraTreesRegressor`` per numeric
channel, an ``ExtraTreesClassifier`` per categorical column, whose averaged leaf shares are the
level probabilities, mapped onto the column's one-hot channels' scaled 0 and 1. On the bench's
small tables forests guessed cells and levels better than gradient-boosted trees (whose
ensembles stop early on a few hundred rows), and unlike them gain from MissForest's rounds.

Trees guess the rows they were fitted on better than new ones; a diffusion model trained over
that in-sample guess learns to trust it more than it deserves at imputation. So the trees are
cross-fitted: the training rows fall into ``K`` folds and fold ``k``'s trees are fitted on the
others. Each row carries its key in ``positions`` (meaningless for a table row, a window of length
1): key ``k`` in 1..K takes fold ``k``'s trees, which never saw that row, and key 0 (every row
met outside training) the average of all folds, whose labels never included its hidden cells.

The fitted trees are copied into tensors (the split feature, threshold, side for missing values,
children and leaf value of every node), so the guess runs in torch, batched over rows and trees,
and saves as safetensors buffers like any weight: no estimator is pickled or refitted at load.
Files saved before the forests (2026-12-06) hold gradient-boosted trees, whose level channels sum
raw scores for a softmax; they load and guess as they did (``raw_level_scores``).

``ColumnChoiceGuess`` holds both guesses (the trees in rounds, as MissForest iterates) and a
per-channel switch: the task sets it column by column on held-out cells (``tasks.tabular``), so
every column keeps whichever guess is the better there.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

_TREE_BUFFERS = ("feature", "threshold", "missing_left", "left", "right", "leaf_value", "roots", "tree_channel",
                 "tree_fold", "baseline")
# Forest settings: half the features tried at each split, on random thresholds (extremely randomised
# trees), capped in size. 256 leaves and depth 12 against the earlier 64 and 8: the same MAE on the
# bench's five tables (seeds 0-1, mean change -0.001 SD) and 5-13 % lower on tables of rows in
# groups (statsmodels' modechoice, grunfeld: rows sharing an individual's or a firm's values,
# which deeper trees single out); unbounded trees lost on iris and penguins. Fit times alike;
# model files about twice the size (cars 5.4 -> 10.5 MB).
_FOREST = {"max_features": 0.5, "min_samples_leaf": 2, "max_leaf_nodes": 256, "max_depth": 12}
FOREST_TREES = 100  # trees per column over all folds: each fold grows its share
_MIN_LABELS = 10  # fewer given cells than this: the column's mean or level shares, no trees
# Per-node indices are stored as int32 (half the file of int64; 2**31 nodes is far beyond any
# forest here) and widened to int64 once per fitted trees, in the walk tables.
_INDEX_DTYPES = {"feature": torch.int32, "left": torch.int32, "right": torch.int32}
_ROWS_PER_PASS = 512  # rows evaluated at once: bounds memory at rows x trees node indices


def _passes(rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The indices of the True entries of ``rows``, in passes of at most ``_ROWS_PER_PASS`` (none if none)."""
    index = torch.nonzero(rows).squeeze(1)
    return index.split(_ROWS_PER_PASS) if len(index) else ()


def _node_arrays(tree, offset: int, inputs: np.ndarray, leaf_value: np.ndarray) -> dict[str, np.ndarray]:
    """One fitted scikit-learn tree (``estimator.tree_``) as flat arrays whose child indices are
    shifted by ``offset``, whose split features are mapped through ``inputs`` (the channel of each
    feature the model saw) and whose leaves hold ``leaf_value (nodes,)``; a leaf points at itself,
    so extra traversal steps stay on it. A split sends a value ``<=`` its threshold left, as
    scikit-learn does, and a missing one the side it learned (or the larger child's)."""
    own = np.arange(tree.node_count) + offset
    leaf = tree.children_left < 0
    # float32 thresholds (as inputs are compared), rounded down so that x <= threshold still holds
    # exactly for every float32 x it held for
    threshold = tree.threshold.astype(np.float32)
    threshold = np.where(threshold > tree.threshold, np.nextafter(threshold, np.float32(-np.inf)), threshold)
    return {
        "feature": np.where(leaf, 0, inputs[np.maximum(tree.feature, 0)]).astype(np.int64),
        "threshold": np.where(leaf, np.inf, threshold),
        "missing_left": leaf | tree.missing_go_to_left.astype(bool),
        "left": np.where(leaf, own, tree.children_left.astype(np.int64) + offset),
        "right": np.where(leaf, own, tree.children_right.astype(np.int64) + offset),
        "leaf_value": np.where(leaf, leaf_value, 0.0),
        "depth": np.array([tree.max_depth]),
    }


def _fit_channels(inputs: np.ndarray, labels: np.ndarray, channel_column: np.ndarray, categorical: np.ndarray,
                  n_trees: int, seed: int, offset: int) -> tuple[list[dict[str, np.ndarray]], list[int], np.ndarray]:
    """Forests of ``n_trees`` for the channels of ``labels (n, features)`` from the other columns
    of ``inputs`` (NaN: not given): a regressor per numeric channel, a classifier per column whose
    channels are ``categorical``. Returns each tree's node arrays (numbered from ``offset``, its
    root first; a classifier's tree once per level, with that level's leaf shares), each tree's
    channel and each channel's baseline (its mean or level share where it has no trees, else 0)."""
    arrays, tree_channel = [], []
    baseline = np.zeros(labels.shape[1])
    for column in np.unique(channel_column):
        channels = np.flatnonzero(channel_column == column)
        known = ~np.isnan(labels[:, channels[0]])
        if not known.any():
            continue
        # not its own column, nor a channel never given in these rows (nothing to split on)
        used = np.flatnonzero((channel_column != column) & ~np.isnan(inputs[known]).all(axis=0))
        fit = _fit_levels if categorical[channels[0]] else _fit_value
        features, own = inputs[known][:, used], labels[known][:, channels]
        for channel, trees, base in fit(features, own, channels, n_trees, seed):
            baseline[channel] = base
            for tree, leaf_value in trees:
                arrays.append(_node_arrays(tree, offset, used, leaf_value))
                tree_channel.append(channel)
                offset += len(arrays[-1]["feature"])
    return arrays, tree_channel, baseline


def _fit_value(features: np.ndarray, labels: np.ndarray, channels: np.ndarray, n_trees: int, seed: int):
    """A numeric channel's forest: ``[(channel, [(tree, leaf values / n_trees)], baseline)]``; no
    trees (the mean) for a constant channel, too few labels or nothing to split on."""
    from sklearn.ensemble import ExtraTreesRegressor

    target = labels[:, 0]
    if np.ptp(target) == 0 or len(target) < _MIN_LABELS or not features.shape[1]:
        return [(channels[0], [], target.mean())]
    model = ExtraTreesRegressor(n_trees, **_FOREST, n_jobs=1, random_state=seed).fit(features, target)
    trees = [(m.tree_, m.tree_.value[:, 0, 0] / n_trees) for m in model.estimators_]
    return [(channels[0], trees, 0.0)]


def _fit_levels(features: np.ndarray, labels: np.ndarray, channels: np.ndarray, n_trees: int, seed: int):
    """A categorical column's forest over its one-hot ``labels (n, levels)`` (scaled: the largest
    value of a row is its level): ``[(channel, [(tree, that level's leaf shares / n_trees)],
    baseline)]`` per level, a level never labelled here getting nothing. With one level, too few
    labels or nothing to split on, the baselines are the levels' shares."""
    from sklearn.ensemble import ExtraTreesClassifier

    codes = np.argmax(labels, axis=1)
    counts = np.bincount(codes, minlength=len(channels))
    if (counts > 0).sum() < 2 or len(codes) < _MIN_LABELS or not features.shape[1]:
        return [(channel, [], counts[k] / counts.sum()) for k, channel in enumerate(channels)]
    model = ExtraTreesClassifier(n_trees, **_FOREST, n_jobs=1, random_state=seed).fit(features, codes)
    shares = [m.tree_.value[:, 0, :] / m.tree_.value[:, 0, :].sum(axis=1, keepdims=True) for m in model.estimators_]
    return [(channels[level], [(m.tree_, share[:, k] / n_trees) for m, share in zip(model.estimators_, shares)], 0.0)
            for k, level in enumerate(model.classes_)]


class TreeGuess(nn.Module):
    """Each channel's prediction from the given cells of its row by cross-fitted forests of extremely randomised trees.

    Maps ``(values, cond_mask, positions)`` -- ``(batch, features, length)`` twice and ``(batch,
    length)`` row keys (0: all folds; k: fold k's trees only) -- to ``(batch, features, length)``
    with given cells unchanged; every time step (table row) is guessed on its own. Buffers: the
    nodes of all trees of all folds, flat (``feature``, ``threshold``, ``missing_left``, ``left``,
    ``right``, ``leaf_value``), each tree's root node, channel and fold, and each fold's
    ``baseline`` per channel ``(folds, features)`` (a channel without trees predicts its mean);
    ``level_column (features,)``, each channel's categorical column (-1: numeric),
    ``level_value (2, features)``, what a level's channel holds when it is not and when it is the
    level, and ``raw_level_scores``, True for boosted trees loaded from an older file (level
    channels sum raw scores for a softmax) and False for forests (they sum level probabilities).
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("depth", torch.tensor(0))
        for name in _TREE_BUFFERS:
            dtype = torch.float32 if name in ("threshold", "leaf_value", "baseline") else (
                torch.bool if name == "missing_left" else _INDEX_DTYPES.get(name, torch.int64))
            self.register_buffer(name, torch.zeros(0, dtype=dtype))
        self.baseline = torch.zeros(1, n_features)
        self.register_buffer("level_column", torch.full((n_features,), -1, dtype=torch.int64))
        self.register_buffer("level_value", torch.zeros(2, n_features))
        self.register_buffer("raw_level_scores", torch.tensor(False))
        # ``_walk_tables`` per (features, dtype) and ``_fold_trees``, dropped when the trees change. Under
        # DDP, broadcast buffers overwrite them in place: safe as every rank fits the same trees.
        self._walks: dict[object, tuple[torch.Tensor, ...]] = {}

    @property
    def n_features(self) -> int:
        return self.baseline.shape[1]

    @torch.no_grad()
    def fit(self, inputs: np.ndarray, labels: np.ndarray, channel_column: np.ndarray, seed: int,
            folds: np.ndarray, categorical: np.ndarray | None = None) -> TreeGuess:
        """Fit each fold's forests: ``labels (n, features)`` (NaN: not observed) from
        ``inputs (n, features)`` (NaN: not given), leaving out the rows whose ``folds (n,)`` entry
        (1..K) is that fold. A channel's model never sees its own column (``channel_column
        (features,)``: the column of each channel, so a categorical's one-hot channels hide together).
        ``categorical (features,)``: True for the one-hot channels of categorical columns (default none).
        """
        categorical = np.zeros(labels.shape[1], dtype=bool) if categorical is None else categorical
        self.level_column.copy_(torch.from_numpy(np.where(categorical, channel_column, -1)))
        known = ~np.isnan(labels)
        ends = [np.where(known.any(axis=0), f(np.where(known, labels, fill), axis=0), 0.0)
                for f, fill in ((np.min, np.inf), (np.max, -np.inf))]
        self.level_value.copy_(torch.from_numpy(np.stack(ends)))
        self.raw_level_scores.fill_(False)
        n_folds = int(folds.max())
        arrays, roots, tree_channel, tree_fold, baselines, offset = [], [], [], [], [], 0
        for fold in range(1, n_folds + 1):
            keep = folds != fold
            trees, channels, baseline = _fit_channels(inputs[keep], labels[keep], channel_column, categorical,
                                                      math.ceil(FOREST_TREES / n_folds), seed + fold, offset)
            for tree in trees:
                roots.append(offset)
                offset += len(tree["feature"])
            arrays += trees
            tree_channel += channels
            tree_fold += [fold - 1] * len(trees)
            baselines.append(baseline)
        self._set_trees(arrays, roots, tree_channel, tree_fold, np.stack(baselines))
        return self

    def _set_trees(self, arrays: list[dict[str, np.ndarray]], roots: list[int], tree_channel: list[int],
                   tree_fold: list[int], baseline: np.ndarray) -> None:
        """Flat node arrays with absolute child indices; ``baseline (folds, features)``."""
        self.baseline = torch.as_tensor(baseline, dtype=torch.float32)
        self.depth = torch.tensor(max((int(a["depth"].max()) for a in arrays), default=0))
        for name in _TREE_BUFFERS[:6]:
            like = getattr(self, name)
            joined = np.concatenate([a[name] for a in arrays]) if arrays else np.zeros(0)
            setattr(self, name, torch.as_tensor(joined).to(like.dtype))
        self.roots = torch.as_tensor(roots, dtype=torch.int64)
        self.tree_channel = torch.as_tensor(tree_channel, dtype=torch.int64)
        self.tree_fold = torch.as_tensor(tree_fold, dtype=torch.int64)
        self._walks = {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """The number of nodes and folds is known only once fitted: take the saved buffers' sizes first.
        A file without ``raw_level_scores`` was saved from boosted trees."""
        state_dict.setdefault(prefix + "raw_level_scores", torch.tensor(True))
        for name in _TREE_BUFFERS:
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, dtype=getattr(self, name).dtype))
        self._walks = {}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _apply(self, fn, *args, **kwargs) -> TreeGuess:
        """Moving the trees (``to``, ``cpu``) makes new buffers: the walk tables are rebuilt from them."""
        self._walks = {}
        return super()._apply(fn, *args, **kwargs)

    def _fold_weights(self, keys: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``keys (rows,)`` -> ``(rows, folds)``: one-hot on fold ``key`` (1..K), uniform for key 0."""
        n_folds = len(self.baseline)
        folds = torch.arange(1, n_folds + 1, device=keys.device)
        own = (keys[:, None] == folds).to(dtype)
        return torch.where((keys == 0)[:, None], torch.full_like(own, 1.0 / n_folds), own)

    def predict_rows(self, x: torch.Tensor, keys: torch.Tensor | None = None,
                     needed: torch.Tensor | None = None) -> torch.Tensor:
        """``x (rows, features)`` with NaN where not given, ``keys (rows,)`` int (default 0: all
        folds) -> every channel's prediction, same shape as ``x``. A row keyed to one fold runs
        that fold's trees only: the others would add nothing but cost, on every training step.
        ``needed (rows, features)``: the cells whose prediction is used (default all); the trees of
        the others are not walked, and those cells hold only their channel's baseline."""
        keys = torch.zeros(len(x), dtype=torch.int64, device=x.device) if keys is None else keys
        if len(keys) and not 0 <= int(keys.min()) <= int(keys.max()) <= len(self.baseline):
            raise ValueError(f"row keys must lie in 0..{len(self.baseline)} (0: all folds; k: fold k), "
                             f"got {int(keys.min())}..{int(keys.max())}")
        needed = torch.ones_like(x, dtype=torch.bool) if needed is None else needed
        weights = self._fold_weights(keys, x.dtype)
        out = weights @ self.baseline.to(x.dtype)
        if len(self.roots):
            tables = self._walk_tables(x.shape[1], x.dtype)
            every = torch.arange(len(self.roots), device=x.device)
            for part in _passes(keys == 0):
                out[part] += self._leaf_sums(x[part], every.expand(len(part), -1), weights[part], tables,
                                             needed[part][:, self.tree_channel])
            fold_trees, real = self._fold_trees()
            for part in _passes(keys > 0):
                trees = fold_trees[keys[part] - 1]
                use = real[keys[part] - 1] & needed[part].gather(1, self.tree_channel[trees])
                out[part] += self._leaf_sums(x[part], trees, weights[part], tables, use)
        return self._levels(out)

    def _fold_trees(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(folds, most trees of a fold)`` each fold's trees side by side, so that rows of all folds
        walk their trees in one pass, and which entries are real: a fold with fewer trees is padded
        with tree 0, never walked. Built once per fitted (or loaded, or moved) trees, as the walk tables."""
        walks = self._walks  # one read: another thread's ``to`` may replace the dict meanwhile
        if "folds" in walks:
            return walks["folds"]
        n_folds = len(self.baseline)
        counts = torch.bincount(self.tree_fold, minlength=n_folds)
        slot = torch.arange(int(counts.max()), device=counts.device)
        real = slot[None, :] < counts[:, None]
        by_fold = torch.argsort(self.tree_fold, stable=True)
        first = torch.cumsum(counts, 0) - counts
        walks["folds"] = torch.where(real, by_fold[(first[:, None] + slot).clamp(max=len(by_fold) - 1)], 0), real
        return walks["folds"]

    def _levels(self, raw: torch.Tensor) -> torch.Tensor:
        """``raw (rows, features)`` with each categorical column's level probabilities (or, from
        boosted trees, a softmax of their raw scores) put on the channels' scale."""
        for column in self.level_column[self.level_column >= 0].unique().tolist():
            channels = self.level_column == column
            share = torch.softmax(raw[:, channels], dim=1) if self.raw_level_scores else raw[:, channels]
            low, high = self.level_value[:, channels].to(raw.dtype)
            raw[:, channels] = low + share * (high - low)
        return raw

    def _walk_tables(self, n_features: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """What ``_leaf_sums`` reads at each node, built once per fitted (or loaded, or moved) trees
        and ``dtype``: the column of ``both`` its split reads (``(nodes,)``), its children
        (``(2 nodes,)``: left, right) and its threshold, finite (a split of given values, all left,
        from missing ones has +inf). Rebuilding them on every training step took a tenth of a fit."""
        key, walks = (n_features, dtype), self._walks
        if key not in walks:
            route = self.feature.long() + n_features * (~self.missing_left).long()
            children = torch.stack([self.left, self.right], 1).flatten().long()
            walks[key] = route, children, self.threshold.to(dtype).clamp(max=torch.finfo(dtype).max)
        return walks[key]

    def _leaf_sums(self, rows: torch.Tensor, trees: torch.Tensor, weights: torch.Tensor,
                   tables: tuple[torch.Tensor, ...], use: torch.Tensor) -> torch.Tensor:
        """Each channel's sum, for each of ``rows``, over those of its ``trees (rows, n)`` marked in
        ``use (rows, n)`` of their leaf, weighted by fold.

        Only the (row, tree) pairs in use are walked. A missing value is read as -inf at a node that
        sends it left and +inf at one that sends it right (``rows`` side by side with both), so a
        step is a gather and a comparison; the walk stops once every pair sits on a leaf, which
        points at itself."""
        route, children, threshold = tables
        missing = rows.isnan()
        both = torch.cat([torch.where(missing, -torch.inf, rows), torch.where(missing, torch.inf, rows)], 1)
        row, slot = torch.nonzero(use, as_tuple=True)
        tree = trees[row, slot]
        node = self.roots[tree]
        # Each pair reads its row of ``both`` flattened: 1-D index_select runs a third faster than indexing.
        start, flat = row * both.shape[1], both.reshape(-1)
        for _ in range(int(self.depth)):
            read = flat.index_select(0, start + route.index_select(0, node))
            step = children.index_select(0, 2 * node + (read > threshold.index_select(0, node)))
            if torch.equal(step, node):
                break
            node = step
        leaves = self.leaf_value[node].to(rows.dtype) * weights[row, self.tree_fold[tree]]
        return torch.zeros_like(rows).index_put_((row, self.tree_channel[tree]), leaves, accumulate=True)

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor,
                fill: torch.Tensor | None = None) -> torch.Tensor:
        """``fill``: what the trees see where a cell is not given (default NaN), e.g. another guess."""
        batch, n_features, length = values.shape
        rows = torch.where(cond_mask, values, torch.nan if fill is None else fill)
        rows = rows.transpose(1, 2).reshape(-1, n_features)
        keys = positions.reshape(-1).round().long()
        needed = ~cond_mask.transpose(1, 2).reshape(-1, n_features)
        estimate = self.predict_rows(rows, keys, needed).view(batch, length, n_features).transpose(1, 2)
        return torch.where(cond_mask, values, estimate)


class ColumnChoiceGuess(nn.Module):
    """The Gaussian guess, the tree guess or their mean, channel by channel (``tree_weight``, a
    ``(features,)`` buffer of 0, 0.5 or 1 that the task sets on held-out cells; all 0: the Gaussian
    guess). The tree guess is MissForest's iteration in ``rounds``: the first round's trees see the
    Gaussian guess where a cell is not given (more to split on than a missing cell), each later
    round's trees the round before's guess, which splits on what the Gaussian guess smooths away."""

    def __init__(self, gaussian: nn.Module, rounds: list[TreeGuess]) -> None:
        super().__init__()
        self.gaussian = gaussian
        self.rounds = nn.ModuleList(rounds)
        self.register_buffer("tree_weight", torch.zeros(rounds[0].n_features))

    def candidates(self, values: torch.Tensor, cond_mask: torch.Tensor,
                   positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian and the last round's tree guess, each ``(batch, features, length)``."""
        gaussian = estimate = self.gaussian(values, cond_mask, positions)
        for trees in self.rounds:
            estimate = trees(values, cond_mask, positions, fill=estimate)
        return gaussian, estimate

    @torch.no_grad()
    def fit_rounds(self, values: torch.Tensor, given: torch.Tensor, labels: np.ndarray, channel_column: np.ndarray,
                   seed: int, folds: np.ndarray, categorical: np.ndarray) -> None:
        """Fit every round's trees (``TreeGuess.fit``) on rows ``values (n, features)`` whose cells are
        ``given (n, features)``, filled by the Gaussian guess for the first round and by the round
        before's guess for the others, each row's by trees that never saw it (its ``folds`` key)."""
        keys = torch.from_numpy(folds)
        inputs = self.gaussian(values.unsqueeze(-1), given.unsqueeze(-1), torch.zeros(len(values), 1))[..., 0]
        for number, trees in enumerate(self.rounds):
            trees.fit(inputs.double().numpy(), labels, channel_column, seed + 16 * number, folds, categorical)
            if number + 1 < len(self.rounds):
                inputs = torch.where(given, values, trees.predict_rows(inputs, keys, ~given))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Files saved before the rounds (2026-12-05) hold one set of trees under ``trees.``: they load
        as a single round, so a saved model guesses exactly as it did."""
        old = [key for key in state_dict if key.startswith(prefix + "trees.")]
        if old:
            for key in old:
                state_dict[prefix + "rounds.0." + key[len(prefix + "trees."):]] = state_dict.pop(key)
            del self.rounds[1:]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if not bool(self.tree_weight.any()):
            return self.gaussian(values, cond_mask, positions)
        gaussian, trees = self.candidates(values, cond_mask, positions)
        weight = self.tree_weight[None, :, None].to(values.dtype)
        return gaussian + weight * (trees - gaussian)
