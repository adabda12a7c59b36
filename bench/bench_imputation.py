"""Side-by-side imputation benchmark: diffimpute vs linear interpolation vs PyPOTS SAITS and CSDI.

Same data, same masks, same test windows, same machine. Every model trains on the training split
(its natural missingness only) and imputes the *test* split under each mask; settings were chosen
on the validation split (``tune_imputer.py``), never here. Scores are on z-scored values at the
hidden cells. Two parts run as separate processes, one core each, so that they can run side by
side on a 2-core machine; ``--report`` merges them:

    OMP_NUM_THREADS=1 python bench/bench_imputation.py --part ours &
    OMP_NUM_THREADS=1 /work/bench-venv/bin/python bench/bench_imputation.py --part peers &
    wait; python bench/bench_imputation.py --report

``ours``: the default ``DiffusionImputer`` (its default 120 s time budget) on every seed, plus two
ablations on the first seed: ``csdi-objective`` (no guess, noise prediction, no calibration:
CSDI's objective in our engine) and ``lssdm`` (the latent prior as the guess). ``peers``: PyPOTS
1.5 SAITS (every seed) and CSDI (first seed; its 50-step sampling is slow on a CPU), each given
as many epochs as fill the same wall-clock training budget, measured from a one-epoch run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_split, masked_inputs, score, subsample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MAX_TEST = {"etth1": 24, "beijing": 24, "physionet": 12}


def test_windows(name: str, split: dict, seed: int) -> np.ndarray:
    return subsample(split["test"], MAX_TEST[name], np.random.default_rng(seed))


def run_ours(name: str, seed: int, args) -> list[dict]:
    from diffimpute import DiffusionImputer
    from diffimpute.baselines import make_baseline

    split = load_split(name, seed)
    truth = test_windows(name, split, seed)
    masked = masked_inputs(truth, seed)
    rows = []
    for mask_name, (gappy, hidden) in masked.items():
        started = time.perf_counter()
        # Fitted on the training split, so a feature a test patient never has gets its training mean.
        filled = make_baseline("linear").fit(split["train"]).transform(gappy)
        rows.append({"method": "linear", "mask": mask_name, **score(filled[None], truth, hidden), "fit_s": 0.0,
                     "impute_s": time.perf_counter() - started, "n_samples": 1})
    variants = {"diffimpute": {}}
    if seed == args.seeds[0]:
        variants["csdi-objective"] = {"guess": "none", "prediction": "epsilon", "calibrate": False}
        variants["lssdm"] = {"guess": "latent"}
    if args.methods:
        variants = {k: v for k, v in variants.items() if k in args.methods}
    for label, params in variants.items():
        started = time.perf_counter()
        model = DiffusionImputer(random_state=seed, verbose=False, **params).fit(split["train"])
        fit_s = time.perf_counter() - started
        for mask_name, (gappy, hidden) in masked.items():
            started = time.perf_counter()
            result = model.impute(gappy, n_samples=args.n_samples, seed=seed)
            rows.append({"method": label, "mask": mask_name, **score(result.samples, truth, hidden), "fit_s": fit_s,
                         "impute_s": time.perf_counter() - started, "n_samples": args.n_samples,
                         "epochs": len(model.history_.train_loss)})
            print(name, seed, rows[-1], flush=True)
    return rows


def _epochs_for(budget: float, one_epoch_seconds: float) -> int:
    return max(1, math.floor(budget / max(one_epoch_seconds, 1e-3)))


def run_peers(name: str, seed: int, args) -> list[dict]:
    from peers import run_pypots_csdi, run_pypots_saits

    split = load_split(name, seed)
    truth = test_windows(name, split, seed)
    masked = masked_inputs(truth, seed)
    inputs = [gappy for gappy, _ in masked.values()]
    common = {"batch_size": 32, "device": "cpu", "seed": seed}
    rows = []
    runners = [("pypots-saits", run_pypots_saits, {})]
    if seed == args.seeds[0]:
        runners.append(("pypots-csdi", run_pypots_csdi, {"n_samples": args.csdi_samples}))
    for label, runner, extra in runners:
        probe = runner(split["train"], None, [inputs[0][:1]], epochs=1, **common, **extra)
        epochs = _epochs_for(args.budget, probe["fit_seconds"])
        out = runner(split["train"], None, inputs, epochs=epochs, **common, **extra)
        for i, (mask_name, (_, hidden)) in enumerate(masked.items()):
            samples = out["samples"][i] if "samples" in out else out["imputation"][i][None]
            rows.append({"method": label, "mask": mask_name, **score(samples, truth, hidden),
                         "fit_s": out["fit_seconds"], "impute_s": out["impute_seconds"][i],
                         "n_samples": samples.shape[0], "epochs": epochs})
            print(name, seed, rows[-1], flush=True)
    return rows


def report(paths: list[Path]) -> None:
    table = pd.concat([pd.read_csv(p) for p in paths if p.exists()], ignore_index=True)
    # A part run in pieces repeats the linear rows; keep one row per cell.
    table = table.drop_duplicates(["dataset", "seed", "mask", "method"], keep="last")
    table["impute_s_per_sample"] = table.impute_s / table.n_samples
    summary = table.groupby(["dataset", "mask", "method"]).agg(
        seeds=("seed", "nunique"), mae=("mae", "mean"), mae_std=("mae", "std"), crps=("crps_q19", "mean"),
        crps_std=("crps_q19", "std"), coverage90=("coverage90", "mean"), fit_s=("fit_s", "mean"),
        impute_s=("impute_s", "mean"), impute_s_per_sample=("impute_s_per_sample", "mean"),
    ).reset_index()
    csdi = summary[summary.method == "pypots-csdi"].set_index(["dataset", "mask"])
    if not csdi.empty:
        joined = summary.join(csdi[["mae", "crps", "impute_s_per_sample"]].add_suffix("_csdi"), on=["dataset", "mask"])
        summary["mae_vs_csdi"] = joined.mae / joined.mae_csdi
        summary["crps_vs_csdi"] = joined.crps / joined.crps_csdi
        summary["speedup_per_sample_vs_csdi"] = joined.impute_s_per_sample_csdi / joined.impute_s_per_sample
    best_peer = summary[summary.method.isin(["linear", "pypots-saits", "pypots-csdi"])].groupby(["dataset", "mask"]).mae.min()
    summary["mae_vs_best_peer"] = summary.mae / summary.join(best_peer.rename("mae_best"), on=["dataset", "mask"]).mae_best
    summary.to_csv(RESULTS / "imputation_summary.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_rows", 200):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["ours", "peers"])
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--datasets", default="etth1,beijing,physionet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=120.0, help="peers' training seconds (ours: its default)")
    parser.add_argument("--n-samples", type=int, default=16)
    parser.add_argument("--csdi-samples", type=int, default=8)
    parser.add_argument("--methods", nargs="+", default=None, help="ours: run only these of our variants")
    parser.add_argument("--tag", default="", help="suffix of the results file, to run a part in pieces")
    args = parser.parse_args()
    if args.report:
        report(sorted(RESULTS.glob("imputation_ours*.csv")) + [RESULTS / "imputation_peers.csv"])
        return
    torch.set_num_threads(1)
    runner = run_ours if args.part == "ours" else run_peers
    out = RESULTS / f"imputation_{args.part}{args.tag}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in args.datasets.split(","):
        for seed in args.seeds:
            rows += [{"dataset": name, "seed": seed, **row} for row in runner(name, seed, args)]
            pd.DataFrame(rows).to_csv(out, index=False)  # after every cell, so a stopped run keeps its figures


if __name__ == "__main__":
    main()
