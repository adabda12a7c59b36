"""What every diffusion estimator shares: device choice, seeding, parameter checks, checkpoints, one file format.

A task subclasses ``DiffusionEstimator`` and supplies ``_state`` (the JSON-able fitted state and
extra tensors) and ``_restore`` (its inverse, before the network's weights are loaded);
``save`` and ``load`` are written once here, so every estimator's files are alike: weights in
safetensors under ``denoiser.``, everything else in the JSON header, nothing pickled.

Checkpoints to resume a fit from are arguments of ``fit`` (``checkpoint=``, ``resume=``), not
parameters: they say where one call keeps its insurance, not what model to learn (a resumed fit
learns the same model), so they stay out of ``get_params``, ``clone`` (two clones in a grid search
must not share a file) and the saved model.

The conventions every estimator keeps (``tests/test_contract.py`` checks them on each):
``fit(X, y=None, *, checkpoint=None, resume=False)`` returns ``self``; ``random_state`` is an int,
a NumPy ``Generator`` or None, resolved once per fit into ``seed_``, which every later draw
starts from; ``time_budget`` caps training time (not data preparation or calibration) and warns
when it cuts training short; ``verbose=True`` shows progress bars; ``n_features_in_`` and, for
a DataFrame with string column names, ``feature_names_in_`` are set by ``fit``;
``get_feature_names_out`` and ``set_output`` work as in scikit-learn; ``save(path,
include_data=...)`` says in the file which parts hold the user's data.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar, get_args

import numpy as np
import pandas as pd
import torch
from sklearn import get_config
from sklearn.base import BaseEstimator, OneToOneFeatureMixin
from sklearn.utils.validation import check_is_fitted

from diffimpute import __version__
from diffimpute._validation import (
    check_choice,
    check_positive_int,
    check_random_state,
    resolve_seed,
)
from diffimpute.diffusion.parameterisation import check_prediction
from diffimpute.diffusion.samplers import SamplerKind
from diffimpute.diffusion.schedules import NoiseSchedule
from diffimpute.engine.checkpoint import Checkpointing, load_checkpoint, save_checkpoint

DeviceName = Literal["auto", "cpu", "cuda"] | str
CheckpointArg = str | Path | Checkpointing | None
_PREFIX = "denoiser."
# Parameters a fit may be resumed with changed: they do not change what a training step computes
# (a longer budget lets a resumed fit train on; see ``engine.trainer`` on budgets and resuming).
_RESUMABLE_CHANGES = ("verbose", "device", "time_budget")
Estimator = TypeVar("Estimator", bound="DiffusionEstimator")


def resolve_device(device: DeviceName) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='auto' or 'cpu'")
    return resolved


class DiffusionEstimator(OneToOneFeatureMixin, BaseEstimator):
    """Base of the diffusion estimators; the fitted network lives in ``model_``."""

    random_state: int | np.random.Generator | None
    device: DeviceName
    seed_: int

    # ------------------------------------------------------------------ the shared contract
    def _start_fit(self, X: object, n_features: int | None = None) -> None:
        """What every ``fit`` does first: resolve this fit's seed and remember the input's features
        (``n_features``: how many, where ``X``'s last axis does not say, as for images)."""
        self.seed_ = resolve_seed(self.random_state)
        self.n_features_in_ = int(np.shape(X)[-1] if n_features is None else n_features)
        names = list(X.columns) if isinstance(X, pd.DataFrame) else None
        if names is not None and all(isinstance(name, str) for name in names):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def set_output(self, *, transform: str | None = None) -> DiffusionEstimator:
        """scikit-learn's output switch for outputs that are not ``transform``'s (scores, flags,
        generated samples): ``"pandas"`` gives pandas objects for array input too, ``"default"``
        returns the input's own type, None leaves the setting as it is."""
        if transform is not None:
            check_choice(transform, ("default", "pandas"), "transform")
            self._sklearn_output_config = {"transform": transform}
        return self

    def _pandas_output(self) -> bool:
        """Whether ``set_output`` (or scikit-learn's global ``transform_output``) asks for pandas."""
        configured = getattr(self, "_sklearn_output_config", {}).get("transform")
        return (configured or get_config()["transform_output"]) == "pandas"

    def _noise_schedule(self) -> NoiseSchedule:
        """The forward process every estimator's parameters describe (steps, schedule, betas)."""
        return NoiseSchedule(self.diffusion_steps, self.schedule, self.beta_start, self.beta_end)

    def _clip_bounds(self, low: np.ndarray, high: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The sampler's per-channel clamp, each ``(channels, 1)``: the observed range ``[low, high]``
        widened by ``clip_margin`` times its width (None: no clamp)."""
        if self.clip_margin is None:
            return None
        margin = self.clip_margin * (high - low)
        bounds = torch.as_tensor(np.stack([low - margin, high + margin]), dtype=torch.float32)
        return bounds[0].view(-1, 1), bounds[1].view(-1, 1)

    def _check_diffusion_params(self, positive_ints: tuple[str, ...]) -> None:
        """Checks of the parameters that the denoising and sampling estimators (the refining imputers
        and the augmenter) share; ``positive_ints`` names those of the caller that must be >= 1."""
        check_random_state(self.random_state)
        check_prediction(self.prediction)
        check_choice(self.sampler, get_args(SamplerKind), "sampler")
        for name in positive_ints:
            check_positive_int(getattr(self, name), name)
        if self.channels % self.n_heads:
            raise ValueError(f"channels ({self.channels}) must be a multiple of n_heads ({self.n_heads})")
        if self.validation_fraction is not None and not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget must be a positive number of seconds or None, got {self.time_budget}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.clip_margin is not None and self.clip_margin < 0:
            raise ValueError(f"clip_margin must be >= 0 or None, got {self.clip_margin}")
        self._sampler()

    @contextmanager
    def _seeded(self, device: torch.device) -> Iterator[None]:
        """Initialise weights from ``random_state`` without disturbing the caller's global RNG."""
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed_)
            yield

    def _checkpointing(self, checkpoint: CheckpointArg, resume: bool) -> Checkpointing | None:
        """``fit``'s checkpoint argument as a plan keyed by this estimator's parameters, so that a
        checkpoint written with other parameters is refused: a path takes the default intervals
        (every 60 s of training and at the end), a ``Checkpointing`` sets its own."""
        if not isinstance(resume, bool):
            raise TypeError(f"resume must be True or False, got {resume!r}")
        if checkpoint is None:
            if resume:
                raise ValueError("resume=True needs checkpoint=<path>, the file the interrupted fit wrote")
            return None
        if resume and not isinstance(self.random_state, (int, np.integer)):
            raise ValueError("resume=True needs an integer random_state: the resumed fit must draw what the "
                             f"interrupted one drew, and random_state={self.random_state!r} gives a new seed")
        plan = checkpoint if isinstance(checkpoint, Checkpointing) else Checkpointing(checkpoint)
        params = {name: value for name, value in self.get_params().items() if name not in _RESUMABLE_CHANGES}
        params["random_state"] = self.seed_
        key = json.dumps(params, sort_keys=True, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else repr(v))
        return dataclasses.replace(plan, key=key)

    def _state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """Fitted state beyond the network: JSON metadata and extra tensors."""
        raise NotImplementedError

    def _restore(self, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of ``_state``; must leave ``self.model_`` built (weights are loaded after)."""
        raise NotImplementedError

    def _json_params(self) -> dict:
        """``get_params()`` in a JSON-able form; override where a parameter is not plain JSON. A
        ``random_state`` that is not an int is saved as the seed it gave, so a loaded model draws alike."""
        return {**self.get_params(deep=False), "random_state": self.seed_}

    def _user_data(self) -> dict[str, str]:
        """The parts of the saved file that hold the user's own data: tensor-name prefix -> what it
        is. Each task lists its own; most hold only summaries (scales, ranges, column names)."""
        return {}

    def _without_user_data(self) -> None:
        """What a task needs done when ``save(include_data=False)`` leaves out its ``_user_data``
        (refuse, if the model cannot work without it)."""

    @classmethod
    def _params_from_json(cls, params: dict) -> dict:
        """Inverse of ``_json_params``."""
        return params

    def save(self, path: str | Path, *, include_data: bool = True) -> None:
        """Write the fitted estimator to one file: weights as safetensors, the rest as JSON.

        The header's ``user_data`` lists the parts that are copies of the training data (the
        detector's calibration rows, the inpainter's donor images); ``include_data=False`` leaves
        them out, where the model can work without them, and refuses where it cannot."""
        check_is_fitted(self, "model_")
        if not isinstance(include_data, bool):
            raise TypeError(f"include_data must be True or False, got {include_data!r}")
        state, extra = self._state()
        tensors = {f"{_PREFIX}{name}": t for name, t in self.model_.state_dict().items()}
        tensors.update(extra)
        held = self._user_data()
        if not include_data and held:
            self._without_user_data()
            tensors = {name: t for name, t in tensors.items() if not name.startswith(tuple(held))}
        metadata = {"estimator": type(self).__name__, "library_version": __version__,
                    "params": self._json_params(), "seed": self.seed_, "n_features_in": self.n_features_in_,
                    "feature_names_in": getattr(self, "feature_names_in_", np.array([])).tolist() or None,
                    "user_data": list(held.values()) if include_data else [], **state}
        save_checkpoint(path, tensors, metadata)

    @classmethod
    def load(cls: type[Estimator], path: str | Path) -> Estimator:
        """Rebuild a saved estimator; no code in the file is ever executed."""
        tensors, metadata = load_checkpoint(path)
        kinds = {kind.__name__: kind for kind in (cls, *_subclasses(cls))}
        kind = kinds.get(metadata.get("estimator"))
        if kind is None:
            raise ValueError(f"{path} holds a {metadata.get('estimator')!r}, not a {cls.__name__}")
        estimator = kind(**kind._params_from_json(dict(metadata["params"])))
        estimator.seed_ = int(metadata.get("seed", estimator.random_state))
        if "n_features_in" in metadata:
            estimator.n_features_in_ = int(metadata["n_features_in"])
        if metadata.get("feature_names_in"):
            estimator.feature_names_in_ = np.asarray(metadata["feature_names_in"], dtype=object)
        estimator._restore(metadata, {k: v for k, v in tensors.items() if not k.startswith(_PREFIX)})
        weights = {k[len(_PREFIX):]: v for k, v in tensors.items() if k.startswith(_PREFIX)}
        try:
            estimator.model_.load_state_dict(weights)
        except RuntimeError as error:
            raise ValueError(f"{path} has weights that do not match its config ({error}); re-create the model") from None
        estimator.model_.eval()
        return estimator


def _subclasses(cls: type) -> list[type]:
    """Every subclass of ``cls``, so that ``DiffusionImputer.load`` reads a ``LatentDiffusionImputer``."""
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found
