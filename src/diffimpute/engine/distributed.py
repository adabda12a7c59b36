"""Training on several processes at once (``torchrun``): one process per device, each computing its
share of every batch, gradients averaged by ``DistributedDataParallel``.

torchrun tells each process its place through the environment (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); ``init_from_env`` joins the process group (gloo on
the CPU, NCCL on CUDA). Without a group every function here is the single-process case, so the
trainer has one code path.

Two rules keep a run on N ranks the run on one rank with the same global batch:

- Every rank holds the whole global batch and draws its randomness (targets, diffusion steps,
  noise) from the same seeded generator, as one rank would; a loss function then computes the
  network on its ``Shard`` of the rows only, and divides by the global batch's count of scored
  cells (``Shard.mean``), so that DDP's mean of the ranks' gradients is the global gradient.
- Decisions that read a clock or a validation score are taken on rank 0 and broadcast
  (``from_main``), so every rank makes the same ones and none waits forever on a collective that
  another rank skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Shard:
    """The rows of a global batch that this process computes, and the factor that makes DDP's mean
    over ranks of ``factor * local sum / global count`` the global mean.

    ``rows`` is a contiguous slice; a rank with no rows of a batch smaller than the world computes
    one placeholder row with ``factor`` 0, so it still takes part in the gradient all-reduce.
    """

    rows: slice
    factor: float

    def mean(self, local_sum: torch.Tensor, global_count: torch.Tensor | float) -> torch.Tensor:
        """This rank's part of ``sum over the global batch / global_count`` (count floored at 1)."""
        count = global_count.clamp(min=1.0) if isinstance(global_count, torch.Tensor) else max(global_count, 1.0)
        return local_sum * self.factor / count


WHOLE = Shard(slice(None), 1.0)  # one process: every row, plain mean


def shard_of(n_rows: int, rank: int, world: int) -> Shard:
    """Rank ``rank``'s contiguous share of ``n_rows`` rows; shares differ in size by at most one."""
    if world == 1:
        return WHOLE
    base, extra = divmod(n_rows, world)
    start = rank * base + min(rank, extra)
    stop = start + base + (rank < extra)
    if start == stop:
        return Shard(slice(0, 1), 0.0)
    return Shard(slice(start, stop), float(world))


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher that sets ``WORLD_SIZE``) started several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> None:
    """Join the process group torchrun described in the environment: NCCL when training on CUDA
    (each process on ``cuda:LOCAL_RANK``), gloo on the CPU. Nothing to do for one process."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def close() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _collective_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def from_main(value: float, device: torch.device | str) -> float:
    """Rank 0's ``value`` on every rank (the value itself without a process group)."""
    if rank_and_world()[1] == 1:
        return value
    shared = torch.tensor([value], dtype=torch.float64, device=_collective_device(device))
    dist.broadcast(shared, src=0)
    return float(shared.item())


def all_sum(value: float, device: torch.device | str) -> float:
    """The sum of ``value`` over the ranks (the value itself without a process group)."""
    if rank_and_world()[1] == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_collective_device(device))
    dist.all_reduce(total)
    return float(total.item())


def wrap(module: nn.Module, device: torch.device | str) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` under a process group (which copies rank 0's
    weights to every rank), unchanged otherwise."""
    if rank_and_world()[1] == 1:
        return module
    device = _collective_device(device)
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
