"""Few-shot augmentation on scikit-learn's digits: does DiffusionAugmenter help a classifier? (issue 11)

A fixed half of the 1,797 8x8 digits (stratified, seed 0) is the test set. From the other half
(the pool), each seed draws ``k`` images per class to train on and 20 other images per class to
validate on. The augmenter is fitted once per seed on the ``k * 10`` training images with their
labels, then a classifier is trained on:

- ``real``: the training images only;
- ``shift``: plus ``copies`` one-pixel shifts of each image (a classical augmentation, for scale);
- ``vary``: plus ``copies`` variations ``vary(images, strength, y=labels)`` of each image;
- ``generate``: plus ``copies * k`` class-conditional samples per class, ``generate(n, y, guidance_scale)``.

``strength`` and ``guidance_scale`` are chosen per seed from a small grid (``--strengths``,
``--guidance``) by accuracy on the validation images (never the test images); every setting's test accuracy is still saved. Two
standard classifiers (scikit-learn ``LogisticRegression`` and an RBF ``SVC``, on pixels / 16) are
scored. The summary gives mean ± std over seeds and each method's gain over ``real`` paired by
seed, next to the spread of ``real`` itself.

The augmenter sees the digits as a table of 64 pixel columns (``--form table``, its MLP) or as
8x8 grey images (``--form image``, its UNet, where the installed diffimpute has one).

    # from the repository root, in the benchmark environment (see bench/README.md)
    OMP_NUM_THREADS=1 flock /work/bench.lock /work/bench-aug-venv/bin/python -m bench.bench_fewshot \\
        --shots 5 10 --seeds 0 1 2 3 4 --tag fewshot
    /work/bench-aug-venv/bin/python -m bench.bench_fewshot --report fewshot
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

RESULTS = Path(__file__).resolve().parent / "results"
VALIDATION_PER_CLASS = 20
STRENGTHS = (0.3, 0.5, 0.7)
GUIDANCE = (1.0, 2.0, 4.0)
CLASSIFIERS = {
    "logreg": lambda: LogisticRegression(C=1.0, max_iter=5000),
    "svc": lambda: SVC(C=10.0, gamma="scale"),
}


# ---------------------------------------------------------------------------- helpers


def split(seed: int, shots: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train", "val", "test": (images (n, 8, 8) in 0..16, labels (n,))}``; test is fixed."""
    digits = load_digits()
    pool_x, test_x, pool_y, test_y = train_test_split(
        digits.images, digits.target, test_size=0.5, stratify=digits.target, random_state=0
    )
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(pool_y == label))
        train.extend(members[:shots])
        val.extend(members[shots : shots + VALIDATION_PER_CLASS])
    pick = lambda rows: (pool_x[rows], pool_y[rows])  # noqa: E731
    return {"train": pick(np.array(train)), "val": pick(np.array(val)), "test": (test_x, test_y)}


