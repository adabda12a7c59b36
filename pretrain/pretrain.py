"""Pretrain the shipped imputer's denoiser (``nn.patch.PatchDenoiser``) on synthetic and real series.

Seeded and resumable: step ``s`` draws its data, masks and noise from ``(seed, s)`` alone, and the
run directory holds the last checkpoint (weights, EMA weights, optimiser moments, step), so a run
killed and started again with the same command goes on where it stopped. Every ``--log-every``
steps a line goes to ``log.jsonl``; every ``--validate-every`` steps the EMA weights impute fixed
validation windows (synthetic, and Beijing PM2.5's validation years, never ETT) and their MSE
at hidden cells is logged beside that of linear interpolation.

    nohup python pretrain/pretrain.py --run-dir ../pretrain-run > ../pretrain-run.out 2>&1 &
    python pretrain/pretrain.py --run-dir ../pretrain-run --export src/diffimpute/weights/imputer.safetensors

The diffusion settings are the ``DiffusionImputer`` defaults (50 quadratic steps from 1e-4 to
0.5, velocity prediction), so that the shipped weights fit the estimator as it is built.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from masks import window_targets
from real import load_real_series, real_batch
from synthetic import LatentBank, synthetic_batch

from diffimpute.data.batch import Windows
from diffimpute.diffusion.samplers import make_sampler
from diffimpute.diffusion.schedules import NoiseSchedule
from diffimpute.engine.checkpoint import (
    load_checkpoint,
    load_optimizer,
    optimizer_tensors,
    save_checkpoint,
)
from diffimpute.engine.denoising import denoising_loss
from diffimpute.engine.sampling import sample
from diffimpute.nn.patch import PatchDenoiser

MODEL = {"channels": 64, "n_layers": 4, "n_heads": 4, "ff_dim": 128, "patch": 8, "head_layers": 2, "d_step": 64,
         "max_length": 512, "residual_ratio": 0.5}
DIFFUSION = {"diffusion_steps": 50, "schedule": "quad", "beta_start": 1e-4, "beta_end": 0.5, "prediction": "v"}
LENGTHS, LENGTH_WEIGHTS = (64, 128, 256, 512), (0.2, 0.3, 0.25, 0.25)
SYNTHETIC_SHARE = 0.7
DRAWS_PER_WINDOW = 4  # noise levels per window: the encoder runs once, the cheap head four times
WARMUP = 300
RESIDUAL_LIMIT = 10.0


# ------------------------------------------------------------------------- data


def training_batch(step: int, args, bank: LatentBank, sources) -> Windows:
    """The windows and observed cells of step ``step``, drawn from ``(seed, step)`` alone."""
    rng = np.random.default_rng([args.seed, step])
    length = int(rng.choice(LENGTHS, p=LENGTH_WEIGHTS))
    if not sources or rng.random() < SYNTHETIC_SHARE:
        n_features = int(rng.integers(1, 11))
        n = max(2, args.tokens // (n_features * math.ceil(length / 8)))
        values = synthetic_batch(bank, n, n_features, length, rng)
    else:
        source = sources[rng.integers(0, len(sources))]
        length = min(length, source.length)
        n_features = int(rng.integers(1, min(source.values.shape[2], 12) + 1))
        n = max(2, args.tokens // (n_features * math.ceil(length / 8)))
        values = real_batch(source, n, n_features, length, rng)
    observed = np.isfinite(values)
    keep = observed.reshape(len(values), -1).sum(1) >= 4
    values, observed = values[keep], observed[keep]
    return _windows(values, observed), window_targets(observed, rng)


def _windows(values: np.ndarray, observed: np.ndarray) -> Windows:
    n, _, length = values.shape
    return Windows(values=torch.from_numpy(np.where(observed, values, 0.0).astype(np.float32)),
                   observed=torch.from_numpy(observed),
                   positions=torch.arange(length, dtype=torch.float32).expand(n, length).contiguous())


# ------------------------------------------------------------------------- validation


def validation_sets(bank: LatentBank, seed: int) -> dict[str, tuple[Windows, torch.Tensor]]:
    """Fixed windows with TSPulse-style hybrid masks (8-step patches plus points, 12.5 %)."""
    rng = np.random.default_rng([seed, 10**9])
    sets = {"synthetic": synthetic_batch(bank, 48, 5, 256, rng)}
    try:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
        from datasets import BEIJING_NUMERIC_COLUMNS, load_beijing_pm25

        frame = load_beijing_pm25()["frames"]["val"][BEIJING_NUMERIC_COLUMNS].to_numpy(np.float64)
        frame = (frame - np.nanmean(frame, 0)) / np.nanstd(frame, 0)
        starts = np.arange(0, len(frame) - 256, 160)[:48]
        sets["beijing-val"] = np.stack([frame[s:s + 256].T for s in starts]).astype(np.float32)
    except (FileNotFoundError, OSError) as error:
        print(f"no Beijing validation: {error}")
    out = {}
    for name, values in sets.items():
        observed = np.isfinite(values)
        hidden = np.zeros_like(observed)
        n, n_features, length = values.shape
        for i in range(n):
            for c in range(n_features):
                for p in rng.choice(length // 8, 4, replace=False):
                    hidden[i, c, p * 8:p * 8 + 8] = True
                hidden[i, c, rng.choice(length, length // 16, replace=False)] = True
        out[name] = (_windows(values, observed), torch.from_numpy(hidden & observed))
    return out


@torch.no_grad()
def validate(model: PatchDenoiser, sets, schedule: NoiseSchedule) -> dict[str, float]:
    """MSE at hidden cells of the median of 16 draws (10 DDIM steps), and its ratio to the guess's."""
    model.eval()
    scores = {}
    sampler = make_sampler(schedule, "ddim", 10, 1.0)
    for name, (windows, hidden) in sets.items():
        cond = windows.observed & ~hidden
        out = sample(model, sampler, windows, cond, 16, prediction=DIFFUSION["prediction"],
                     generator=torch.Generator().manual_seed(0))
        median = out.samples.median(dim=1).values
        mse = float(((median - windows.values) ** 2)[hidden].mean())
        linear = float(((out.guess - windows.values) ** 2)[hidden].mean())
        scores[f"{name}_mse"], scores[f"{name}_ratio"] = mse, mse / linear
    model.train()
    return scores


