"""Distributed training: 2 gloo ranks train the model 1 rank trains with the same global batch,
for every estimator, and ``torchrun -m diffimpute fit`` writes one loadable model from rank 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch import nn

import diffimpute
from diffimpute import (
    DiffusionAugmenter,
    DiffusionImputer,
    ImageInpainter,
    ImDiffusionDetector,
    TabularImputer,
)
from diffimpute.engine.distributed import WHOLE, shard_of
from diffimpute.engine.trainer import TrainConfig, train
from tests.conftest import TINY, structured, with_gaps
from tests.test_trainer import _regression_loss, _windows

# 240 steps in windows of 16 every 4: 57 windows, so batches of 14 end with a batch of one window,
# which leaves rank 1 with no row of it (a placeholder row weighted 0).
_SERIES = {**TINY, "channels": 8, "max_epochs": 3, "batch_size": 14, "time_budget": None}


def _series() -> np.ndarray:
    return with_gaps(structured(), 0.2, seed=1)[0]


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    values = structured(120, 3, seed=3)
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    frame["kind"] = np.where(values[:, 0] > 0, "up", "down")
    return frame.mask(rng.random(frame.shape) < 0.15)


def _images() -> np.ndarray:
    """Smooth 8 x 8 images, a fifth of their pixels missing."""
    rng = np.random.default_rng(4)
    grid = np.linspace(0, 1, 8)
    images = np.sin(3 * grid[:, None] + rng.uniform(0, 3, (40, 1, 1))) * np.cos(2 * grid[None, :])
    return np.where(rng.random(images.shape) < 0.2, np.nan, images)


def _fits() -> dict[str, torch.Tensor]:
    """Every estimator trained through the one loop (``mix`` targets pair windows across the batch,
    the latent prior has a loss of its own, the detector's mask index, the augmenter's label
    dropout, the inpainter's UNet); weights and histories."""
    warnings.simplefilter("ignore")  # tiny models may not beat their guess, and say so
    table = _table()
    labelled = table[table["kind"].notna()]
    fitted = {
        "series": DiffusionImputer(**{**_SERIES, "target_strategy": "mix"}).fit(_series()),
        "latent": DiffusionImputer(**{**_SERIES, "guess": "latent", "prior_epochs": 2}).fit(_series()),
        "table": TabularImputer(channels=8, n_layers=1, n_heads=2, max_epochs=3, batch_size=10, time_budget=None,
                                device="cpu", verbose=False).fit(table),
        "detector": ImDiffusionDetector(window=16, stride=8, n_segments=4, channels=8, n_layers=1, n_heads=2,
                                        max_epochs=2, batch_size=7, sampler="ddim", sampling_steps=2,
                                        time_budget=None, device="cpu",
                                        verbose=False).fit(pd.DataFrame(structured(200, 3))),
        "augmenter": DiffusionAugmenter(hidden=16, n_layers=1, max_epochs=3, batch_size=10, time_budget=None,
                                        device="cpu", verbose=False).fit(labelled.drop(columns="kind"), labelled["kind"]),
        "images": ImageInpainter(guess="harmonic", channels=8, n_heads=2, diffusion_steps=20, max_epochs=2,
                                 batch_size=10, time_budget=None, device="cpu", verbose=False).fit(_images()),
    }
    out = {}
    for name, estimator in fitted.items():
        out |= {f"{name}.{key}": value.clone() for key, value in estimator.model_.state_dict().items()}
        out[f"{name}.train_loss"] = torch.tensor(estimator.history_.train_loss)
        out[f"{name}.val_score"] = torch.tensor(estimator.history_.val_score)
    return out


def _budgeted() -> dict:
    """A toy run stopped by its time budget, with mid-epoch checks: decisions read from a clock."""
    torch.manual_seed(0)
    probe = _windows(16).values[:, 0]
    history = train(nn.Linear(8, 8), _regression_loss, _windows(400),
                    TrainConfig(max_epochs=10**6, batch_size=2, time_budget=1.0, patience=10**6),
                    validate=lambda m: float(((m(probe) - 2 * probe) ** 2).mean()), progress=False)
    return {**history.to_dict(), "seconds": 0.0}


def _worker(rank: int, world: int, rendezvous: str, output: str) -> None:
    torch.set_num_threads(1)
    # Ranks that disagreed would wait for each other forever: a timeout turns that into a failure.
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    try:
        trained = _fits()
        if rank == 0:
            save_file(trained, output)
        Path(f"{output}.{rank}.json").write_text(json.dumps(_budgeted()))
    finally:
        dist.destroy_process_group()


def test_shards_cover_every_row_once_and_an_empty_share_weighs_nothing() -> None:
    for n in (1, 2, 5, 14):
        shards = [shard_of(n, rank, 3) for rank in range(3)]
        rows = [r for s in shards if s.factor for r in range(n)[s.rows]]
        assert sorted(rows) == list(range(n))
        assert all(s.factor in (0.0, 3.0) for s in shards)
    assert shard_of(1, 1, 2).factor == 0.0 and shard_of(7, 0, 1) is WHOLE


def test_two_gloo_ranks_train_what_one_rank_trains_with_the_same_global_batch(tmp_path: Path) -> None:
    one = _fits()
    output = tmp_path / "two.safetensors"
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(output)), nprocs=2)
    two = load_file(output)
    assert two.keys() == one.keys()
    for key, value in one.items():
        # Same draws and batches; only the order of float sums differs (each rank sums its half).
        # A UNet bias ahead of a GroupNorm has a true gradient of zero, so Adam turns those rounding
        # differences into steps of up to the learning rate (1e-3 there); sharding errors move
        # weights by many such steps.
        atol = 5e-4 if key.startswith("images.") and (key.endswith(".bias") or ".emb." in key) else 1e-5
        torch.testing.assert_close(two[key], value, rtol=1e-4, atol=atol, equal_nan=True, msg=key)  # NaN: no check
    trained = [k for k in one if k.endswith(".weight") and not torch.equal(one[k], two[k])]
    assert trained  # the ranks really took their own float paths: the test compares two computations
    # Under a time budget, rank 0's clock and scores decide for both: the same checks, the same stop.
    budgeted = [json.loads(Path(f"{output}.{rank}.json").read_text()) for rank in range(2)]
    assert budgeted[0] == budgeted[1] and budgeted[0]["stopped"] == "time_budget"