def shifted(images: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """``copies`` one-pixel shifts (one of the 8 neighbours, zero-filled) of each image, image-major."""
    moves = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    out = []
    for image in images:
        for index in rng.choice(len(moves), size=copies, replace=copies > len(moves)):
            dy, dx = moves[index]
            padded = np.pad(image, 1)
            out.append(padded[1 + dy : 9 + dy, 1 + dx : 9 + dx])
    return np.stack(out)


def accuracies(train_x: np.ndarray, train_y: np.ndarray, evaluate: dict) -> dict[str, float]:
    """``{"<classifier>_<split>": accuracy}`` for classifiers trained on ``(images, labels)``."""
    flat = train_x.reshape(len(train_x), -1) / 16.0
    scores = {}
    for name, make in CLASSIFIERS.items():
        model = make().fit(flat, train_y)
        for split_name, (x, y) in evaluate.items():
            scores[f"{name}_{split_name}"] = float(np.mean(model.predict(x.reshape(len(x), -1) / 16.0) == y))
    return scores


class Augmenter:
    """DiffusionAugmenter on the digits, in table (64 columns) or image (8x8) form."""

    def __init__(self, form: Literal["table", "image"], seed: int, time_budget: float | None):
        from diffimpute import DiffusionAugmenter

        params = {"random_state": seed, "verbose": False, "kind": form}
        if time_budget is not None:
            params["time_budget"] = time_budget
        self.form = form
        self.model = DiffusionAugmenter(**params)

    def _in(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1) if self.form == "table" else images

    def fit(self, images: np.ndarray, labels: np.ndarray) -> float:
        start = time.perf_counter()
        self.model.fit(self._in(images), labels)
        return time.perf_counter() - start

    def vary(self, images: np.ndarray, labels: np.ndarray, copies: int, strength: float) -> np.ndarray:
        """``copies`` variations of each image, copy-major: ``(copies * n, 8, 8)``."""
        out = [self.model.vary(self._in(images), strength, y=labels, seed=c) for c in range(copies)]
        return np.concatenate(out).reshape(-1, 8, 8)

    def generate(self, labels: np.ndarray, guidance: float) -> np.ndarray:
        return np.asarray(self.model.generate(len(labels), y=labels, guidance_scale=guidance)).reshape(-1, 8, 8)


def run_seed(seed: int, shots: int, args: argparse.Namespace) -> list[dict]:
    """Every method and setting for one seed: rows of accuracies on validation and test."""
    data = split(seed, shots)
    x, y = data["train"]
    evaluate = {"val": data["val"], "test": data["test"]}
    base = {"seed": seed, "shots": shots, "copies": args.copies, "form": args.form}
    rows = [{**base, "method": "real", "setting": np.nan, **accuracies(x, y, evaluate)}]
    extra = shifted(x, args.copies, np.random.default_rng(seed))
    rows.append({**base, "method": "shift", "setting": np.nan,
                 **accuracies(np.concatenate([x, extra]), np.concatenate([y, np.repeat(y, args.copies)]), evaluate)})
    augmenter = Augmenter(args.form, seed, args.time_budget)
    fit_s = augmenter.fit(x, y)
    for strength in args.strengths:
        extra = augmenter.vary(x, y, args.copies, strength)
        rows.append({**base, "method": "vary", "setting": strength, "fit_s": fit_s,
                     **accuracies(np.concatenate([x, extra]), np.concatenate([y, np.tile(y, args.copies)]), evaluate)})
    wanted = np.tile(y, args.copies)
    for guidance in args.guidance:
        extra = augmenter.generate(wanted, guidance)
        rows.append({**base, "method": "generate", "setting": guidance, "fit_s": fit_s,
                     **accuracies(np.concatenate([x, extra]), np.concatenate([y, wanted]), evaluate)})
    return rows


# ----------------------------------------------------------------------------- report


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per shots, classifier and method: the validation-chosen setting's test accuracy over seeds."""
    out = []
    for classifier in CLASSIFIERS:
        val, test = f"{classifier}_val", f"{classifier}_test"
        # per seed, the setting with the best validation accuracy (first on ties)
        chosen = runs.loc[runs.groupby(["shots", "seed", "method"], sort=False)[val].idxmax()]
        real = chosen[chosen["method"] == "real"].set_index(["shots", "seed"])[test]
        for (shots, method), group in chosen.groupby(["shots", "method"], sort=False):
            gains = group.set_index(["shots", "seed"])[test] - real.loc[list(zip(group["shots"], group["seed"]))]
            out.append({
                "shots": shots, "classifier": classifier, "method": method, "seeds": len(group),
                "test_mean": group[test].mean(), "test_std": group[test].std(),
                "gain_mean": gains.mean(), "gain_std": gains.std(),
                "real_std": real.loc[shots].std(),
                "settings": " ".join(f"{s:g}" for s in group["setting"].dropna()),
            })
    return pd.DataFrame(out)


def print_summary(summary: pd.DataFrame) -> None:
    shown = summary.assign(
        test=[f"{m:.3f} ± {s:.3f}" for m, s in zip(summary["test_mean"], summary["test_std"])],
        gain=[f"{m:+.3f} ± {s:.3f}" for m, s in zip(summary["gain_mean"], summary["gain_std"])],
        real_spread=summary["real_std"].map("{:.3f}".format),
    )[["shots", "classifier", "method", "seeds", "test", "gain", "real_spread", "settings"]]
    print(shown.to_string(index=False))


# -------------------------------------------------------------------------------- CLI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--copies", type=int, default=10, help="synthetic images per real one")
    parser.add_argument("--form", choices=["table", "image"], default="table")
    parser.add_argument("--strengths", nargs="+", type=float, default=list(STRENGTHS),
                        help="vary strengths to choose from on validation images")
    parser.add_argument("--guidance", nargs="+", type=float, default=list(GUIDANCE),
                        help="generate guidance scales to choose from on validation images")
    parser.add_argument("--time-budget", type=float, default=None, help="default: the augmenter's own")
    parser.add_argument("--tag", default="fewshot")
    parser.add_argument("--report", nargs="+", metavar="TAG")
    args = parser.parse_args()
    if args.report:
        runs = pd.concat([pd.read_csv(RESULTS / f"fewshot-{t}.csv") for t in args.report], ignore_index=True)
        print_summary(summarise(runs))
        return
    out = RESULTS / f"fewshot-{args.tag}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    for shots in args.shots:
        for seed in args.seeds:
            rows = pd.DataFrame(run_seed(seed, shots, args))
            saved = pd.concat([pd.read_csv(out), rows]) if out.exists() else rows
            saved.to_csv(out, index=False)
            best = rows.loc[rows.groupby("method", sort=False)["logreg_val"].idxmax()]
            print(f"{shots}-shot seed {seed}: " + "  ".join(
                f"{m} {a:.3f}" for m, a in zip(best["method"], best["logreg_test"])), flush=True)


if __name__ == "__main__":
    main()
