"""Choose the imputer's defaults on the *validation* split, never on the test split that
``bench_imputation.py`` reports.

Each variant is a set of ``DiffusionImputer`` parameters; every variant is fitted on the same
training windows and scored on the same masked validation windows. Example:

    OMP_NUM_THREADS=1 python bench/tune_imputer.py --datasets etth1 --budget 60 \
        --variant base '{}' --variant eps '{"prediction": "epsilon"}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_split, masked_inputs, score, subsample  # noqa: E402

from diffimpute import DiffusionImputer  # noqa: E402
from diffimpute.baselines import make_baseline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="etth1,beijing,physionet")
    parser.add_argument("--budget", type=float, default=60.0, help="time_budget of every variant, seconds")
    parser.add_argument("--max-val", type=int, default=64, help="validation windows scored")
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, nargs="+", default=[None],
                        help="also impute with these DDIM step counts (one fitted model each variant)")
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), default=[])
    parser.add_argument("--out", default="bench/results/tune.csv")
    args = parser.parse_args()
    variants = {name: json.loads(text) for name, text in args.variant} or {"default": {}}
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets.split(","):
        split = load_split(name, args.seed)
        truth = subsample(split["val"], args.max_val, np.random.default_rng(args.seed))
        masked = masked_inputs(truth, args.seed)
        for mask_name, (gappy, hidden) in masked.items():
            filled = make_baseline("linear").fit(gappy).transform(gappy)
            rows.append({"dataset": name, "mask": mask_name, "variant": "linear", **score(filled[None], truth, hidden)})
        for label, params in variants.items():
            started = time.perf_counter()
            model = DiffusionImputer(**{"time_budget": args.budget, "verbose": False, "random_state": args.seed,
                                        **params}).fit(split["train"])
            fit_s = time.perf_counter() - started
            for steps, mask_name in ((s, m) for s in args.steps for m in masked):
                gappy, hidden = masked[mask_name]
                model.set_params(sampling_steps=steps)
                started = time.perf_counter()
                result = model.impute(gappy, n_samples=args.n_samples, seed=args.seed)
                tag = label if steps is None else f"{label}@{steps}"
                rows.append({"dataset": name, "mask": mask_name, "variant": tag,
                             **score(result.samples, truth, hidden), "fit_s": fit_s,
                             "impute_s": time.perf_counter() - started, "epochs": len(model.history_.train_loss),
                             "val_mae": model.validation_.get("mae"), "val_guess": model.validation_.get("guess_mae")})
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    pivot = table.pivot_table(index=["dataset", "mask"], columns="variant", values=["mae", "crps", "coverage90"])
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(pivot.round(3).to_string())


if __name__ == "__main__":
    main()
