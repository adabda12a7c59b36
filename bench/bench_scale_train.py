"""Training at scale on this machine: windows per second on 1 vs 2 gloo ranks at the same global
batch, and what a kill costs a fit that checkpoints and resumes.

Part 1 fits the default ``DiffusionImputer`` on ETTh1's training rows for a fixed number of epochs
(no time budget, no held-out cells, so nothing but training is timed) in three set-ups: one
process on one thread, one process on two threads, two gloo ranks on one thread each (every rank
takes half of each global batch). ``windows/s`` = windows trained / seconds of training.

Part 2 runs ``python -m diffimpute fit`` on the same rows with a checkpoint every epoch, kills it
with SIGKILL once half the epochs are saved, relaunches it with ``--resume`` and times the
relaunch until the resumed loop starts training (its "resuming from" log line), then compares the
total wall time and the model with an uninterrupted fit.

    OMP_NUM_THREADS=1 flock /work/bench.lock python bench/bench_scale_train.py --epochs 3 --resume-epochs 6
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import ETT_COLUMNS, load_etth1  # noqa: E402

from diffimpute import DiffusionImputer  # noqa: E402
from diffimpute.engine.checkpoint import load_checkpoint  # noqa: E402

_SOURCE = str(Path(__file__).resolve().parents[1] / "src")


def _train_frame():
    return load_etth1()["frames"]["train"][ETT_COLUMNS]


# ---------------------------------------------------------------------------- part 1: throughput


def _fit_worker(rank: int, world: int, threads: int, batch: int, epochs: int, rendezvous: str, output: str) -> None:
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    frame = _train_frame()
    imputer = DiffusionImputer(max_epochs=epochs, batch_size=batch, time_budget=None, validation_fraction=0.0,
                               device="cpu", verbose=False).fit(frame)
    n_windows = (len(frame) - imputer.window_) // max(1, imputer.window_ // 4) + 1
    if rank == 0:
        seconds = imputer.history_.seconds
        Path(output).write_text(json.dumps({"seconds": seconds, "windows": n_windows * epochs,
                                            "loss": imputer.history_.train_loss}))
    if world > 1:
        dist.destroy_process_group()


def throughput(world: int, threads: int, batch: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.json"
        mp.spawn(_fit_worker, args=(world, threads, batch, epochs, str(Path(folder) / "rendezvous"), str(output)),
                 nprocs=world)
        result = json.loads(output.read_text())
    return {**result, "per_second": result["windows"] / result["seconds"]}


# ---------------------------------------------------------------------------- part 2: resume


def _launch(args: list[str], folder: Path) -> tuple[subprocess.Popen, threading.Thread, list[tuple[float, str]]]:
    """Start ``python -m diffimpute`` and collect its stderr lines with their arrival times (until
    the reading thread ends)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SOURCE, os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "diffimpute", "--threads", "1", *args], cwd=folder, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in process.stderr:
            lines.append((time.perf_counter(), line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return process, reader, lines


def resume_costs(epochs: int, folder: Path) -> dict:
    _train_frame().to_csv(folder / "etth1.csv")
    common = ["fit", "etth1.csv", "--index-col", "date", "--epochs", str(epochs), "--time-budget", "100000",
              "--checkpoint-every", "1"]
    started = time.perf_counter()
    whole, _, _ = _launch([*common, "-o", "whole.safetensors"], folder)
    whole.wait()
    uninterrupted = time.perf_counter() - started

    started = time.perf_counter()
    killed, _, _ = _launch([*common, "-o", "resumed.safetensors"], folder)
    checkpoint = folder / "resumed.safetensors.ckpt"
    while True:
        if checkpoint.exists() and load_checkpoint(checkpoint, tensors=False)[1]["position"]["epoch"] >= epochs // 2:
            break
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed_after = time.perf_counter() - started
    saved_epoch = load_checkpoint(checkpoint, tensors=False)[1]["position"]["epoch"]

    relaunched = time.perf_counter()
    resumed, reader, lines = _launch([*common, "-o", "resumed.safetensors", "--resume"], folder)
    resumed.wait()
    finished = time.perf_counter()
    reader.join()
    resuming = next(t for t, line in lines if "resuming from" in line) - relaunched

    first, second = DiffusionImputer.load(folder / "whole.safetensors"), DiffusionImputer.load(folder / "resumed.safetensors")
    same = all(torch.equal(second.model_.state_dict()[k], v) for k, v in first.model_.state_dict().items())
    return {"uninterrupted": uninterrupted, "killed_after": killed_after, "saved_epoch": saved_epoch,
            "to_resume": resuming, "resumed_run": finished - relaunched, "killed_plus_resumed": killed_after + finished - relaunched,
            "same_weights": same, "val_whole": first.validation_["mae"], "val_resumed": second.validation_["mae"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput run")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64], help="global batch sizes")
    parser.add_argument("--resume-epochs", type=int, default=6, help="epochs of the killed and resumed fit")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print("\nTraining throughput, default DiffusionImputer on ETTh1 train (7 features, window 48), "
          f"{args.epochs} epochs")
    print(f"{'global batch':>12} {'1 rank x 1 thread':>18} {'1 rank x 2 threads':>19} {'2 ranks x 1 thread':>19} "
          f"{'2r/1r1t':>8} {'2r/1r2t':>8}")
    for batch in args.batches:
        one = throughput(1, 1, batch, args.epochs)
        both = throughput(1, 2, batch, args.epochs)
        two = throughput(2, 1, batch, args.epochs)
        print(f"{batch:>12} {one['per_second']:>14.1f} w/s {both['per_second']:>15.1f} w/s "
              f"{two['per_second']:>15.1f} w/s {two['per_second'] / one['per_second']:>8.2f} "
              f"{two['per_second'] / both['per_second']:>8.2f}")
        gaps = ", ".join(f"{abs(a - b):.1e}" for a, b in zip(one["loss"], two["loss"]))
        print(f"{'':>12} gap between the 1-rank and 2-rank mean loss of each epoch: {gaps}")

    with tempfile.TemporaryDirectory() as folder:
        costs = resume_costs(args.resume_epochs, Path(folder))
    print(f"\nKill and resume, `python -m diffimpute fit` ({args.resume_epochs} epochs, checkpoint every epoch, "
          "1 thread)")
    print(f"  uninterrupted fit:                 {costs['uninterrupted']:.1f} s wall")
    print(f"  killed after:                      {costs['killed_after']:.1f} s (checkpoint at epoch {costs['saved_epoch']})")
    print(f"  relaunch to resumed training:      {costs['to_resume']:.1f} s")
    print(f"  resumed fit:                       {costs['resumed_run']:.1f} s wall")
    print(f"  killed + resumed:                  {costs['killed_plus_resumed']:.1f} s wall "
          f"({costs['killed_plus_resumed'] / costs['uninterrupted']:.2f}x uninterrupted)")
    print(f"  same weights as uninterrupted:     {costs['same_weights']}; held-out MAE "
          f"{costs['val_resumed']:.4f} vs {costs['val_whole']:.4f}")


if __name__ == "__main__":
    main()
