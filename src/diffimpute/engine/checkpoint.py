"""Model files and training checkpoints: tensors in safetensors, everything else as JSON in the
same file's header.

Nothing is pickled, so loading a file from an untrusted source cannot execute code. Files are
written to a temporary name and renamed, so a crash never leaves a half-written model.

A training checkpoint (``engine.trainer.train`` with a ``Checkpointing``) is such a file too: the
loop's tensors (weights, optimiser moments, generator states) as safetensors, its progress and a
fingerprint of the run in the header, so that a checkpoint of another run is refused by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from diffimpute.io.files import atomic_write_bytes

FORMAT_VERSION = 1
_METADATA_KEY = "diffimpute"
_TRAINING_KIND = "training checkpoint"


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict) -> None:
    """Write ``tensors`` and JSON-serialisable ``metadata`` atomically to ``path``."""
    header = json.dumps({"format_version": FORMAT_VERSION, **metadata})
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    atomic_write_bytes(Path(path), save(contiguous, metadata={_METADATA_KEY: header}))


def load_checkpoint(path: str | Path, *, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a model file; any damage becomes a ``ValueError`` that says what to do.

    ``tensors=False`` reads only the header (e.g. to learn which estimator saved the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = (handle.metadata() or {}).get(_METADATA_KEY)
            weights = {name: handle.get_tensor(name) for name in handle.keys()} if tensors else {}
    except (SafetensorError, OSError, RuntimeError) as error:
        raise ValueError(
            f"{path} is not a readable diffimpute model file (corrupted or truncated?): {error}; "
            "re-create it with .save() or `diffimpute fit`"
        ) from None
    if header is None:
        raise ValueError(f"{path} is a safetensors file but not a diffimpute model (no diffimpute header)")
    try:
        metadata = json.loads(header)
    except json.JSONDecodeError:
        raise ValueError(f"{path} has a damaged diffimpute header; re-create the model file") from None
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses model format version {version}, newer than this diffimpute supports "
            f"({FORMAT_VERSION}); upgrade diffimpute (pip install -U diffimpute)"
        )
    return weights, metadata


# ------------------------------------------------------------------------- training checkpoints


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often training saves what it needs to continue after a crash or a kill.

    path: the checkpoint file (written atomically, by rank 0 only under torchrun).
    every_epochs: save after every this many epochs (None: not by epochs).
    every_seconds: save once this many seconds of training have passed since the last save, checked
        after every batch (None: not by time). The end of training always saves.
    key: the caller's identity of the run (e.g. an estimator's parameters as JSON); a checkpoint
        whose key, training settings, seed, network or data differ is refused.
    """

    path: str | Path
    every_epochs: int | None = None
    every_seconds: float | None = 60.0
    key: str = ""

    def __post_init__(self) -> None:
        if self.every_epochs is not None and (not isinstance(self.every_epochs, int) or self.every_epochs < 1):
            raise ValueError(f"every_epochs must be a positive whole number or None, got {self.every_epochs!r}")
        if self.every_seconds is not None and not self.every_seconds > 0:
            raise ValueError(f"every_seconds must be a positive number or None, got {self.every_seconds!r}")

    def beside(self, suffix: str) -> Checkpointing:
        """The same plan for another stage of one fit, in a file named ``<path><suffix>``."""
        path = Path(self.path)
        return dataclasses.replace(self, path=path.with_name(path.name + suffix))


def _digest(*parts: bytes | str) -> str:
    hashed = hashlib.blake2b(digest_size=16)
    for part in parts:
        hashed.update(part.encode() if isinstance(part, str) else part)
    return hashed.hexdigest()


def run_fingerprint(settings: dict, model: torch.nn.Module, tensors: list[torch.Tensor], key: str) -> dict[str, str]:
    """Short digests of what makes two training runs the same run: its settings (JSON-able), the
    network's parameter names and shapes, the training data ``tensors`` and the caller's ``key``."""
    layout = [(name, list(t.shape), str(t.dtype)) for name, t in model.state_dict().items()]
    data = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        data.update(f"{tuple(tensor.shape)} {tensor.dtype}".encode())
        data.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).data)
    return {"training settings": _digest(json.dumps(settings, sort_keys=True)), "network": _digest(json.dumps(layout)),
            "data": data.hexdigest(), "parameters": _digest(key)}


def save_training_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write a training checkpoint: ``state`` (JSON-able, with its ``fingerprint``) and ``tensors``."""
    save_checkpoint(path, tensors, {"kind": _TRAINING_KIND, **state})


def load_training_checkpoint(path: str | Path, fingerprint: dict[str, str]) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a training checkpoint, refusing one that is not, or that another run wrote."""
    tensors, state = load_checkpoint(path)
    if state.get("kind") != _TRAINING_KIND:
        raise ValueError(f"{path} is not a training checkpoint (a model file?); pass the checkpoint that the "
                         "interrupted run wrote, or resume=False to start afresh")
    written = state.get("fingerprint", {})
    differ = [name for name in fingerprint if written.get(name) != fingerprint[name]]
    if differ:
        raise ValueError(
            f"{path} was written by another training run (its {', '.join(differ)} differ from this one's); "
            "resume with the same data, parameters and seed, or delete the checkpoint (or pass resume=False) "
            "to start afresh"
        )
    return tensors, state


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """An optimiser's state as ``{"<param index>.<name>": tensor}`` and its JSON-able parameter groups."""
    saved = optimizer.state_dict()
    tensors = {}
    for index, entry in saved["state"].items():
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimiser state {name!r} is not a tensor; only tensor state can be checkpointed")
            tensors[f"{index}.{name}"] = value
    return tensors, saved["param_groups"]


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    """Inverse of ``optimizer_tensors``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{**group, "betas": tuple(group["betas"])} if "betas" in group else group for group in groups]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
