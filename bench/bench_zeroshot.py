"""Zero-shot imputation on ETTh1 under IBM TSPulse's protocol: diffimpute vs in-window linear interpolation.

Protocol (TSPulse, arXiv 2505.13033): every column is z-scored with the mean and std of hours
[0, 8640); the test windows are the 512-hour windows ``[t - 511, t]`` ending at each hour ``t`` of
[11520, 14400), every ``--every``-th one (default 64: 45 windows). Per window and channel a mask
hides a fraction ``r`` of the 512 cells: ``block`` hides ``int(64 r)`` of the window's 64 aligned
8-hour patches; ``hybrid`` hides ``int(4 r / 0.125)`` aligned patches plus single hours until
``int(512 r)`` cells are hidden. The score is the MSE at the hidden cells, in z-scored units.

Methods: ``linear`` (interpolation within each window and channel, ends held at the nearest
observed value); ``zero-shot`` (``DiffusionImputer.from_pretrained``, never sees ETTh1);
``fine-tuned`` (the pretrained model fitted on the scaled hours [0, 8640) for ``--budget`` s);
``scratch`` (``pretrained=None``, the same fit). Point estimate: the median of the draws. TSPulse's
published zero-shot MSE is printed beside them for reference.

    # from the repository root
    OMP_NUM_THREADS=1 python bench/bench_zeroshot.py --quick                  # smoke test, seconds
    OMP_NUM_THREADS=1 python bench/bench_zeroshot.py --methods linear --ratios 0.125,0.5
    OMP_NUM_THREADS=1 python bench/bench_zeroshot.py --seeds 0 1 2            # every method
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import shared_data_dir  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WINDOW = 512
PATCH = 8
TRAIN_HOURS = (0, 8640)
TEST_HOURS = (11520, 14400)
MaskKind = Literal["block", "hybrid"]
MASK_KINDS: tuple[MaskKind, ...] = ("block", "hybrid")
METHODS = ("linear", "zero-shot", "fine-tuned", "scratch")
# TSPulse's zero-shot MSE on ETTh1 (Ekambaram et al., "TSPulse: Dual Space Tiny Pre-Trained Models
# for Rapid Time-Series Analysis", arXiv 2505.13033, zero-shot imputation results); NaN elsewhere.
TSPULSE = {("hybrid", 0.125): 0.146, ("block", 0.125): 0.209}


# ---------------------------------------------------------------------------------------------
# data and masks
# ---------------------------------------------------------------------------------------------


def load_scaled() -> np.ndarray:
    """ETTh1's 7 numeric columns as ``float64 (hours, features)``, z-scored with train-hour statistics."""
    frame = pd.read_csv(shared_data_dir() / "ett" / "ETTh1.csv")
    values = frame.drop(columns="date").to_numpy(dtype=np.float64)
    train = values[TRAIN_HOURS[0] : TRAIN_HOURS[1]]
    return (values - train.mean(axis=0)) / train.std(axis=0)


def test_windows(scaled: np.ndarray, every: int) -> np.ndarray:
    """``(windows, 512, features)``: the windows ending at every ``every``-th test hour."""
    ends = np.arange(TEST_HOURS[0], TEST_HOURS[1], every)
    return np.stack([scaled[t - WINDOW + 1 : t + 1] for t in ends])


