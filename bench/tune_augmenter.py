"""Train on synthetic, test on real (TSTR): how the augmenter's settings do on small sklearn tables.

Each table is split once per seed, stratified, into train (60 %), validation (20 %) and test
(20 %). The augmenter learns the train rows with their class labels and generates as many rows,
with the same labels; a classifier trained on those rows alone (TSTR) or on real plus generated
rows (augmented) is scored beside one trained on the real rows (TRTR). Settings are compared on
the validation rows (``--part validation``); the chosen ones are then reported on the test rows
(``--part test``), never tuned there. A class-wise multivariate normal is the naive generator to
beat. ``dcr_ratio`` is the median distance of each generated row to its closest train row over
that of each held-out real row (standardised units): well below 1 means copies of the train rows.

    OMP_NUM_THREADS=1 flock /work/bench.lock python bench/tune_augmenter.py --part validation
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.spatial import cKDTree
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from diffimpute import DiffusionAugmenter

LOADERS = {"breast_cancer": load_breast_cancer, "wine": load_wine, "digits": load_digits}
# Fit-time settings; each is fitted once per table and seed, then sampled with every SAMPLING setting.
CONFIGS = {
    "default": {},
    "no-holdout": {"validation_fraction": 0.0},
    "v": {"prediction": "v"},
    "x0": {"prediction": "x0"},
    "cosine": {"schedule": "cosine"},
    "lr3e-3": {"learning_rate": 3e-3},
    "wide": {"hidden": 512, "n_layers": 2},
    "batch256": {"batch_size": 256},
    "ema": {"ema_decay": 0.999},
    "steps100": {"diffusion_steps": 100},
}
SAMPLING = {
    "ddpm": {},
    "ddpm-g2": {"guidance_scale": 2.0},
    "ddim10": {"sampler": "ddim", "sampling_steps": 10},
}


def classifiers() -> dict:
    return {"rf": RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1),
            "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))}


def scores(X_fit, y_fit, X_eval, y_eval) -> dict:
    out = {}
    for name, model in classifiers().items():
        predicted = model.fit(X_fit, y_fit).predict(X_eval)
        out[f"{name}_acc"] = accuracy_score(y_eval, predicted)
        out[f"{name}_f1"] = f1_score(y_eval, predicted, average="macro")
    return out


def dcr_ratio(synthetic, train, holdout) -> float:
    mean, std = train.mean(0), train.std(0) + 1e-12
    tree = cKDTree((train - mean) / std)
    synthetic_distance = np.median(tree.query((synthetic - mean) / std)[0])
    holdout_distance = np.median(tree.query((holdout - mean) / std)[0])
    return float(synthetic_distance / holdout_distance)


def gaussian_per_class(X, y, labels, rng) -> np.ndarray:
    """The naive generator: a multivariate normal per class, with a small ridge."""
    out = np.empty((len(labels), X.shape[1]))
    for label in np.unique(labels):
        rows = X[y == label]
        covariance = np.cov(rows, rowvar=False) + 1e-3 * np.eye(X.shape[1]) * X.var(0).mean()
        chosen = labels == label
        out[chosen] = rng.multivariate_normal(rows.mean(0), covariance, size=int(chosen.sum()))
    return np.clip(out, X.min(0), X.max(0))


def split(name: str, seed: int):
    X, y = LOADERS[name](return_X_y=True)
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
    X_val, X_test, y_val, y_test = train_test_split(X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed)
    return X_train, y_train, X_val, y_val, X_test, y_test


def run(name: str, seed: int, part: str, configs: list[str], sampling: list[str], budget: float) -> list[dict]:
    X_train, y_train, X_val, y_val, X_test, y_test = split(name, seed)
    X_eval, y_eval = (X_val, y_val) if part == "validation" else (X_test, y_test)
    rows = [{"table": name, "seed": seed, "part": part, "method": "real (TRTR)",
             **scores(X_train, y_train, X_eval, y_eval)}]
    naive = gaussian_per_class(X_train, y_train, y_train, np.random.default_rng(seed))
    rows.append({"table": name, "seed": seed, "part": part, "method": "gaussian per class",
                 **scores(naive, y_train, X_eval, y_eval), "dcr_ratio": dcr_ratio(naive, X_train, X_eval)})
    for config in configs:
        params = {"time_budget": budget, "random_state": seed, "device": "cpu", "verbose": False, **CONFIGS[config]}
        started = time.perf_counter()
        augmenter = DiffusionAugmenter(**params).fit(X_train, y_train)
        fit_seconds = time.perf_counter() - started
        for way in sampling:
            started = time.perf_counter()
            synthetic = augmenter.set_params(**SAMPLING[way]).generate(len(y_train), y_train, seed=seed)
            sample_seconds = time.perf_counter() - started
            tstr = scores(synthetic, y_train, X_eval, y_eval)
            both = scores(np.concatenate([X_train, synthetic]), np.concatenate([y_train, y_train]), X_eval, y_eval)
            rows.append({"table": name, "seed": seed, "part": part, "method": f"diffusion {config} {way}", **tstr,
                         **{f"aug_{k}": v for k, v in both.items()},
                         "dcr_ratio": dcr_ratio(synthetic, X_train, X_eval), "fit_s": round(fit_seconds, 1),
                         "epochs": len(augmenter.history_.train_loss), "sample_s": round(sample_seconds, 2)})
            augmenter.set_params(**{key: DiffusionAugmenter().get_params()[key] for key in SAMPLING[way]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["validation", "test"], default="validation")
    parser.add_argument("--tables", default="breast_cancer,wine,digits")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--sampling", default=",".join(SAMPLING))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--out", default=None, help="Append the rows as JSON lines to this file.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.tables.split(","):
        for seed in map(int, args.seeds.split(",")):
            for row in run(name, seed, args.part, args.configs.split(","), args.sampling.split(","), args.budget):
                line = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a") as handle:
                        handle.write(line + "\n")


if __name__ == "__main__":
    main()