# ------------------------------------------------------------------------- run


def save_run(path: Path, model, ema, optimizer, step: int, seconds: float) -> None:
    moments, groups = optimizer_tensors(optimizer)
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()},
               **{f"ema.{k}": v for k, v in ema.state_dict().items()},
               **{f"optimizer.{k}": v for k, v in moments.items()}}
    save_checkpoint(path, tensors, {"step": step, "seconds": seconds, "optimizer_groups": groups})


def export(run_dir: Path, destination: Path) -> None:
    """Write the EMA weights and the model's settings to ``destination`` (the package's weights)."""
    tensors, state = load_checkpoint(run_dir / "checkpoint.safetensors")
    weights = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.") and "residual_scale" not in k}
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    validation = [entry for entry in log if "synthetic_mse" in entry and entry["step"] <= state["step"]]
    metadata = {"model": MODEL, "diffusion": DIFFUSION, "steps": state["step"], "seconds": state["seconds"],
                "validation": validation[-1] if validation else {}}
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(destination, weights, metadata)
    print(f"exported step {state['step']} ({state['seconds'] / 3600:.2f} h) to {destination}: {metadata['validation']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=6144, help="tokens (features x patches) per batch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--validate-every", type=int, default=500)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--export", type=Path, default=None, help="export the run's EMA weights here and stop")
    parser.add_argument("--init", type=Path, default=None,
                        help="a new run starts from these exported weights (e.g. the shipped ones) at step 0")
    args = parser.parse_args()
    if args.export is not None:
        export(args.run_dir, args.export)
        return
    torch.set_num_threads(args.threads)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    bank = LatentBank.build(2048, 8, args.seed, args.run_dir / "latent_bank.npy")
    sources = load_real_series()
    sets = validation_sets(bank, args.seed)
    schedule = NoiseSchedule(DIFFUSION["diffusion_steps"], DIFFUSION["schedule"], DIFFUSION["beta_start"],
                             DIFFUSION["beta_end"])
    torch.manual_seed(args.seed)
    model = PatchDenoiser(1, **MODEL)
    ema = PatchDenoiser(1, **MODEL).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, seconds = 0, 0.0
    checkpoint = args.run_dir / "checkpoint.safetensors"
    if checkpoint.is_file():
        tensors, state = load_checkpoint(checkpoint)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        load_optimizer(optimizer, {k[10:]: v for k, v in tensors.items() if k.startswith("optimizer.")},
                       state["optimizer_groups"])
        step, seconds = state["step"], state["seconds"]
        print(f"resuming at step {step} ({seconds / 3600:.2f} h trained)")
    elif args.init is not None:
        exported, _ = load_checkpoint(args.init)
        model.load_state_dict(exported, strict=False)  # the fitted residual_scale is not exported
        ema.load_state_dict(model.state_dict())
        print(f"starting from the weights in {args.init}")
    log = (args.run_dir / "log.jsonl").open("a")
    started, losses = time.perf_counter() - seconds, []
    model.train()
    while step < args.max_steps:
        batch, target = training_batch(step, args, bank, sources)
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([args.seed, step, 1]).generate_state(1)[0]))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / WARMUP)
        target_t = torch.from_numpy(target)
        # the estimator's objective, with several noise levels per window sharing one encoder pass
        loss = denoising_loss(model, schedule, batch, batch.observed & ~target_t, target_t, generator,
                              DIFFUSION["prediction"], draws=DRAWS_PER_WINDOW, residual_limit=RESIDUAL_LIMIT)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = min(args.ema, (1 + step) / (10 + step))
            for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
                e.copy_(decay * e + (1 - decay) * p) if e.is_floating_point() else e.copy_(p)
        losses.append(loss.item())
        step += 1
        seconds = time.perf_counter() - started
        if step % args.log_every == 0:
            log.write(json.dumps({"step": step, "loss": float(np.mean(losses)), "seconds": round(seconds, 1)}) + "\n")
            log.flush()
            losses = []
        if step % args.validate_every == 0:
            scores = validate(ema, sets, schedule)
            log.write(json.dumps({"step": step, "seconds": round(seconds, 1), **scores}) + "\n")
            log.flush()
            print(f"step {step} {seconds / 60:.1f} min: {scores}", flush=True)
        if step % args.save_every == 0:
            save_run(checkpoint, model, ema, optimizer, step, seconds)
    save_run(checkpoint, model, ema, optimizer, step, seconds)


if __name__ == "__main__":
    main()
