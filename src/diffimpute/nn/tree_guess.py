"""A tree-based first guess for table rows, and the per-column choice between it and the Gaussian one.

The Gaussian guess (``nn.guess.GaussianGuess``) is linear in the given cells; a column that
depends on the others through thresholds, interactions or curves is guessed better by trees, as
MissForest and HyperImpute show. ``TreeGuess`` fits one scikit-learn
``HistGradientBoostingRegressor`` per encoded channel on the training rows: it predicts the
channel from every other column of the row, NaN where a cell is not given, which gradient-boosted
trees route down a branch learned for missing values. One model per channel therefore serves
every pattern of given cells, in training and at imputation alike, in a single pass.

The fitted trees are copied into tensors (the split feature, threshold, side for missing values,
children and leaf value of every node), so the guess runs in torch, batched over rows and trees,
and saves as safetensors buffers like any weight: no estimator is pickled or refitted at load.

``ColumnChoiceGuess`` holds both guesses and a per-channel switch: the task sets it column by
column on held-out cells (``tasks.tabular``), so every column keeps whichever guess is the better there.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

_TREE_BUFFERS = ("feature", "threshold", "missing_left", "left", "right", "leaf_value", "roots", "tree_channel")
# Boosting settings: early stopping on an inner split keeps a weak column's ensemble short, which
# also keeps the in-sample optimism of the guess on its own training rows small.
_BOOSTING = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 20,
             "early_stopping": True, "validation_fraction": 0.15, "n_iter_no_change": 10}
_ROWS_PER_PASS = 512  # rows evaluated at once: bounds memory at rows x trees node indices


def _node_arrays(predictor, offset: int, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """One fitted tree (a scikit-learn ``TreePredictor``) as flat arrays whose child indices are
    shifted by ``offset`` and whose split features are mapped through ``inputs`` (the channel of
    each feature the model saw); a leaf points at itself, so extra traversal steps stay on it."""
    nodes = predictor.nodes
    own = np.arange(len(nodes)) + offset
    leaf = nodes["is_leaf"].astype(bool)
    return {
        "feature": np.where(leaf, 0, inputs[nodes["feature_idx"]]).astype(np.int64),
        "threshold": np.where(leaf, np.inf, nodes["num_threshold"]),
        "missing_left": leaf | nodes["missing_go_to_left"].astype(bool),
        "left": np.where(leaf, own, nodes["left"].astype(np.int64) + offset),
        "right": np.where(leaf, own, nodes["right"].astype(np.int64) + offset),
        "leaf_value": np.where(leaf, nodes["value"], 0.0),
        "depth": nodes["depth"].astype(np.int64),
    }


class TreeGuess(nn.Module):
    """Each channel's prediction from the given cells of its row by gradient-boosted trees.

    Maps ``(values, cond_mask, positions)`` -- ``(batch, features, length)`` twice and ``(batch,
    length)`` -- to ``(batch, features, length)`` with given cells unchanged; every time step (table
    row) is guessed on its own. Buffers: the nodes of all trees of all channels, flat
    (``feature``, ``threshold``, ``missing_left``, ``left``, ``right``, ``leaf_value``), each
    tree's root node and channel, and each channel's ``baseline`` (its mean: a channel with no
    trees, or an unfitted guess, predicts it).
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("baseline", torch.zeros(n_features))
        self.register_buffer("depth", torch.tensor(0))
        for name in _TREE_BUFFERS:
            dtype = torch.float32 if name in ("threshold", "leaf_value") else (
                torch.bool if name == "missing_left" else torch.int64)
            self.register_buffer(name, torch.zeros(0, dtype=dtype))

    @torch.no_grad()
    def fit(self, rows: torch.Tensor, given: torch.Tensor, channel_column: np.ndarray,
            hide_rate: float, seed: int) -> TreeGuess:
        """Fit one boosted model per channel on ``rows (n, features)`` observed where ``given``.

        A channel's model never sees its own column (``channel_column (features,)``: the column of
        each channel, so a categorical's one-hot channels hide together). The rows are used twice:
        as they are, and with a further share of their given columns hidden (each row a uniform
        share up to ``2 * hide_rate``), so that the trees learn to guess from the sparser rows that
        the diffusion model's training targets leave too.
        """
        from sklearn.ensemble import HistGradientBoostingRegressor

        data = torch.where(given, rows, torch.nan).double().numpy()
        rng = np.random.default_rng(seed)
        n_columns = int(channel_column.max()) + 1
        share = rng.uniform(0, min(1.0, 2 * hide_rate), size=(len(data), 1))
        hidden_columns = rng.random((len(data), n_columns)) < share
        thinned = np.where(hidden_columns[:, channel_column], np.nan, data)
        inputs, labels = np.vstack([data, thinned]), np.vstack([data, data])

        arrays: list[dict[str, np.ndarray]] = []
        roots, tree_channel, offset = [], [], 0
        baseline = np.zeros(data.shape[1])
        for channel in range(data.shape[1]):
            known = ~np.isnan(labels[:, channel])
            if not known.any():
                continue
            target = labels[known, channel]
            baseline[channel] = target.mean()
            if np.ptp(target) == 0 or known.sum() < 2 * _BOOSTING["min_samples_leaf"]:
                continue  # constant or too few labels: the mean is the guess
            features = inputs[known]
            # not its own column, nor a channel never given in these rows (nothing to split on)
            used = np.flatnonzero((channel_column != channel_column[channel]) & ~np.isnan(features).all(axis=0))
            if not used.size:
                continue
            model = HistGradientBoostingRegressor(**_BOOSTING, random_state=seed).fit(features[:, used], target)
            baseline[channel] = float(np.ravel(model._baseline_prediction)[0])
            for (predictor,) in model._predictors:
                tree = _node_arrays(predictor, offset, used)
                arrays.append(tree)
                roots.append(offset)
                tree_channel.append(channel)
                offset += len(tree["feature"])
        self._set_trees(arrays, roots, tree_channel, baseline)
        return self

    def _set_trees(self, arrays: list[dict[str, np.ndarray]], roots: list[int], tree_channel: list[int],
                   baseline: np.ndarray) -> None:
        self.baseline = torch.as_tensor(baseline, dtype=torch.float32)
        self.depth = torch.tensor(max((int(a["depth"].max()) for a in arrays), default=0))
        for name in _TREE_BUFFERS[:6]:
            like = getattr(self, name)
            joined = np.concatenate([a[name] for a in arrays]) if arrays else np.zeros(0)
            setattr(self, name, torch.as_tensor(joined).to(like.dtype))
        self.roots = torch.as_tensor(roots, dtype=torch.int64)
        self.tree_channel = torch.as_tensor(tree_channel, dtype=torch.int64)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """The number of nodes is known only once fitted: take the saved buffers' sizes first."""
        for name in _TREE_BUFFERS:
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, dtype=getattr(self, name).dtype))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def predict_rows(self, x: torch.Tensor) -> torch.Tensor:
        """``x (rows, features)`` with NaN where not given -> every channel's prediction, same shape."""
        out = self.baseline.to(x.dtype).expand_as(x).clone()
        if not len(self.roots):
            return out
        for part in torch.arange(len(x), device=x.device).split(_ROWS_PER_PASS):
            rows = x[part]
            node = self.roots.expand(len(rows), -1)  # (rows, trees)
            for _ in range(int(self.depth)):
                value = rows.gather(1, self.feature[node])
                left = torch.where(value.isnan(), self.missing_left[node],
                                   value <= self.threshold[node].to(value.dtype))
                node = torch.where(left, self.left[node], self.right[node])
            out[part] += torch.zeros_like(rows).index_add_(1, self.tree_channel, self.leaf_value[node].to(x.dtype))
        return out

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        batch, n_features, length = values.shape
        rows = torch.where(cond_mask, values, torch.nan).transpose(1, 2).reshape(-1, n_features)
        estimate = self.predict_rows(rows).view(batch, length, n_features).transpose(1, 2)
        return torch.where(cond_mask, values, estimate)


class ColumnChoiceGuess(nn.Module):
    """The Gaussian guess in some channels and the tree guess in the others (``use_trees``, a
    ``(features,)`` bool buffer the task sets on held-out cells; all False: the Gaussian guess)."""

    def __init__(self, gaussian: nn.Module, trees: TreeGuess) -> None:
        super().__init__()
        self.gaussian = gaussian
        self.trees = trees
        self.register_buffer("use_trees", torch.zeros(len(trees.baseline), dtype=torch.bool))

    def forward(self, values: torch.Tensor, cond_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        estimate = self.gaussian(values, cond_mask, positions)
        if not bool(self.use_trees.any()):
            return estimate
        trees = self.trees(values, cond_mask, positions)
        return torch.where(self.use_trees[None, :, None], trees, estimate)