def test_torchrun_fit_writes_one_loadable_model_from_rank_zero(tmp_path: Path) -> None:
    values = structured(160, 3)
    values[np.random.default_rng(0).random(values.shape) < 0.1] = np.nan
    pd.DataFrame(values, columns=["a", "b", "c"]).to_csv(tmp_path / "tiny.csv", index=False)
    source = str(Path(diffimpute.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "diffimpute",
         "fit", "tiny.csv", "-o", "model.safetensors", "--window", "16", "--channels", "8", "--layers", "1",
         "--epochs", "2", "--batch-size", "8", "--steps", "2", "--device", "cpu", "--checkpoint-every", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained DiffusionImputer") == 1  # rank 1 stays quiet
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "tiny.csv"]  # checkpoint removed
    model = diffimpute.load(tmp_path / "model.safetensors")
    assert len(model.history_.train_loss) == 2
    assert not model.transform(pd.read_csv(tmp_path / "tiny.csv")).isna().any().any()


@pytest.mark.parametrize("world", [2, 3])
def test_a_loss_over_shards_adds_up_to_the_loss_over_the_batch(world: int) -> None:
    """``Shard.mean``: the ranks' parts, averaged as DDP averages gradients, are the global mean."""
    values = torch.randn(5, 4)
    weight = torch.rand(5, 4) < 0.5
    whole = (values**2 * weight).sum() / weight.sum()
    parts = []
    for rank in range(world):
        shard = shard_of(5, rank, world)
        parts.append(shard.mean((values[shard.rows] ** 2 * weight[shard.rows]).sum(), weight.sum()))
    torch.testing.assert_close(sum(parts) / world, whole)
