"""Pretrained denoiser weights: the file shipped inside the package, or one a user exported.

A weights file is a safetensors file (``engine.checkpoint`` format) written by
``pretrain/pretrain.py --export``: the ``PatchDenoiser``'s tensors, and in its JSON header the
network's settings (``model``), the diffusion it was trained for (``diffusion``), the training
steps and the validation scores. ``MODEL_CARD.md`` beside the shipped file says how it was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from diffimpute.engine.checkpoint import load_checkpoint
from diffimpute.nn.patch import PatchDenoiser

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
SHIPPED = {"default": WEIGHTS_DIR / "imputer.safetensors"}


@dataclass(frozen=True)
class PretrainedWeights:
    """A weights file read into memory: ``model`` (``PatchDenoiser`` keyword arguments),
    ``diffusion`` (steps, schedule, betas, prediction), the tensors and the rest of the header."""

    name: str
    model: dict
    diffusion: dict
    tensors: dict[str, torch.Tensor]
    metadata: dict

    def check_fits(self, estimator: object) -> None:
        """Refuse an estimator whose diffusion settings or window these weights were not trained for."""
        differ = {name: (getattr(estimator, name), value) for name, value in self.diffusion.items()
                  if getattr(estimator, name) != value}
        if differ:
            said = ", ".join(f"{name}={ours!r} (weights: {theirs!r})" for name, (ours, theirs) in differ.items())
            raise ValueError(f"the pretrained weights were trained for other diffusion settings: {said}; keep "
                             "the defaults, or pass pretrained=None to train from scratch with these")
        window = getattr(estimator, "window", None)
        if window is not None and window > self.model["max_length"]:
            raise ValueError(f"the pretrained denoiser reads windows of at most {self.model['max_length']} "
                             f"steps, got window={window}; pass a shorter window or pretrained=None")

    def build(self, n_features: int) -> PatchDenoiser:
        """A ``PatchDenoiser`` for ``n_features`` features holding these weights (the fitted
        ``residual_scale`` buffer is the estimator's to set)."""
        model = PatchDenoiser(n_features, **self.model)
        missing, unexpected = model.load_state_dict(self.tensors, strict=False)
        if unexpected or set(missing) - {"residual_scale"}:
            raise ValueError(f"pretrained weights {self.name!r} do not fit the patch denoiser "
                             f"(missing {sorted(missing)}, unexpected {sorted(unexpected)})")
        return model


def weights_path(name: str | Path) -> Path:
    """The file behind ``name``: a shipped name (``"default"``) or a path to an exported file."""
    if isinstance(name, str) and name in SHIPPED:
        return SHIPPED[name]
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"pretrained must be one of {sorted(SHIPPED)}, None, or the path of a weights file "
                         f"exported by pretrain/pretrain.py; {str(name)!r} is none of these")
    return path


@lru_cache(maxsize=4)
def _read(path: Path, modified: float) -> PretrainedWeights:
    tensors, metadata = load_checkpoint(path)
    if "model" not in metadata or "diffusion" not in metadata:
        raise ValueError(f"{path} is not a pretrained weights file (its header has no 'model' and 'diffusion')")
    return PretrainedWeights(str(path), metadata["model"], metadata["diffusion"], tensors, metadata)


def load_pretrained(name: str | Path) -> PretrainedWeights:
    """Read the weights ``name`` names (cached: estimators built in a loop read the file once)."""
    path = weights_path(name).resolve()
    return _read(path, path.stat().st_mtime)