def simulate(kind: MaskKind, ratio: float, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Boolean ``(windows, 512, features)``, True where hidden: ``int(512 ratio)`` cells per window and channel."""
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask {kind!r}; valid masks are {MASK_KINDS}")
    n_windows, length, n_features = shape
    n_patches = length // PATCH
    patches = int(n_patches * ratio) if kind == "block" else int(4 * ratio / 0.125)
    hidden = np.zeros(shape, dtype=bool)
    for w in range(n_windows):
        for c in range(n_features):
            chosen = rng.choice(n_patches, patches, replace=False)
            hidden[w, (chosen[:, None] * PATCH + np.arange(PATCH)).ravel(), c] = True
            if kind == "hybrid":
                free = np.flatnonzero(~hidden[w, :, c])
                hidden[w, rng.choice(free, int(length * ratio) - patches * PATCH, replace=False), c] = True
    return hidden


def masks_for(seed: int, ratios: list[float], shape: tuple[int, int, int]) -> dict[tuple[str, float], np.ndarray]:
    """One mask per (kind, ratio), each from its own stream of ``seed``: the same whichever others are asked for."""
    return {(kind, r): simulate(kind, r, shape, np.random.default_rng([seed, k, round(r * 1000)]))
            for k, kind in enumerate(MASK_KINDS) for r in ratios}


# ---------------------------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------------------------


def linear_fill(gappy: np.ndarray) -> np.ndarray:
    """Interpolate each window's channel from its observed cells; before the first / after the last, hold it."""
    filled = gappy.copy()
    steps = np.arange(gappy.shape[1])
    for w in range(gappy.shape[0]):
        for c in range(gappy.shape[2]):
            observed = ~np.isnan(gappy[w, :, c])
            filled[w, :, c] = np.interp(steps, steps[observed], gappy[w, observed, c])
    return filled


def check_api(methods: list[str]) -> None:
    """Stop before any work when the installed diffimpute lacks what a chosen method needs."""
    if methods == ["linear"]:
        return
    from diffimpute import DiffusionImputer

    if "zero-shot" in methods and not hasattr(DiffusionImputer, "from_pretrained"):
        raise SystemExit("zero-shot needs DiffusionImputer.from_pretrained, which this diffimpute does not have; "
                         "install a version with pretrained weights or run --methods linear")
    wanted = sorted({"fine-tuned", "scratch"} & set(methods))
    if wanted and "pretrained" not in inspect.signature(DiffusionImputer.__init__).parameters:
        raise SystemExit(f"{', '.join(wanted)} need DiffusionImputer(pretrained=...), which this diffimpute does "
                         "not have; without it both would train from scratch. Run --methods linear instead")


def build(method: str, seed: int, train: np.ndarray, budget: float):
    """The imputer for ``method`` (fitted unless zero-shot) and the seconds it took to get it."""
    from diffimpute import DiffusionImputer

    started = time.perf_counter()
    if method == "zero-shot":
        model = DiffusionImputer.from_pretrained(window=WINDOW, random_state=seed, verbose=False)
    else:
        start = {"pretrained": None} if method == "scratch" else {}
        model = DiffusionImputer(window=WINDOW, time_budget=budget, random_state=seed, verbose=False, **start)
        model.fit(train)
    return model, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def summarize(rows: list[dict], ratios: list[float]) -> pd.DataFrame:
    """Mean over seeds per (mask, ratio, method), TSPulse's figures, and each MSE over linear's."""
    runs = pd.DataFrame(rows)
    summary = runs.groupby(["mask", "ratio", "method"], sort=False).agg(
        seeds=("seed", "nunique"), windows=("windows", "first"), mse=("mse", "mean"), mse_std=("mse", "std"),
        fit_s=("fit_s", "mean"), impute_s=("impute_s", "mean"),
    ).reset_index()
    published = pd.DataFrame([{"mask": kind, "ratio": r, "method": "tspulse", "seeds": 0,
                               "mse": TSPULSE.get((kind, r), np.nan)} for kind in MASK_KINDS for r in ratios])
    summary = pd.concat([summary, published], ignore_index=True)
    linear = summary[summary.method == "linear"].set_index(["mask", "ratio"]).mse.rename("linear_mse")
    summary["vs_linear"] = summary.mse / summary.join(linear, on=["mask", "ratio"]).linear_mse
    order = {m: i for i, m in enumerate((*METHODS, "tspulse"))}
    return summary.sort_values(["mask", "ratio", "method"], key=lambda s: s.map(order) if s.name == "method" else s,
                               ignore_index=True)


def print_tables(summary: pd.DataFrame) -> None:
    columns = ["method", "seeds", "mse", "mse_std", "vs_linear", "fit_s", "impute_s"]
    for (kind, ratio), part in summary.groupby(["mask", "ratio"], sort=False):
        windows = part.windows.dropna()
        print(f"\n{kind} r={ratio:g} ({int(windows.iloc[0]) if len(windows) else '?'} windows of {WINDOW} hours)")
        print(part[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--ratios", default="0.125,0.5", help="comma-separated fractions of each window to hide")
    parser.add_argument("--every", type=int, default=64, help="take every n-th window ending in the test hours")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds of fine-tuned and scratch")
    parser.add_argument("--n-samples", type=int, default=None, help="draws per imputation (default: the model's)")
    parser.add_argument("--quick", action="store_true", help="smoke test: --every 256 --ratios 0.125 --methods linear")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    args = parser.parse_args()
    if args.quick:
        args.every, args.ratios, args.methods = 256, "0.125", "linear"
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; valid methods are {', '.join(METHODS)}")
    ratios = [float(r) for r in args.ratios.split(",")]
    if not all(0 < r < 1 for r in ratios):
        parser.error(f"ratios must lie strictly between 0 and 1, got {ratios}")
    if args.every < 1:
        parser.error(f"--every must be a positive number of windows, got {args.every}")
    check_api(methods)

    scaled = load_scaled()
    truth = test_windows(scaled, args.every)
    train = scaled[TRAIN_HOURS[0] : TRAIN_HOURS[1]]
    out = RESULTS / f"zeroshot{args.tag}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for seed in args.seeds:
        masks = masks_for(seed, ratios, truth.shape)
        for method in methods:
            model, fit_s = (None, 0.0) if method == "linear" else build(method, seed, train, args.budget)
            for (kind, ratio), hidden in masks.items():
                gappy = np.where(hidden, np.nan, truth)
                started = time.perf_counter()
                if model is None:
                    filled = linear_fill(gappy)
                else:
                    filled = model.impute(gappy, n_samples=args.n_samples, seed=seed).median()
                impute_s = time.perf_counter() - started
                rows.append({"seed": seed, "mask": kind, "ratio": ratio, "method": method, "windows": len(truth),
                             "mse": float(np.mean((filled[hidden] - truth[hidden]) ** 2)),
                             "fit_s": fit_s, "impute_s": impute_s})
                print(rows[-1], flush=True)
            summarize(rows, ratios).to_csv(out, index=False)  # after every method, so a stopped run keeps its figures
    print_tables(summarize(rows, ratios))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
