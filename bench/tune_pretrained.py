"""Choose the pretrained imputer's defaults on validation data, never on the zero-shot test (ETT).

Beijing PM2.5's validation years (the bench's chronological 60/20/20 split; pretraining saw only
the train years) under the TSPulse protocol of ``bench_zeroshot.py``: 512-hour windows, block and
hybrid masks at r = 0.125, MSE at hidden cells next to in-window linear interpolation. Settings
compared: the window the zero-shot imputer reads (128, 256, 512), and, fine-tuning on the train
years for the default step budget, the training targets (``random`` vs ``gaps``) and the
learning rate.

    OMP_NUM_THREADS=2 python bench/tune_pretrained.py --part zero-shot
    OMP_NUM_THREADS=2 python bench/tune_pretrained.py --part fine-tune
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_zeroshot import WINDOW, linear_fill, masks_for  # noqa: E402
from datasets import BEIJING_NUMERIC_COLUMNS, load_beijing_pm25  # noqa: E402


def beijing() -> tuple[np.ndarray, np.ndarray]:
    """Train hours and validation windows ``(windows, 512, 7)``, z-scored with train statistics."""
    frames = load_beijing_pm25()["frames"]
    train = frames["train"][BEIJING_NUMERIC_COLUMNS].to_numpy(np.float64)
    val = frames["val"][BEIJING_NUMERIC_COLUMNS].to_numpy(np.float64)
    mean, std = np.nanmean(train, axis=0), np.nanstd(train, axis=0)
    train, val = (train - mean) / std, (val - mean) / std
    windows = np.stack([val[s:s + WINDOW] for s in np.arange(0, len(val) - WINDOW, 192)])
    return train, windows[(~np.isnan(windows)).sum(axis=1).min(axis=1) > WINDOW // 2]  # no channel mostly empty


def score(model, truth: np.ndarray, masks: dict, seed: int) -> dict[str, float]:
    """MSE at the hidden cells that were observed (PM2.5 has gaps of its own), per mask kind."""
    scores = {}
    for (kind, _), hidden in masks.items():
        hidden = hidden & ~np.isnan(truth)
        gappy = np.where(hidden, np.nan, truth)
        filled = linear_fill(gappy) if model is None else model.impute(gappy, seed=seed).median()
        scores[kind] = float(np.mean((filled[hidden] - truth[hidden]) ** 2))
    return scores


def main() -> None:
    from diffimpute import DiffusionImputer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["zero-shot", "fine-tune"], required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, truth = beijing()
    masks = masks_for(args.seed, [0.125], truth.shape)
    linear = score(None, truth, masks, args.seed)
    print(f"{len(truth)} windows; linear MSE {linear}")
    if args.part == "zero-shot":
        settings = {f"window={w}": DiffusionImputer.from_pretrained(window=w, random_state=args.seed, verbose=False)
                    for w in (128, 256, 512)}
    else:
        settings = {f"targets={t} lr={lr}": DiffusionImputer(target_strategy=t, learning_rate=lr, time_budget=None,
                                                             random_state=args.seed, verbose=False)
                    for t in ("random", "gaps") for lr in (3e-4, 1e-3)}
    for name, model in settings.items():
        started = time.perf_counter()
        if args.part == "fine-tune":
            model.fit(train)
        result = score(model, truth, masks, args.seed)
        ratios = {kind: round(result[kind] / linear[kind], 3) for kind in result}
        print(f"{name}: MSE {result} vs linear {ratios} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
