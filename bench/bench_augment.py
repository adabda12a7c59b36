"""Synthetic training data from DiffusionAugmenter vs SDV's GaussianCopula and CTGAN (issue 11).

For every data set (``bench/augment_data.py``) and generator (``bench/augment_generators.py``),
fit on the real training rows, draw as many rows as there are, and score them
(``bench/augment_metrics.py``): sdmetrics quality, TSTR against TRTR (a random forest scored on
the real test rows), a real-vs-synthetic discriminator's ROC AUC, distances to the closest
training record against real unseen rows' (and the DCR share: synthetic rows closer to a training
row than to a test row, against as many training rows as test rows; 0.5 is ideal), and fit /
sample wall times. Settings are chosen on one part of the data and figures reported on another:
the augmenter picks its guidance scale and copy guard inside ``fit`` on its own held-out share of
the train split; every figure here is on the test split.

    # from the repository root, with the benchmark environment (see bench/README.md)
    export DIFFIMPUTE_SHARED_DATA=/work/shared/data   # SKAB; the tables need no data folder
    OMP_NUM_THREADS=1 flock /work/bench.lock /work/bench-aug-venv/bin/python -m bench.bench_augment \\
        --generators gaussian_copula ctgan --seeds 0 1 2 --tag peers
    OMP_NUM_THREADS=1 flock /work/bench.lock /work/bench-aug-venv/bin/python -m bench.bench_augment \\
        --generators ours ours_y ours_flat --seeds 0 1 2 --tag ours
    /work/bench-aug-venv/bin/python -m bench.bench_augment --report peers ours   # merged table

Each scored run is appended to ``bench/results/augment-<tag>.csv`` as soon as it finishes, so an
interrupted run keeps what it measured. A generator that cannot run on a data set (``ours_y`` on
a regression target) is skipped. The ``real`` rows score the real *tune* rows (real rows no
generator was fitted on and no score uses) as if they were the synthetic set: what a perfect
generator reaches on quality, discriminator AUC and the DCR share, whose spread around 0.5 on a
small table is this noise alone (0.44-0.56 on these tables). Their TSTR trains on fewer rows than
TRTR, so the report leaves it out.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench import augment_metrics as metrics
from bench.augment_data import DATASETS, AugmentDataset
from bench.augment_generators import GENERATORS, PEERS
from diffimpute.metrics.synthetic import dcr_share

RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------------------- helpers


def applies(generator: str, data: AugmentDataset) -> bool:
    """Whether ``generator`` has a meaning on ``data`` (see augment_generators' module doc)."""
    if generator == "ours_y":
        return data.task == "classification" and data.window is None
    if generator == "ours_flat":
        return data.window is not None
    return True


def score(data: AugmentDataset, synthetic: pd.DataFrame, seed: int) -> dict[str, float]:
    """Every metric of one synthetic set against the real splits (forests seeded with ``seed``)."""
    encoder = metrics.RowEncoder(data.train)
    tstr = metrics.utility(synthetic, data.test, data.target, data.task, data.train, seed)
    trtr = metrics.utility(data.train, data.test, data.target, data.task, data.train, seed)
    row = {
        **metrics.quality(data.train, synthetic),
        **{f"tstr_{k}": v for k, v in tstr.items()},
        **{f"trtr_{k}": v for k, v in trtr.items()},
        "discriminator_auc": metrics.discriminator_auc(data.train, synthetic, encoder, seed),
        **metrics.distance_to_closest_record(data.train, synthetic, data.test, encoder),
        "dcr_share": dcr_share(encoder(synthetic), encoder(data.train), encoder(data.test), seed),
    }
    if data.task == "classification":
        shares = synthetic[data.target].value_counts(normalize=True)
        row["min_class_share"] = float(shares.reindex(data.train[data.target].cat.categories, fill_value=0).min())
    return row


def run(args: argparse.Namespace) -> None:
    out = RESULTS / f"augment-{args.tag}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        data = DATASETS[name]()
        if args.real:
            real = metrics.conform(data.tune, data.train)
            _append(out, {"dataset": name, "generator": "real", "seed": 0, **score(data, real, 0)})
        for generator in args.generators:
            if not applies(generator, data):
                continue
            for seed in args.seeds:
                start = time.perf_counter()
                made = GENERATORS[generator](
                    data, len(data.train), seed, ctgan_epochs=args.ctgan_epochs, time_budget=args.time_budget
                )
                synthetic = metrics.conform(made.frame, data.train)
                row = {"dataset": name, "generator": generator, "seed": seed, "n_train": len(data.train),
                       "fit_s": made.fit_seconds, "sample_s": made.sample_seconds, **score(data, synthetic, seed)}
                row["total_s"] = time.perf_counter() - start
                _append(out, row)
                print(f"{name:14s} {generator:16s} seed {seed}: quality {row['quality']:.3f} "
                      f"TSTR {_main(row, 'tstr'):.3f} (TRTR {_main(row, 'trtr'):.3f}) "
                      f"AUC {row['discriminator_auc']:.3f} DCR share {row['dcr_share']:.3f} "
                      f"fit {row['fit_s']:.0f} s", flush=True)


def _append(path: Path, row: dict) -> None:
    """Add ``row`` to the CSV at ``path``, rewriting it whole: rows differ in their columns."""
    rows = pd.concat([pd.read_csv(path), pd.DataFrame([row])]) if path.exists() else pd.DataFrame([row])
    rows.to_csv(path, index=False)


def _main(row, prefix: str) -> float:
    """The headline utility: macro-F1 for a class, R^2 for a number."""
    value = row.get(f"{prefix}_macro_f1", np.nan)
    return row[f"{prefix}_r2"] if pd.isna(value) else value


# ----------------------------------------------------------------------------- report


def report(tags: list[str]) -> pd.DataFrame:
    """Mean ± std over seeds per data set and generator, with ratios to TRTR and the best peer."""
    runs = pd.concat([pd.read_csv(RESULTS / f"augment-{t}.csv") for t in tags], ignore_index=True)
    runs["tstr"] = runs.apply(_main, axis=1, prefix="tstr")
    runs.loc[runs["generator"] == "real", "tstr"] = np.nan  # trained on the tune rows: fewer than TRTR's
    runs["trtr"] = runs.apply(_main, axis=1, prefix="trtr")
    columns = ["quality", "tstr", "trtr", "discriminator_auc", "dcr_share", "dcr_synthetic_median",
               "dcr_holdout_median", "share_below_holdout_p5", "fit_s"]
    grouped = runs.groupby(["dataset", "generator"], sort=False)
    table = grouped[columns].mean()
    spread = grouped[columns].std()
    table["n_seeds"] = grouped.size()
    table["tstr_std"], table["auc_std"] = spread["tstr"], spread["discriminator_auc"]
    table["tstr/trtr"] = table["tstr"] / table["trtr"]
    for dataset in table.index.get_level_values(0).unique():
        peers = table.loc[dataset].reindex(list(PEERS)).dropna(how="all")
        if peers.empty:
            continue
        best_tstr, best_auc = peers["tstr"].max(), peers["discriminator_auc"].min()
        rows = table.index.get_level_values(0) == dataset
        table.loc[rows, "tstr/best_peer"] = table.loc[rows, "tstr"] / best_tstr
        table.loc[rows, "auc-best_peer"] = table.loc[rows, "discriminator_auc"] - best_auc
    return table


def print_report(table: pd.DataFrame) -> None:
    shown = pd.DataFrame({
        "seeds": table["n_seeds"].astype(int),
        "quality": table["quality"].map("{:.3f}".format),
        "TSTR": [f"{m:.3f}±{s:.3f}" if s == s else f"{m:.3f}" for m, s in zip(table["tstr"], table["tstr_std"])],
        "TRTR": table["trtr"].map("{:.3f}".format),
        "TSTR/TRTR": table["tstr/trtr"].map("{:.2f}".format),
        "TSTR/best peer": table["tstr/best_peer"].map("{:.2f}".format),
        "disc. AUC": [f"{m:.3f}±{s:.3f}" if s == s else f"{m:.3f}"
                      for m, s in zip(table["discriminator_auc"], table["auc_std"])],
        "AUC-best peer": table["auc-best_peer"].map("{:+.3f}".format),
        "DCR syn/holdout": [f"{a:.2f}/{b:.2f}" for a, b in
                            zip(table["dcr_synthetic_median"], table["dcr_holdout_median"])],
        "<p5 share": table["share_below_holdout_p5"].map("{:.3f}".format),
        "DCR share": table["dcr_share"].map("{:.3f}".format),
        "fit s": table["fit_s"].map("{:.0f}".format),
    }, index=table.index)
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 200):
        print(shown.to_string())


# -------------------------------------------------------------------------------- CLI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ctgan-epochs", type=int, default=300, help="SDV's default is 300")
    parser.add_argument("--time-budget", type=float, default=None, help="ours; default: the augmenter's own")
    parser.add_argument("--real", action="store_true", help="also score the real tune rows (unseen real rows: the reference)")
    parser.add_argument("--tag", default="run", help="results go to bench/results/augment-<tag>.csv")
    parser.add_argument("--report", nargs="+", metavar="TAG", help="print the merged table of saved runs")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # sdmetrics / rdt under pandas 2.3
    if args.report:
        table = report(args.report)
        print_report(table)
        table.to_csv(RESULTS / f"augment-report-{'-'.join(args.report)}.csv")
        return
    run(args)


if __name__ == "__main__":
    main()
